//! `afr-toolchain export` (DESIGN.md section 3): the vision branch of a
//! trained run as one fp32 ONNX graph, the text side folded into tables.
//! Each model component writes its ONNX next to its Candle `forward`
//! (`to_onnx`, with the pieces in `onnx_graph`), so the two are read and
//! changed together; this module assembles the graph, its contract and
//! metadata, and the reference outputs that the parity checks replay.

mod reference;

pub use reference::{write_reference, REFERENCE_SAMPLES};

use std::path::{Path, PathBuf};

use afr_quantize::onnx::{ElemType, GraphBuilder, Model, OnnxError};
use afr_runtime::dataset::{Dataset, DatasetError, Format, Split};
use afr_runtime::model_info::{MAX_CATEGORIES, MAX_CATEGORY_LEN};
use afr_runtime::postprocess::default_sigma;
use afr_runtime::preprocess::{CLIP_MEAN, CLIP_STD};
use candle_core::Device;

use crate::afr::prompts::DEFAULT_CATEGORY;
use crate::afr::AfrClip;
use crate::onnx_graph::GraphError;
use crate::train::model::BuildError;
use crate::train::run::{self, RunConfig, RunError};
use crate::weights::WeightError;

/// `afr.format_version` of the files written here.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("categories: {0}")]
    Categories(String),
    #[error("{path}: {message}")]
    Reference { path: PathBuf, message: String },
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// What `export` wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub out: PathBuf,
    /// The category table, in index order (always holds `object`).
    pub categories: Vec<String>,
    pub nodes: usize,
    pub bytes: usize,
    pub reference: Option<PathBuf>,
    /// The device the reference outputs were computed on.
    pub device: String,
}

/// Exports the run in `run_dir` to `out`, with a stateless table for
/// `categories` (default: the categories it was trained on) plus `object`;
/// with `reference_out`, also Candle's outputs on seeded inputs.
pub fn export(
    run_dir: &Path,
    categories: Option<&[String]>,
    out: &Path,
    reference_out: Option<&Path>,
    device: &Device,
) -> Result<ExportSummary> {
    let cfg = RunConfig::read(run_dir)?;
    let categories = categories.map(<[String]>::to_vec).unwrap_or_else(|| cfg.categories.clone());
    check_categories(&categories)?;
    let (model, params) = crate::train::model::build(&cfg, &categories, device)?;
    let checkpoint = run_dir.join(&cfg.checkpoint);
    params.assign(&run::load_tensors(run_dir, &cfg.checkpoint, &cfg, device)?, &checkpoint)?;
    let onnx = to_onnx(&model, &run::sha256_file(&checkpoint)?)?;
    onnx.write(out)?;
    if let Some(path) = reference_out {
        write_reference(&model, path, device)?;
    }
    Ok(ExportSummary {
        out: out.to_path_buf(),
        categories: model.tables().categories.clone(),
        nodes: onnx.proto.graph.as_ref().map_or(0, |g| g.node.len()),
        bytes: onnx.to_bytes().len(),
        reference: reference_out.map(Path::to_path_buf),
        device: crate::device::describe(device),
    })
}

/// An untrained model (adapters at identity, prompts at their initial
/// values) from a preset and backbone weights (`random:SEED` or a file):
/// what `export --preset` writes, for benches and quantization tests at
/// full model size without a training run.
pub fn untrained(preset: &str, clip: &str, resnet: &str, categories: &[String], device: &Device) -> Result<Model> {
    use crate::train::run::{TrainSettings, WeightRef};
    check_categories(categories)?;
    let preset = crate::preset::Preset::resolve(preset).map_err(|e| GraphError::Invalid(e.to_string()))?;
    let train = TrainSettings {
        data: PathBuf::new(),
        format: String::new(),
        epochs: 0,
        batch_size: 1,
        lr: 0.0,
        betas: (0.9, 0.999),
        seed: 0,
    };
    let cfg = RunConfig::new(
        preset,
        crate::afr::AfrConfig::default(),
        WeightRef::new(clip)?,
        WeightRef::new(resnet)?,
        crate::afr::prompts::PromptSet::builtin(),
        categories.to_vec(),
        train,
    );
    let (model, _) = crate::train::model::build(&cfg, categories, device)?;
    to_onnx(&model, "untrained")
}

/// `base` followed by every category of the dataset at `data` (its test
/// split) that `base` lacks: the table that scores that dataset zero-shot,
/// each category with its own stateless prompt, as the paper evaluates
/// unseen categories (and as `afr-toolchain evaluate` does).
pub fn add_dataset_categories(base: &[String], data: &Path, format: Format) -> Result<Vec<String>> {
    let mut table = base.to_vec();
    for c in Dataset::open(data, format, Split::Test, None)?.categories() {
        if !table.contains(&c) {
            table.push(c);
        }
    }
    Ok(table)
}

/// Names go into a comma-separated metadata entry, within the runtime's limits.
fn check_categories(categories: &[String]) -> Result<()> {
    for (i, c) in categories.iter().enumerate() {
        if c.trim().is_empty() || c.contains(',') || c.trim() != c {
            return Err(ExportError::Categories(format!(
                "`{c}` is not a category name (empty, holds a comma or surrounding spaces)"
            )));
        }
        if c.len() > MAX_CATEGORY_LEN {
            return Err(ExportError::Categories(format!(
                "`{c}` is longer than the runtime's {MAX_CATEGORY_LEN} bytes"
            )));
        }
        if categories[..i].contains(c) {
            return Err(ExportError::Categories(format!("`{c}` is given twice")));
        }
    }
    let rows = categories.len() + usize::from(!categories.iter().any(|c| c == DEFAULT_CATEGORY));
    if rows > MAX_CATEGORIES {
        return Err(ExportError::Categories(format!(
            "{rows} rows (with `{DEFAULT_CATEGORY}`) are more than the runtime's {MAX_CATEGORIES}"
        )));
    }
    Ok(())
}

/// The graph of DESIGN.md section 3: inputs `image` f32 `[1, 3, S, S]` and
/// `category` i64 `[1]`; outputs `image_score` `[1]` and `anomaly_map`
/// `[1, h, w]`; `afr.*` metadata.
pub fn to_onnx(model: &AfrClip, source_sha256: &str) -> Result<Model> {
    let preset = model.preset();
    let (s, grid) = (preset.input_size, preset.grid());
    let mut g = GraphBuilder::new("afr_clip");
    let image = g.input("image", ElemType::F32, &[1, 3, s, s])?;
    let category = g.input("category", ElemType::I64, &[1])?;
    let (score, map) = model.to_onnx(&mut g, &image, &category)?;
    g.output(&score, "image_score", ElemType::F32, &[1])?;
    g.output(&map, "anomaly_map", ElemType::F32, &[1, grid, grid])?;
    let list = |v: &[f32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    g.metadata("afr.format_version", FORMAT_VERSION.to_string());
    g.metadata("afr.preset", preset.name.clone());
    g.metadata("afr.input_size", s.to_string());
    g.metadata("afr.mean", list(&CLIP_MEAN));
    g.metadata("afr.std", list(&CLIP_STD));
    g.metadata("afr.resize", "bicubic");
    g.metadata("afr.categories", model.tables().categories.join(","));
    g.metadata("afr.precision", "fp32");
    g.metadata("afr.smoothing_sigma", default_sigma(s).to_string());
    g.metadata("afr.source_sha256", source_sha256);
    let mut onnx = g.finish();
    // Last: the hash covers the weights as written.
    afr_runtime::weights_sha256::stamp(&mut onnx.proto);
    Ok(onnx)
}
