//! `afr-toolchain synth`: a synthetic MVTec-layout dataset.

use std::path::PathBuf;

use afr_toolchain::synth::{generate, SynthConfig};
use anyhow::Context;

use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (created; must be empty or a previous synth output).
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same seed writes byte-identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Comma-separated categories (default: all of fabric, wood, grid, washer, bolt).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Normal images per category in train/good.
    #[arg(long, default_value_t = 10)]
    train_good: usize,
    /// Normal images per category in test/good.
    #[arg(long, default_value_t = 10)]
    test_good: usize,
    /// Images per defect type in test/DEFECT (each with its mask).
    #[arg(long, default_value_t = 5)]
    test_bad: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        seed: a.seed,
        size: a.size,
        categories: a.categories,
        train_good: a.train_good,
        test_good: a.test_good,
        test_bad_per_defect: a.test_bad,
    };
    let bar = progress::bar(0, "images");
    let summary = generate(&a.out, &cfg, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("writing the synthetic dataset to {}", a.out.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} images and {} masks of {} to {}",
        summary.images,
        summary.masks,
        summary.categories.join(", "),
        summary.out.display()
    );
    Ok(())
}
