//! The end-to-end demo on a built-in default: a synthetic dataset, training
//! the tiny preset with seeded random backbones on four categories, export
//! to ONNX, and evaluation of the exported model in the tract runtime on the
//! fifth, unseen category; then fp16 and int8 models made from it by
//! afr-quantize (int8 with per-frame activation ranges, its default; drift
//! measured on training images) and evaluated the same way. `DIR/report.md` shows the three side by side (metrics, file sizes,
//! drift from fp32) and a few heatmaps.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use afr_quantize::Precision;
use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::detector::Detector;
use afr_runtime::report::Report;
use afr_runtime::{heatmap, image_io};
use candle_core::Device;

use crate::afr::AfrConfig;
use crate::precisions::{self, EvalSettings, PrecisionResult};
use crate::synth::{self, SynthConfig};
use crate::train::trainer::{self, Observer, TrainOptions};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Synth(#[from] synth::SynthError),
    #[error(transparent)]
    Train(#[from] trainer::TrainError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Dataset(#[from] afr_runtime::dataset::DatasetError),
    #[error(transparent)]
    Detector(#[from] afr_runtime::detector::DetectorError),
    #[error(transparent)]
    Eval(#[from] afr_runtime::evaluate::EvalError),
    #[error(transparent)]
    Image(#[from] afr_runtime::image_io::ImageError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    /// Side of the synthetic images.
    pub size: u32,
    pub epochs: usize,
    /// The unseen category evaluated on.
    pub held_out: String,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { seed: 0, size: 64, epochs: 20, held_out: "bolt".into() }
    }
}

/// Calibration images taken from the training set (spread over it).
const CALIBRATION_IMAGES: usize = 32;

/// What the demo measured.
#[derive(Debug)]
pub struct DemoSummary {
    /// The fp32 model's evaluation.
    pub report: Report,
    pub markdown: PathBuf,
    /// fp32, fp16 and int8, in that order.
    pub precisions: Vec<PrecisionResult>,
}

/// Runs the demo into `out`; `step` is told what starts, `obs` follows training.
pub fn run(
    out: &Path,
    opts: &DemoOptions,
    device: &Device,
    step: &mut dyn FnMut(&str),
    obs: &mut dyn Observer,
) -> Result<DemoSummary, DemoError> {
    let categories = synth::category_names();
    if !categories.contains(&opts.held_out.as_str()) {
        return Err(DemoError::Setup(format!("held-out category {:?} is not one of {categories:?}", opts.held_out)));
    }
    let seen: Vec<String> = categories.iter().filter(|c| **c != opts.held_out).map(|c| c.to_string()).collect();
    let (data, run_dir, model) = (out.join("data"), out.join("run"), out.join("model.onnx"));
    if run_dir.exists() {
        return Err(DemoError::Setup(format!("{} holds a previous demo; choose another --out", out.display())));
    }
    let mut timings: Vec<(String, f64, String)> = Vec::new();

    step("writing the synthetic dataset");
    let t = Instant::now();
    let synth_cfg = SynthConfig { seed: opts.seed, size: opts.size, ..SynthConfig::default() };
    let written = synth::generate(&data, &synth_cfg, |_, _| {})?;
    timings.push(("synthetic data".into(), t.elapsed().as_secs_f64(), format!("{} images", written.images)));

    step("training the tiny preset on the seen categories");
    let t = Instant::now();
    let train = TrainOptions {
        preset: "tiny".into(),
        clip: format!("random:{}", opts.seed),
        resnet: format!("random:{}", opts.seed + 1),
        data: data.clone(),
        format: Format::Mvtec,
        categories: Some(seen.clone()),
        prompts: None,
        afr: AfrConfig::default(),
        epochs: opts.epochs,
        batch_size: 4,
        lr: 1e-3,
        betas: (0.9, 0.999),
        seed: opts.seed,
    };
    trainer::start(&train, &run_dir, device, &AtomicBool::new(false), obs)?;
    let seconds = t.elapsed().as_secs_f64();
    let log = trainer::read_log(&run_dir);
    let ips = log.iter().map(|l| l["images_per_s"]).sum::<f64>() / log.len().max(1) as f64;
    timings.push(("training".into(), seconds, format!("{} epochs, {ips:.1} images/s", opts.epochs)));

    step("exporting to ONNX");
    let t = Instant::now();
    let mut table = seen.clone();
    table.push(opts.held_out.clone());
    crate::export::export(&run_dir, Some(&table), &model, None, device)?;
    timings.push(("export".into(), t.elapsed().as_secs_f64(), "fp32".to_string()));

    step("evaluating the exported model in tract on the unseen category");
    let t = Instant::now();
    let mut detector = Detector::load(&model)?;
    let held = Dataset::open(&data, Format::Mvtec, Split::Test, Some(std::slice::from_ref(&opts.held_out)))?;
    let results = afr_runtime::evaluate::evaluate(&mut detector, &held, true, |_, _| {})?;
    let report = Report::new(model.display().to_string(), data.display().to_string(), results);
    timings.push((
        "evaluation fp32 (tract)".into(),
        t.elapsed().as_secs_f64(),
        format!("{} images", held.samples.len()),
    ));
    let bytes = std::fs::metadata(&model).map_err(|source| DemoError::Io { path: model.clone(), source })?.len();
    let mut precisions = vec![PrecisionResult {
        precision: Precision::Fp32,
        model: model.clone(),
        bytes,
        report: Some(report.clone()),
        quantization: None,
        error: None,
    }];

    // The training images are the seen categories' test split (DESIGN.md section 2).
    let training = Dataset::open(&data, Format::Mvtec, Split::Test, Some(&seen))?;
    let calibration = precisions::spread_images(&training, CALIBRATION_IMAGES, "training images");
    for precision in [Precision::Fp16, Precision::Int8] {
        step(&format!("quantizing to {precision} and evaluating it in tract"));
        let t = Instant::now();
        let result = precisions::quantized(
            &model,
            out,
            precision,
            Some(&calibration),
            &held,
            EvalSettings::default(),
            |_, _| {},
        );
        if let Some(e) = &result.error {
            step(&format!("no {precision} model: {e}"));
        }
        timings.push((
            format!("{precision}: quantization, drift, evaluation"),
            t.elapsed().as_secs_f64(),
            String::new(),
        ));
        precisions.push(result);
    }
    write_json(&out.join("report.json"), &report, &precisions)?;

    step("drawing heatmaps");
    let heat_dir = out.join("heatmaps");
    std::fs::create_dir_all(&heat_dir).map_err(|source| DemoError::Io { path: heat_dir.clone(), source })?;
    let row = detector.category_or_default(&opts.held_out).expect("the table holds the held-out category");
    let mut shown = Vec::new();
    let mut last_defect = String::new();
    for sample in held.samples.iter().filter(|s| s.anomalous) {
        if sample.defect == last_defect || shown.len() == 4 {
            continue;
        }
        last_defect = sample.defect.clone();
        let rgb = image_io::load_rgb8(&sample.image)?;
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut map = vec![0f32; w * h];
        let scores = detector.score(rgb.as_raw(), w, h, row, &mut map)?;
        let name = format!("{}_{}.png", sample.defect, sample.image.file_stem().unwrap_or_default().to_string_lossy());
        let path = heat_dir.join(&name);
        heatmap::write_png(&path, &heatmap::overlay(&rgb, &map)).map_err(|source| DemoError::Io { path, source })?;
        shown.push((name, sample.defect.clone(), scores.image));
    }

    let mut md = String::new();
    let _ = writeln!(md, "# afr-clip demo\n");
    let _ = writeln!(
        md,
        "Preset `tiny` with seeded random CLIP and ResNet weights, trained on the synthetic categories {} \
         ({} px, seed {}) for {} epochs; the exported fp32 ONNX model evaluated by the tract runtime on the \
         unseen category **{}**.\n",
        seen.join(", "),
        opts.size,
        opts.seed,
        opts.epochs,
        opts.held_out
    );
    let _ = writeln!(md, "## fp32, fp16 and int8\n");
    let _ = writeln!(
        md,
        "The fp16 and int8 models are made from the fp32 export by afr-quantize with its defaults (fp16: f16 \
         weights, f32 arithmetic; int8: integer matmuls in the ViT blocks, activation ranges taken per frame). \
         Drift is the largest difference from the fp32 model's outputs on {} images {} (raw patch maps, \
         smoothing off).\n",
        calibration.paths.len(),
        calibration.source
    );
    md.push_str(&precisions::side_by_side(&precisions));
    let _ = writeln!(md, "\n## Metrics (percent)\n");
    for p in &precisions {
        let _ = writeln!(md, "### {} (`{}`)\n", p.precision, precisions::file_name(&p.model));
        match (&p.report, &p.error) {
            (Some(r), _) => {
                let _ = writeln!(md, "{}", r.to_markdown());
            }
            (None, e) => {
                let _ = writeln!(md, "Not produced: {}\n", e.as_deref().unwrap_or("unknown error"));
            }
        }
    }
    let _ = writeln!(md, "\nRandom backbones know nothing about images: these figures show the pipeline works end to end, not what AFR-CLIP reaches with CLIP's pretrained weights.\n");
    let _ = writeln!(md, "## Timings\n\n| step | seconds | |\n|---|---:|---|");
    for (name, s, what) in &timings {
        let _ = writeln!(md, "| {name} | {s:.1} | {what} |");
    }
    let _ = writeln!(md, "\n## Heatmaps\n");
    for (name, defect, score) in &shown {
        let _ = writeln!(md, "- {defect} (image score {score:.3}): ![{defect}](heatmaps/{name})");
    }
    let markdown = out.join("report.md");
    afr_runtime::atomic::write_atomic(&markdown, md.as_bytes())
        .map_err(|source| DemoError::Io { path: markdown.clone(), source })?;
    Ok(DemoSummary { report, markdown, precisions })
}

/// The fp32 evaluation as DESIGN.md section 3 lays it out, plus
/// `"precisions": {"fp32"|"fp16"|"int8": {model, bytes, report | error, quantization}}`.
fn write_json(path: &Path, fp32: &Report, precisions: &[PrecisionResult]) -> Result<(), DemoError> {
    let mut json: serde_json::Value = serde_json::to_value(fp32).map_err(|e| DemoError::Setup(e.to_string()))?;
    json["precisions"] = precisions::to_json(precisions);
    let text = serde_json::to_string_pretty(&json).map_err(|e| DemoError::Setup(e.to_string()))?;
    afr_runtime::atomic::write_atomic(path, text.as_bytes())
        .map_err(|source| DemoError::Io { path: path.to_path_buf(), source })
}
