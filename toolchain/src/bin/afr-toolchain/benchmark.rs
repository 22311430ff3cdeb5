//! `afr-toolchain benchmark`: train (or reuse a run), export with the test
//! categories, quantize, evaluate fp32 / fp16 / int8 in tract and print the
//! paper's tables with its published figures beside ours.

use std::cell::RefCell;
use std::path::PathBuf;

use afr_quantize::Precision;
use afr_runtime::dataset::Format;
use afr_toolchain::benchmark::{self, BenchmarkOptions, PaperChoice, Progress, RunSource};
use anyhow::Context;
use indicatif::ProgressBar;

use crate::progress::{self, TrainingBar};
use crate::run_args::NewRun;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder: run/ (unless --run), model.onnx, model.fp16.onnx,
    /// model.int8.onnx, benchmark.md and benchmark.json. Running the same
    /// command again continues an interrupted training and reuses a finished one.
    #[arg(long)]
    out: PathBuf,
    /// Evaluate this trained run as it is instead of training one (the
    /// training flags are then not used).
    #[arg(long, conflicts_with_all = ["clip", "resnet", "data"])]
    run: Option<PathBuf>,
    /// The dataset tested on, zero-shot (its test split).
    #[arg(long)]
    test_data: PathBuf,
    /// Layout of --test-data: mvtec, visa, meta-json, btad, mpdd, folder.
    #[arg(long, default_value = "mvtec")]
    test_format: Format,
    /// Comma-separated test categories (default: all; the paper's figures are
    /// means over all of a dataset's categories).
    #[arg(long, value_delimiter = ',')]
    test_categories: Option<Vec<String>>,
    /// Precisions to evaluate besides fp32 (comma-separated: fp16, int8; none: fp32 only).
    #[arg(long, value_delimiter = ',', default_value = "fp16,int8")]
    precisions: Vec<String>,
    /// Which of the paper's datasets the test set is, for its published
    /// figures: auto (the one with exactly these categories), none, or a key
    /// of models/paper_results.json (mvtec, visa, btad, mpdd, ...).
    #[arg(long, default_value = "auto")]
    paper: String,
    /// Also write the JSON report to this file (it is always in OUT/benchmark.json).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// tract threads for the evaluations (more than 1 needs the runtime's `multithread` feature).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where to train: cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    train: NewRun,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let mut precisions = Vec::new();
    for p in a.precisions.iter().filter(|p| !p.is_empty() && *p != "none") {
        let p: Precision = p.parse().map_err(|e: String| anyhow::anyhow!("--precisions: {e}"))?;
        if p != Precision::Fp32 {
            precisions.push(p);
        }
    }
    let source = match a.run {
        Some(run) => RunSource::Existing(run),
        None => {
            RunSource::Train(Box::new(a.train.options("to train a run (or --run to evaluate one trained before)")?))
        }
    };
    let paper = match a.paper.as_str() {
        "auto" => PaperChoice::Auto,
        "none" => PaperChoice::Off,
        key => PaperChoice::Dataset(key.to_string()),
    };
    let opts = BenchmarkOptions {
        source,
        test_data: a.test_data,
        test_format: a.test_format,
        test_categories: a.test_categories,
        precisions,
        paper,
        threads: a.threads,
    };
    let stop = crate::train::stop_on_ctrl_c()?;
    let mut training = TrainingBar::default();
    // One bar per evaluation, started by its first image and cleared by the next step.
    let bar: RefCell<Option<ProgressBar>> = RefCell::new(None);
    let clear = || {
        if let Some(b) = bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    };
    let mut step = |s: &str| {
        clear();
        eprintln!("benchmark: {s}");
    };
    let mut images = |done: usize, total: usize| {
        bar.borrow_mut().get_or_insert_with(|| progress::bar(total as u64, "images")).set_position(done as u64);
    };
    let progress = Progress { step: &mut step, training: &mut training, images: &mut images };
    let result = benchmark::run(&a.out, &opts, &device, &stop, progress)
        .with_context(|| format!("benchmarking into {}", a.out.display()));
    training.finish();
    clear();
    let bench = result?;
    print!("{}", bench.markdown);
    if let Some(path) = &a.json {
        afr_runtime::atomic::write_atomic(path, bench.to_json().as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    eprintln!("wrote {} and benchmark.json", a.out.join("benchmark.md").display());
    Ok(())
}
