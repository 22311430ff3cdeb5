//! `afr-toolchain demo`: the whole pipeline on a built-in default.

use std::path::PathBuf;

use afr_toolchain::demo::{self, DemoOptions};
use anyhow::Context;

use crate::progress::TrainingBar;

#[derive(clap::Args)]
pub struct Args {
    /// Output directory: data/, run/, model.onnx, report.md, report.json, heatmaps/.
    #[arg(long, default_value = "demo")]
    out: PathBuf,
    /// Seed of the data, the random backbones and training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// The synthetic category kept out of training and evaluated on.
    #[arg(long, default_value = "bolt")]
    held_out: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let opts = DemoOptions { seed: a.seed, epochs: a.epochs, held_out: a.held_out, ..DemoOptions::default() };
    let mut bar = TrainingBar::default();
    let summary = demo::run(&a.out, &opts, &device, &mut |s| eprintln!("demo: {s}"), &mut bar)
        .with_context(|| format!("running the demo in {}", a.out.display()))?;
    bar.finish();
    println!("{}", summary.report.to_markdown());
    eprintln!("report: {}", summary.markdown.display());
    Ok(())
}
