//! `afr eval`: the seven metrics per category and their mean, computed the
//! way the toolchain's reference evaluation does (toolchain/src/evaluate.rs):
//! maps upsampled to S x S with the model's smoothing, masks resized to
//! S x S with a triangle filter and thresholded at 0.5, pixel metrics only
//! for categories where every anomalous image has a mask. Categories the
//! model's table does not hold are scored with its generic `object` row, with
//! a warning (refused under `--strict-categories`); the report names the row
//! that scored each category.

use std::path::PathBuf;
use std::process::ExitCode;

use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::detector::Detector;
use afr_runtime::evaluate::{evaluate, scoring_rows};
use afr_runtime::report::Report;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::load_args::LoadArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The AFR ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// Dataset root folder.
    #[arg(long)]
    data: PathBuf,
    /// Dataset layout: mvtec, visa, meta-json, btad, mpdd or folder.
    #[arg(long)]
    format: Format,
    /// Evaluate only these categories (comma-separated; all by default).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Refuse categories the model's table has no row for, instead of scoring
    /// them with its generic `object` row (export with --categories-from DATA
    /// to give every category of a dataset its own row).
    #[arg(long)]
    strict_categories: bool,
    /// Also write the report as JSON to this file (replaced whole or not at all).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::load_with(&args.model, args.load.options(true))?;
    let data = Dataset::open(&args.data, args.format, Split::Test, args.categories.as_deref())?;
    let fallback: Vec<String> = scoring_rows(detector.info(), &data.categories(), args.strict_categories)?
        .into_iter()
        .filter(|r| r.is_fallback())
        .map(|r| r.category)
        .collect();
    for category in &fallback {
        eprintln!(
            "warning: {}: no row for category `{category}`; scored with the generic `object` row \
             (export with --categories-from to give it its own)",
            args.model.display()
        );
    }
    let bar = ProgressBar::new(data.samples.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results = evaluate(&mut detector, &data, args.strict_categories, |_, _| bar.inc(1))
        .with_context(|| format!("evaluating {}", args.model.display()))?;
    bar.finish_and_clear();
    let report = Report::new(args.model.display().to_string(), args.data.display().to_string(), results);
    print!("{}", report.to_markdown());
    if !fallback.is_empty() {
        println!("\nScored with the generic `object` row (not in the model's table): {}.", fallback.join(", "));
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(ExitCode::SUCCESS)
}
