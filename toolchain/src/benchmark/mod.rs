//! `afr-toolchain benchmark`: the paper's zero-shot protocol in one command.
//! Train on an auxiliary dataset (or continue / reuse a run), export with a
//! stateless row for every test category, make the fp16 and int8 models,
//! evaluate each in the tract runtime on the test dataset, and write the
//! paper's table layout with its published figures beside ours where the
//! test set is one of its datasets (`models/paper_results.json`).
//!
//! The evaluated models are columns; a column is one model file evaluated
//! one way, so other ways of scoring (e.g. few-shot) add columns.

mod table;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use afr_quantize::Precision;
use afr_runtime::dataset::{Dataset, Format, Split};
use candle_core::Device;
use serde::Serialize;

use crate::paper::{PaperResults, Published};
use crate::precisions::{self, EvalSettings, PrecisionResult};
use crate::preset::Preset;
use crate::train::run::{self, RunConfig};
use crate::train::trainer::{self, Observer, Outcome, TrainOptions};

#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error(transparent)]
    Train(#[from] trainer::TrainError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Dataset(#[from] afr_runtime::dataset::DatasetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
    #[error("training stopped in epoch {epoch}; run the same command again to continue it")]
    Interrupted { epoch: usize },
}

/// Where the trained run comes from.
#[derive(Debug, Clone)]
pub enum RunSource {
    /// Train into `OUT/run`, or continue the run there if it has these settings.
    Train(Box<TrainOptions>),
    /// A run trained before (by `train` or another benchmark), evaluated as it is.
    Existing(PathBuf),
}

/// Which of the paper's datasets the test set is, for its published figures.
#[derive(Debug, Clone, PartialEq)]
pub enum PaperChoice {
    /// The dataset whose categories are exactly the test set's.
    Auto,
    /// This key of `models/paper_results.json` (`mvtec`, `visa`, ...).
    Dataset(String),
    /// No published figures.
    Off,
}

#[derive(Debug, Clone)]
pub struct BenchmarkOptions {
    pub source: RunSource,
    pub test_data: PathBuf,
    pub test_format: Format,
    /// Test categories (default: all of the test set).
    pub test_categories: Option<Vec<String>>,
    /// fp32 always; fp16 and int8 as listed.
    pub precisions: Vec<Precision>,
    pub paper: PaperChoice,
    /// tract threads for the evaluations.
    pub threads: usize,
}

/// One evaluated model: a column of the tables.
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    pub result: PrecisionResult,
}

/// What the benchmark did and measured.
#[derive(Debug)]
pub struct Benchmark {
    pub run: PathBuf,
    pub config: RunConfig,
    pub test_data: PathBuf,
    pub test_format: Format,
    pub test_categories: Vec<String>,
    pub columns: Vec<Column>,
    /// The paper's figures for this test set and configuration.
    pub paper: Option<Published>,
    /// Why the paper's figures are (not) shown, in a sentence.
    pub paper_note: String,
    /// (step, seconds)
    pub timings: Vec<(String, f64)>,
    pub markdown: String,
}

/// How the benchmark reports progress: `step` names what starts, `obs`
/// follows training, `images(done, total)` each evaluation.
pub struct Progress<'a> {
    pub step: &'a mut dyn FnMut(&str),
    pub training: &'a mut dyn Observer,
    pub images: &'a mut dyn FnMut(usize, usize),
}

/// Calibration and drift images for int8 and fp16, from the training set.
const CALIBRATION_IMAGES: usize = 32;

/// Runs the benchmark into `out` (run/, model*.onnx, benchmark.md, benchmark.json).
pub fn run(
    out: &Path,
    opts: &BenchmarkOptions,
    device: &Device,
    stop: &AtomicBool,
    progress: Progress,
) -> Result<Benchmark, BenchmarkError> {
    let Progress { step, training, images } = progress;
    std::fs::create_dir_all(out).map_err(|source| BenchmarkError::Io { path: out.to_path_buf(), source })?;
    let mut timings = Vec::new();
    // The test set first: a typo there should not cost a training run.
    let test = Dataset::open(&opts.test_data, opts.test_format, Split::Test, opts.test_categories.as_deref())?;
    let test_categories = test.categories();
    let paper = PaperResults::builtin();
    let dataset_key = match &opts.paper {
        PaperChoice::Auto => paper.dataset_with(&test_categories).map(str::to_string),
        PaperChoice::Dataset(key) if paper.datasets.contains_key(key) => Some(key.clone()),
        PaperChoice::Dataset(key) => {
            let known: Vec<&str> = paper.datasets.keys().map(String::as_str).collect();
            return Err(BenchmarkError::Setup(format!(
                "--paper {key}: the paper has no such dataset (known: {})",
                known.join(", ")
            )));
        }
        PaperChoice::Off => None,
    };

    let run_dir = match &opts.source {
        RunSource::Existing(dir) => dir.clone(),
        RunSource::Train(train) => {
            let t = Instant::now();
            let dir = out.join("run");
            train_or_continue(&dir, train, device, stop, step, training)?;
            timings.push(("training".to_string(), t.elapsed().as_secs_f64()));
            dir
        }
    };
    let config = RunConfig::read(&run_dir)?;
    if config.progress.epoch < config.train.epochs {
        step(&format!(
            "note: {} stopped after epoch {} of {}",
            run_dir.display(),
            config.progress.epoch,
            config.train.epochs
        ));
    }

    step(&format!("exporting with a row for each of the {} test categories", test_categories.len()));
    let t = Instant::now();
    let model = out.join("model.onnx");
    crate::export::export(&run_dir, Some(&test_categories), &model, None, device)?;
    timings.push(("export".to_string(), t.elapsed().as_secs_f64()));

    let settings = EvalSettings { strict_categories: true, threads: opts.threads };
    let calibration = training_images(&config);
    let mut columns = Vec::new();
    for precision in [Precision::Fp32, Precision::Fp16, Precision::Int8] {
        if precision != Precision::Fp32 && !opts.precisions.contains(&precision) {
            continue;
        }
        let t = Instant::now();
        let result = if precision == Precision::Fp32 {
            step("evaluating the fp32 model in tract");
            precisions::fp32(&model, &test, settings, &mut *images)
        } else {
            step(&format!("quantizing to {precision} and evaluating it in tract"));
            precisions::quantized(&model, out, precision, calibration.as_ref(), &test, settings, &mut *images)
        };
        if let Some(e) = &result.error {
            step(&format!("no {precision} results: {e}"));
        }
        let what = if precision == Precision::Fp32 { "evaluation" } else { "quantization and evaluation" };
        timings.push((format!("{precision}: {what}"), t.elapsed().as_secs_f64()));
        columns.push(Column { label: precision.to_string(), result });
    }

    let published = dataset_key.as_deref().and_then(|k| paper.published(k, &config.afr));
    let paper_note = paper_note(&paper, dataset_key.as_deref(), published.as_ref(), &config);
    let mut bench = Benchmark {
        run: run_dir,
        config,
        test_data: opts.test_data.clone(),
        test_format: opts.test_format,
        test_categories,
        columns,
        paper: published,
        paper_note,
        timings,
        markdown: String::new(),
    };
    bench.markdown = bench.to_markdown();
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        afr_runtime::atomic::write_atomic(&path, bytes).map_err(|source| BenchmarkError::Io { path, source })
    };
    write("benchmark.md", bench.markdown.as_bytes())?;
    write("benchmark.json", bench.to_json().as_bytes())?;
    Ok(bench)
}

/// Trains `opts` into `dir`, continues the run there if it was interrupted
/// or asked for fewer epochs, or reuses it if it is finished; a run of other
/// settings is refused rather than mixed in.
fn train_or_continue(
    dir: &Path,
    opts: &TrainOptions,
    device: &Device,
    stop: &AtomicBool,
    step: &mut dyn FnMut(&str),
    obs: &mut dyn Observer,
) -> Result<(), BenchmarkError> {
    let outcome = if dir.join(run::CONFIG).exists() {
        let cfg = RunConfig::read(dir)?;
        if let Some(difference) = differs(&cfg, opts) {
            return Err(BenchmarkError::Setup(format!(
                "{} holds a run with other settings ({difference}); choose another --out, or pass --run {} \
                 to evaluate that run as it is",
                dir.display(),
                dir.display()
            )));
        }
        if cfg.progress.epoch >= opts.epochs && cfg.progress.batch == 0 {
            step(&format!("reusing the run in {} ({} epochs)", dir.display(), cfg.progress.epoch));
            return Ok(());
        }
        step(&format!("continuing the run in {} from epoch {}", dir.display(), cfg.progress.epoch));
        trainer::resume(dir, Some(opts.epochs), device, stop, obs)?
    } else {
        step(&format!("training {} for {} epochs into {}", opts.preset, opts.epochs, dir.display()));
        trainer::start(opts, dir, device, stop, obs)?
    };
    match outcome {
        Outcome::Finished { .. } => Ok(()),
        Outcome::Interrupted { epoch, .. } => Err(BenchmarkError::Interrupted { epoch: epoch + 1 }),
    }
}

/// The first setting in which the run `cfg` differs from `opts`, if any.
fn differs(cfg: &RunConfig, opts: &TrainOptions) -> Option<String> {
    let preset = Preset::resolve(&opts.preset).ok();
    let mut checks: Vec<(&str, String, String)> = vec![
        ("preset", cfg.preset.name.clone(), preset.map_or(opts.preset.clone(), |p| p.name)),
        ("--clip", cfg.clip.spec.clone(), opts.clip.clone()),
        ("--resnet", cfg.resnet.spec.clone(), opts.resnet.clone()),
        ("--data", cfg.train.data.display().to_string(), opts.data.display().to_string()),
        ("--seed", cfg.train.seed.to_string(), opts.seed.to_string()),
        ("AFR switches", format!("{:?}", cfg.afr), format!("{:?}", opts.afr)),
    ];
    if let Some(categories) = &opts.categories {
        let mut wanted = categories.clone();
        wanted.sort();
        checks.push(("--categories", cfg.categories.join(","), wanted.join(",")));
    }
    checks
        .into_iter()
        .find(|(_, a, b)| a != b)
        .map(|(what, run, asked)| format!("{what}: the run has {run}, asked {asked}"))
}

/// Images spread over the run's training set, if it is still where the run
/// says; without them afr-quantize measures drift on seeded random images.
fn training_images(cfg: &RunConfig) -> Option<afr_quantize::ImageSet> {
    let format: Format = cfg.train.format.parse().ok()?;
    let data = Dataset::open(&cfg.train.data, format, Split::Test, Some(&cfg.categories)).ok()?;
    Some(precisions::spread_images(&data, CALIBRATION_IMAGES, "training images"))
}

fn paper_note(paper: &PaperResults, key: Option<&str>, published: Option<&Published>, cfg: &RunConfig) -> String {
    let Some(key) = key else {
        return "The test categories are not all of one of the paper's datasets, so there is no published figure to \
                compare with (its means are over every category of a dataset)."
            .to_string();
    };
    let name = &paper.datasets[key].name;
    let Some(p) = published else {
        return format!("The test set is {name}, but the paper reports no figures for this configuration there.");
    };
    let mut note = format!(
        "The test set is {name}: the paper's figures are beside the means ({}, trained on {}).",
        paper.backbone, p.trained_on
    );
    if cfg.preset.name != "vit-l14-336" {
        let _ = write!(note, " This run used the `{}` preset, not the paper's backbone.", cfg.preset.name);
    }
    note
}

impl Benchmark {
    /// The report: what ran, the two tables, the models side by side, timings.
    pub fn to_markdown(&self) -> String {
        let c = &self.config;
        let mut md = String::from("# AFR-CLIP zero-shot benchmark\n\n");
        let _ = writeln!(
            md,
            "Model: preset `{}`, CLIP `{}`, ResNet `{}`, AFR switches {}; trained on `{}` ({} layout; {}) for {} \
             epoch(s).\n",
            c.preset.name,
            c.clip.spec,
            c.resnet.spec,
            afr_summary(c),
            c.train.data.display(),
            c.train.format,
            c.categories.join(", "),
            c.progress.epoch,
        );
        let _ = writeln!(
            md,
            "Tested zero-shot on `{}` ({} layout; {}), each category scored with its own stateless prompt; \
             metrics in percent, per category then their mean.\n",
            self.test_data.display(),
            self.test_format,
            self.test_categories.join(", ")
        );
        let _ = writeln!(md, "{}\n", self.paper_note);
        if c.clip.spec.starts_with("random:") {
            md.push_str(
                "Random backbones know nothing about images: these figures show the protocol runs end to end, not \
                 what AFR-CLIP reaches with CLIP's pretrained weights (see docs/accuracy.md).\n\n",
            );
        }
        let _ = writeln!(
            md,
            "## Image level: (AUROC, max-F1)\n\n{}",
            table::image_level(&self.columns, self.paper.as_ref())
        );
        let _ = writeln!(
            md,
            "## Pixel level: (AUROC, max-F1, AUPRO)\n\n{}",
            table::pixel_level(&self.columns, self.paper.as_ref())
        );
        let results: Vec<PrecisionResult> = self.columns.iter().map(|c| c.result.clone()).collect();
        let _ = writeln!(md, "## Models\n\n{}", precisions::side_by_side(&results));
        md.push_str("## Timings\n\n| step | seconds |\n|---|---:|\n");
        for (name, s) in &self.timings {
            let _ = writeln!(md, "| {name} | {s:.1} |");
        }
        md
    }

    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct ColumnJson<'a> {
            label: &'a str,
            precision: String,
            model: String,
            bytes: u64,
            evaluation: &'a Option<afr_runtime::report::Report>,
            quantization: &'a Option<afr_quantize::Report>,
            error: &'a Option<String>,
        }
        let columns: Vec<ColumnJson> = self
            .columns
            .iter()
            .map(|c| ColumnJson {
                label: &c.label,
                precision: c.result.precision.to_string(),
                model: c.result.model.display().to_string(),
                bytes: c.result.bytes,
                evaluation: &c.result.report,
                quantization: &c.result.quantization,
                error: &c.result.error,
            })
            .collect();
        let value = serde_json::json!({
            "run": self.run.display().to_string(),
            "preset": self.config.preset.name,
            "clip": self.config.clip,
            "resnet": self.config.resnet,
            "afr": self.config.afr,
            "trained_on": {
                "data": self.config.train.data,
                "format": self.config.train.format,
                "categories": self.config.categories,
                "epochs": self.config.progress.epoch,
            },
            "test": {
                "data": self.test_data,
                "format": self.test_format.name(),
                "categories": self.test_categories,
            },
            "paper": self.paper,
            "paper_note": self.paper_note,
            "columns": columns,
            "timings": self.timings.iter().map(|(k, s)| serde_json::json!({"step": k, "seconds": s})).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&value).expect("the benchmark serialises")
    }
}

/// `the paper's`, or the switches that differ from it.
fn afr_summary(c: &RunConfig) -> String {
    let d = crate::afr::AfrConfig::default();
    let a = &c.afr;
    let mut changed = Vec::new();
    if a.sp != d.sp {
        changed.push(format!("SP {:?}", a.sp));
    }
    if a.sp_stages != d.sp_stages {
        changed.push(format!("SP in stages 1-{}", a.sp_stages));
    }
    if a.prompt_tokens != d.prompt_tokens {
        changed.push(format!("K = {}", a.prompt_tokens));
    }
    if a.mpfa_window != d.mpfa_window {
        changed.push(format!("MPFA {0}x{0}", a.mpfa_window));
    }
    if !a.cmfr {
        changed.push("no CMFR".to_string());
    }
    if a.tau != d.tau {
        changed.push(format!("tau {}", a.tau));
    }
    if changed.is_empty() {
        "as in the paper".to_string()
    } else {
        changed.join(", ")
    }
}
