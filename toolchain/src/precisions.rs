//! An fp32 export and the fp16 / int8 models afr-quantize makes of it, each
//! evaluated by the tract runtime on one dataset: what the demo and the
//! benchmark put side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use afr_quantize::{ImageSet, Options, Precision};
use afr_runtime::dataset::Dataset;
use afr_runtime::detector::{Detector, DetectorOptions};
use afr_runtime::report::Report;

/// One precision of an exported model, evaluated.
#[derive(Debug, Clone)]
pub struct PrecisionResult {
    pub precision: Precision,
    pub model: PathBuf,
    /// File size (0 when the model could not be made).
    pub bytes: u64,
    /// The evaluation; `None` when the model could not be made or evaluated
    /// (`error` says why).
    pub report: Option<Report>,
    /// What afr-quantize did and measured (not for fp32).
    pub quantization: Option<afr_quantize::Report>,
    pub error: Option<String>,
}

/// How the models are evaluated.
#[derive(Debug, Clone, Copy)]
pub struct EvalSettings {
    /// Refuse categories without a row of their own (see `afr eval --strict-categories`).
    pub strict_categories: bool,
    /// tract threads.
    pub threads: usize,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self { strict_categories: true, threads: 1 }
    }
}

/// At most `n` images spread evenly over `data`, for calibration and drift.
pub fn spread_images(data: &Dataset, n: usize, what: &str) -> ImageSet {
    let all: Vec<&PathBuf> = data.samples.iter().map(|s| &s.image).collect();
    let picked = n.min(all.len());
    ImageSet {
        paths: (0..picked).map(|i| all[i * all.len() / picked].clone()).collect(),
        source: format!("spread over the {} {what}", all.len()),
    }
}

/// Evaluates the model at `model` in tract on `data`; `progress(done, total)` per image.
pub fn evaluate_file(
    model: &Path,
    data: &Dataset,
    settings: EvalSettings,
    progress: impl FnMut(usize, usize),
) -> Result<Report, String> {
    let options = DetectorOptions { threads: settings.threads, ..DetectorOptions::default() };
    let mut detector = Detector::load_with(model, options).map_err(|e| e.to_string())?;
    let results = afr_runtime::evaluate::evaluate(&mut detector, data, settings.strict_categories, progress)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    Ok(Report::new(model.display().to_string(), data.root.display().to_string(), results))
}

/// The fp32 export at `model`, evaluated; a failure is recorded in the result.
pub fn fp32(
    model: &Path,
    data: &Dataset,
    settings: EvalSettings,
    progress: impl FnMut(usize, usize),
) -> PrecisionResult {
    let bytes = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    let evaluated = evaluate_file(model, data, settings, progress);
    PrecisionResult {
        precision: Precision::Fp32,
        model: model.to_path_buf(),
        bytes,
        error: evaluated.as_ref().err().cloned(),
        report: evaluated.ok(),
        quantization: None,
    }
}

/// `DIR/model.PRECISION.onnx` made from the fp32 `model` by afr-quantize
/// with its defaults (drift measured on `calibration`, or on seeded random
/// images without it), then evaluated on `data`. A failure is recorded in
/// the result, not returned: the other precisions still show.
pub fn quantized(
    model: &Path,
    dir: &Path,
    precision: Precision,
    calibration: Option<&ImageSet>,
    data: &Dataset,
    settings: EvalSettings,
    progress: impl FnMut(usize, usize),
) -> PrecisionResult {
    let path = dir.join(format!("model.{precision}.onnx"));
    let made = afr_quantize::quantize_with_images(
        model,
        &path,
        &Options::new(precision),
        calibration.cloned(),
        &mut |_, _, _| {},
    )
    .map_err(|e| e.to_string())
    .and_then(|q| Ok((evaluate_file(&path, data, settings, progress)?, q)));
    match made {
        Ok((report, q)) => PrecisionResult {
            precision,
            bytes: q.bytes_after,
            model: path,
            report: Some(report),
            quantization: Some(q),
            error: None,
        },
        Err(e) => {
            PrecisionResult { precision, model: path, bytes: 0, report: None, quantization: None, error: Some(e) }
        }
    }
}

pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// One row per precision: file, size, drift from fp32 and the mean metrics.
pub fn side_by_side(precisions: &[PrecisionResult]) -> String {
    let fp32_bytes = precisions.iter().find(|p| p.precision == Precision::Fp32).map_or(0, |p| p.bytes);
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", 100.0 * v));
    let mut md = String::from(
        "| precision | file | size (MiB) | vs fp32 | map drift | score drift | image AUROC | pixel AUROC | AUPRO |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in precisions {
        let name = file_name(&p.model);
        let Some(report) = &p.report else {
            let _ = writeln!(md, "| {} | `{name}` | - | - | - | - | not produced | | |", p.precision);
            continue;
        };
        let drift = p.quantization.as_ref().and_then(|q| q.drift.as_ref());
        let (map, score) = drift.map_or(("-".into(), "-".into()), |d| {
            (format!("{:.1e}", d.max_abs_map), format!("{:.1e}", d.max_abs_score))
        });
        let ratio =
            if fp32_bytes == 0 { "-".to_string() } else { format!("{:.2}", p.bytes as f64 / fp32_bytes as f64) };
        let _ = writeln!(
            md,
            "| {} | `{name}` | {:.2} | {ratio} | {map} | {score} | {} | {} | {} |",
            p.precision,
            p.bytes as f64 / (1024.0 * 1024.0),
            percent(report.mean.image_auroc),
            percent(report.mean.pixel_auroc),
            percent(report.mean.aupro),
        );
    }
    md
}

/// `{"fp32"|"fp16"|"int8": {model, bytes, evaluation | error, quantization}}`.
pub fn to_json(precisions: &[PrecisionResult]) -> serde_json::Value {
    let mut all = serde_json::Map::new();
    for p in precisions {
        let entry = serde_json::json!({
            "model": p.model.display().to_string(),
            "bytes": p.bytes,
            "evaluation": p.report,
            "quantization": p.quantization,
            "error": p.error,
        });
        all.insert(p.precision.to_string(), entry);
    }
    serde_json::Value::Object(all)
}
