//! `afr-toolchain train`: train AFR-CLIP on an auxiliary dataset.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use afr_runtime::dataset::Format;
use afr_toolchain::afr::{AfrConfig, SpMode};
use afr_toolchain::train::trainer::{self, EpochLog, Observer, Outcome, TrainOptions};
use anyhow::Context;
use indicatif::ProgressBar;

use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// The run directory: checkpoint.safetensors, optimizer.safetensors,
    /// config.json and log.jsonl (one line per epoch).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint; every other setting
    /// but --epochs is taken from the run's config.json.
    #[arg(long)]
    resume: bool,
    /// Backbone preset: vit-l14-336 (the paper's), vit-b16, tiny, or a preset JSON file.
    #[arg(long, default_value = "vit-l14-336", required_unless_present = "resume")]
    preset: String,
    /// CLIP weights: Hugging Face CLIPModel directory or safetensors, OpenAI /
    /// open_clip safetensors, or random:SEED.
    #[arg(long, required_unless_present = "resume")]
    clip: Option<String>,
    /// ResNet weights for self prompting (torchvision / timm safetensors) or random:SEED.
    #[arg(long, required_unless_present = "resume")]
    resnet: Option<String>,
    /// The auxiliary dataset's root; its test split is trained on (it alone
    /// holds anomalies and masks), as in every peer.
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Dataset layout: mvtec, visa, meta-json, btad, mpdd, folder.
    #[arg(long, default_value = "mvtec")]
    format: Format,
    /// Comma-separated categories to train on (default: all).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Prompt file replacing models/prompts.json.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Epochs to train [default: 100]. With --resume: the run's new total, to train a
    /// finished run further.
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Base learning rate; epoch e uses lr / (e + 1).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Adam betas as b1,b2 (AnomalyCLIP and APRIL-GAN use 0.5,0.999).
    #[arg(long, value_delimiter = ',', default_values_t = [0.9, 0.999])]
    betas: Vec<f64>,
    /// Seed of the trainable initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Self prompting: both (P_v + P_l), visual-only, learned-only, off.
    #[arg(long, value_enum, default_value = "both")]
    sp: SpArg,
    /// Carry SP's prompts through the first N of the four stages (1-4): they
    /// enter layers 2..=N*L/4. 1 is the paper's method; 2-4 are its Table 4.
    #[arg(long, default_value_t = 1)]
    sp_stages: usize,
    /// Number of SP prompt tokens K.
    #[arg(long, default_value_t = 5)]
    prompt_tokens: usize,
    /// MPFA window m (odd; 1 turns MPFA off).
    #[arg(long, default_value_t = 3)]
    mpfa_window: usize,
    /// Turn CMFR off: image-text cosine scoring (the paper's Table 3, row 1).
    #[arg(long)]
    no_cmfr: bool,
    /// Softmax temperature of the scoring.
    #[arg(long, default_value_t = 0.07)]
    tau: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SpArg {
    Both,
    VisualOnly,
    LearnedOnly,
    Off,
}

struct Bar {
    bar: ProgressBar,
}

impl Observer for Bar {
    fn start(&mut self, total: usize, done: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }
    fn batch(&mut self, epoch: usize, loss: f64) {
        self.bar.inc(1);
        self.bar.set_message(format!("epoch {} loss {loss:.4}", epoch + 1));
    }
    fn epoch(&mut self, log: &EpochLog) {
        self.bar.println(format!(
            "epoch {:>3}: loss {:.4} (image {:.4}, pixel {:.4}), lr {:.2e}, {:.1} s, {:.1} images/s",
            log.epoch, log.loss, log.image_loss, log.pixel_loss, log.lr, log.seconds, log.images_per_s
        ));
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.betas.len() == 2, "--betas takes two values, b1,b2 (got {:?})", a.betas);
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint after this batch (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    let mut obs = Bar { bar: progress::bar(0, "batches") };
    let outcome = if a.resume {
        trainer::resume(&a.out, a.epochs, &device, &stop, &mut obs)
            .with_context(|| format!("resuming {}", a.out.display()))?
    } else {
        let opts = TrainOptions {
            preset: a.preset,
            clip: a.clip.expect("required by clap"),
            resnet: a.resnet.expect("required by clap"),
            data: a.data.expect("required by clap"),
            format: a.format,
            categories: a.categories,
            prompts: a.prompts,
            afr: AfrConfig {
                prompt_tokens: a.prompt_tokens,
                sp: match a.sp {
                    SpArg::Both => SpMode::Both,
                    SpArg::VisualOnly => SpMode::VisualOnly,
                    SpArg::LearnedOnly => SpMode::LearnedOnly,
                    SpArg::Off => SpMode::Off,
                },
                sp_stages: a.sp_stages,
                mpfa_window: a.mpfa_window,
                cmfr: !a.no_cmfr,
                tau: a.tau,
            },
            epochs: a.epochs.unwrap_or(100),
            batch_size: a.batch_size,
            lr: a.lr,
            betas: (a.betas[0], a.betas[1]),
            seed: a.seed,
        };
        trainer::start(&opts, &a.out, &device, &stop, &mut obs)
            .with_context(|| format!("training into {}", a.out.display()))?
    };
    obs.bar.finish_and_clear();
    match outcome {
        Outcome::Finished { epochs } => eprintln!("trained {epochs} epochs; the run is in {}", a.out.display()),
        Outcome::Interrupted { epoch, batch } => {
            eprintln!(
                "interrupted in epoch {} after batch {batch}; checkpoint saved. Continue with: afr-toolchain train --resume --out {}",
                epoch + 1,
                a.out.display()
            );
            std::process::exit(130);
        }
    }
    Ok(())
}
