//! Progress bars for long work.

use afr_toolchain::train::trainer::{EpochLog, Observer};
use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:32}}] {{pos}}/{{len}} {unit} (ETA {{eta}}) {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Training's progress: a bar over the batches, a line per finished epoch.
pub struct TrainingBar(ProgressBar);

impl Default for TrainingBar {
    fn default() -> Self {
        Self(bar(0, "batches"))
    }
}

impl TrainingBar {
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Observer for TrainingBar {
    fn start(&mut self, total: usize, done: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
    }
    fn batch(&mut self, epoch: usize, loss: f64) {
        self.0.inc(1);
        self.0.set_message(format!("epoch {} loss {loss:.4}", epoch + 1));
    }
    fn epoch(&mut self, log: &EpochLog) {
        self.0.println(format!(
            "epoch {:>3}: loss {:.4} (image {:.4}, pixel {:.4}), lr {:.2e}, {:.1} s, {:.1} images/s",
            log.epoch, log.loss, log.image_loss, log.pixel_loss, log.lr, log.seconds, log.images_per_s
        ));
    }
}
