//! `afr-toolchain evaluate`: the Candle reference evaluation of a run.

use std::path::PathBuf;

use afr_runtime::dataset::Format;
use anyhow::Context;

use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `afr-toolchain train`.
    #[arg(long)]
    run: PathBuf,
    /// The dataset to evaluate on (its test split).
    #[arg(long)]
    data: PathBuf,
    /// Dataset layout: mvtec, visa, meta-json, btad, mpdd, folder.
    #[arg(long, default_value = "mvtec")]
    format: Format,
    /// Comma-separated categories (default: all).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Also write the report as JSON (DESIGN.md section 3) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let bar = progress::bar(0, "images");
    let report = afr_toolchain::evaluate::evaluate(
        &a.run,
        &a.data,
        a.format,
        a.categories.as_deref(),
        &device,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .with_context(|| format!("evaluating {} on {}", a.run.display(), a.data.display()))?;
    bar.finish_and_clear();
    print!("{}", report.to_markdown());
    // Rows of categories the run trained on are not zero-shot: say which.
    let cfg =
        afr_toolchain::train::run::RunConfig::read(&a.run).with_context(|| format!("reading {}", a.run.display()))?;
    let seen: Vec<&str> = report.categories.keys().filter(|c| cfg.categories.contains(c)).map(String::as_str).collect();
    if !seen.is_empty() {
        println!("\nTrained on: {} (not zero-shot).", seen.join(", "));
    }
    if let Some(path) = &a.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
