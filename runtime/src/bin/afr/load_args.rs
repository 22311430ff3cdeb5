//! The flags every command that runs a model shares: how it is loaded.

use afr_runtime::detector::DetectorOptions;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Threads for inference, at least 1 (more than 1 needs the `multithread` build feature).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: u32,
    /// Do not check the weights against the model's afr.weights_sha256 at load
    /// (for firmware whose storage verifies itself; saves reading the weights
    /// twice). Files without the key load unchecked either way.
    #[arg(long)]
    skip_weights_check: bool,
}

impl LoadArgs {
    pub fn threads(&self) -> usize {
        self.threads as usize
    }

    pub fn options(&self, smoothing: bool) -> DetectorOptions {
        DetectorOptions { smoothing, threads: self.threads(), check_weights: !self.skip_weights_check }
    }
}
