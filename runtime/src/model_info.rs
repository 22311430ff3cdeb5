//! What an AFR ONNX file says about itself (DESIGN.md section 3): the `afr.*`
//! metadata, the graph's inputs and outputs, and its size. Read from the
//! ModelProto before tract sees the graph, so that a file that is not ours is
//! refused with a message naming it rather than failing somewhere in tract.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{tensor_shape_proto, type_proto, GraphProto, ModelProto, TensorProto, ValueInfoProto};

use crate::prototypes::Prototypes;

/// The `afr.format_version` this runtime reads.
pub const FORMAT_VERSION: u32 = 1;
/// Most categories a model's table may hold (the peers' benchmarks have < 30).
pub const MAX_CATEGORIES: usize = 128;
/// Longest category name, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// Largest model file read: protobuf's own limit for one message (2 GiB).
pub const MAX_MODEL_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest accepted `afr.input_size`.
pub const MAX_INPUT_SIZE: usize = 4096;
/// Largest accepted `afr.smoothing_sigma`, as a fraction of `afr.input_size`:
/// the default is 1/129.5 of it (4 px at 518), and a kernel far wider than
/// the map only blurs it flat while its cost grows with the width.
pub const MAX_SIGMA_FRACTION: f32 = 1.0 / 8.0;
/// The precisions a model may declare in `afr.precision`.
pub const PRECISIONS: [&str; 3] = ["fp32", "fp16", "int8"];

pub type CategoryName = heapless::String<MAX_CATEGORY_LEN>;
pub type Categories = heapless::Vec<CategoryName, MAX_CATEGORIES>;

/// Metadata keys every AFR model carries.
pub const REQUIRED_KEYS: [&str; 10] = [
    "afr.format_version",
    "afr.preset",
    "afr.input_size",
    "afr.mean",
    "afr.std",
    "afr.resize",
    "afr.categories",
    "afr.precision",
    "afr.smoothing_sigma",
    "afr.source_sha256",
];

/// The category every model's table ends with, used for names it does not know.
pub const FALLBACK_CATEGORY: &str = "object";

/// Why a model file cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: empty file (0 bytes), not a model")]
    Empty { path: PathBuf },
    #[error("{path}: cannot read the model: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: model file is {bytes} bytes, over the {MAX_MODEL_BYTES}-byte limit")]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{path}: not a valid ONNX file (truncated or corrupt?): {detail}")]
    NotOnnx { path: PathBuf, detail: String },
    #[error("{path}: not an AFR model: it has no afr.* metadata (was it written by `afr-toolchain export`?)")]
    NotOurs { path: PathBuf },
    #[error("{path}: metadata {key} is missing")]
    MissingKey { path: PathBuf, key: &'static str },
    #[error("{path}: metadata {key} = {value:?} is invalid: {problem}")]
    BadValue { path: PathBuf, key: &'static str, value: String, problem: String },
    #[error("{path}: afr.format_version {found} is not supported (this runtime reads version {FORMAT_VERSION}); use a matching runtime or re-export")]
    UnknownVersion { path: PathBuf, found: String },
    #[error("{path}: the graph does not follow the AFR contract: {problem}")]
    Contract { path: PathBuf, problem: String },
    #[error("{path}: afr.categories lists {listed} categories but the category table {table} has {rows} rows")]
    CategoryRows { path: PathBuf, listed: usize, table: String, rows: usize },
    #[error("{path}: the weights do not match afr.weights_sha256 (the file was altered or is corrupt): expected {expected}, found {found}")]
    WeightsAltered { path: PathBuf, expected: String, found: String },
}

/// The model's description: its metadata, parsed, and counts from the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format_version: u32,
    pub preset: String,
    /// S: the model reads `[1, 3, S, S]`.
    pub input_size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Resampling filter of the preprocessing (`bicubic`).
    pub resize: String,
    /// The stateless table's rows, in index order.
    pub categories: Categories,
    /// `fp32`, `fp16` or `int8`.
    pub precision: String,
    /// Gaussian sigma in pixels of the S x S input (0: no smoothing).
    pub smoothing_sigma: f32,
    pub source_sha256: String,
    /// Sum of the initializers' element counts.
    pub parameters: u64,
    pub file_bytes: u64,
    /// Every metadata entry, `afr.*` or not.
    pub metadata: BTreeMap<String, String>,
    /// The normal and abnormal prototypes, when the file keeps them.
    pub prototypes: Option<Prototypes>,
}

impl ModelInfo {
    /// Reads and describes the model at `path` (the whole file is decoded).
    pub fn load(path: &Path) -> Result<ModelInfo, ModelError> {
        let proto = read_proto(path)?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        ModelInfo::from_proto(path, &proto, bytes)
    }

    /// Describes an already decoded model; checks the metadata and the graph's
    /// inputs and outputs against the contract.
    pub fn from_proto(path: &Path, proto: &ModelProto, file_bytes: u64) -> Result<ModelInfo, ModelError> {
        let metadata: BTreeMap<String, String> =
            proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        if !metadata.keys().any(|k| k.starts_with("afr.")) {
            return Err(ModelError::NotOurs { path: path.to_path_buf() });
        }
        let get = |key: &'static str| {
            metadata.get(key).map(|v| v.trim()).ok_or(ModelError::MissingKey { path: path.to_path_buf(), key })
        };
        let bad = |key: &'static str, value: &str, problem: String| ModelError::BadValue {
            path: path.to_path_buf(),
            key,
            value: value.to_string(),
            problem,
        };
        // The version first: a newer file may have changed any other key.
        let version = get("afr.format_version")?;
        let format_version = match version.parse::<u32>() {
            Ok(FORMAT_VERSION) => FORMAT_VERSION,
            _ => return Err(ModelError::UnknownVersion { path: path.to_path_buf(), found: version.to_string() }),
        };
        for key in REQUIRED_KEYS {
            get(key)?;
        }
        let size_text = get("afr.input_size")?;
        let input_size =
            size_text.parse::<usize>().ok().filter(|s| (1..=MAX_INPUT_SIZE).contains(s)).ok_or_else(|| {
                bad("afr.input_size", size_text, format!("expected an integer in 1..={MAX_INPUT_SIZE}"))
            })?;
        let triple = |key: &'static str, positive: bool| -> Result<[f32; 3], ModelError> {
            let text = get(key)?;
            let values: Vec<f32> = text
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(key, text, e.to_string()))?;
            if values.len() != 3 || values.iter().any(|v| !v.is_finite() || (positive && *v <= 0.0)) {
                return Err(bad(key, text, "expected three finite comma-separated numbers".into()));
            }
            Ok([values[0], values[1], values[2]])
        };
        let mean = triple("afr.mean", false)?;
        let std = triple("afr.std", true)?;
        let resize = get("afr.resize")?.to_ascii_lowercase();
        if resize != "bicubic" {
            return Err(bad("afr.resize", &resize, "this runtime implements bicubic resizing only".into()));
        }
        let sigma_text = get("afr.smoothing_sigma")?;
        let max_sigma = input_size as f32 * MAX_SIGMA_FRACTION;
        let smoothing_sigma =
            sigma_text.parse::<f32>().ok().filter(|s| s.is_finite() && (0.0..=max_sigma).contains(s)).ok_or_else(
                || {
                    bad(
                        "afr.smoothing_sigma",
                        sigma_text,
                        format!("expected a number in 0..={max_sigma} pixels (at most afr.input_size / 8)"),
                    )
                },
            )?;
        let precision = get("afr.precision")?;
        if !PRECISIONS.contains(&precision) {
            return Err(bad("afr.precision", precision, format!("expected one of {}", PRECISIONS.join(", "))));
        }
        let categories = parse_categories(get("afr.categories")?)
            .map_err(|p| bad("afr.categories", get("afr.categories").unwrap_or(""), p))?;
        let info = ModelInfo {
            path: path.to_path_buf(),
            format_version,
            preset: get("afr.preset")?.to_string(),
            input_size,
            mean,
            std,
            resize,
            categories,
            precision: precision.to_string(),
            smoothing_sigma,
            source_sha256: get("afr.source_sha256")?.to_string(),
            parameters: proto
                .graph
                .as_ref()
                .map_or(0, |g| g.initializer.iter().map(element_count).fold(0, u64::saturating_add)),
            file_bytes,
            metadata: metadata.clone(),
            prototypes: match &proto.graph {
                Some(g) => Prototypes::from_graph(path, g)?,
                None => None,
            },
        };
        info.check_graph(proto)?;
        if let Some(g) = &proto.graph {
            info.check_table_rows(g)?;
        }
        Ok(info)
    }

    /// Row of `name` in the category table.
    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.as_str() == name)
    }

    /// Row of `name`, else of [`FALLBACK_CATEGORY`] (zero-shot on a category
    /// the table does not hold).
    pub fn category_or_default(&self, name: &str) -> Option<usize> {
        self.category_index(name).or_else(|| self.category_index(FALLBACK_CATEGORY))
    }

    fn check_graph(&self, proto: &ModelProto) -> Result<(), ModelError> {
        let contract = |problem: String| ModelError::Contract { path: self.path.clone(), problem };
        let graph = proto.graph.as_ref().ok_or_else(|| contract("the file has no graph".into()))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&str> =
            graph.input.iter().map(|i| i.name.as_str()).filter(|n| !initializers.contains(n)).collect();
        let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        if inputs != ["image", "category"] {
            return Err(contract(format!("inputs are {inputs:?}, expected [\"image\", \"category\"]")));
        }
        for name in ["image_score", "anomaly_map"] {
            if !outputs.contains(&name) {
                return Err(contract(format!("outputs are {outputs:?}, missing {name:?}")));
            }
        }
        // A declared image size other than afr.input_size would fail deep
        // inside tract's shape inference.
        let declared = graph.input.iter().find(|i| i.name == "image").and_then(declared_dims).unwrap_or_default();
        let s = self.input_size as i64;
        if let [_, _, h, w] = declared[..] {
            if h.is_some_and(|h| h != s) || w.is_some_and(|w| w != s) {
                let shown: Vec<String> = declared.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
                return Err(contract(format!(
                    "afr.input_size is {s} but the graph's image input is [{}]",
                    shown.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Every table the graph indexes with `category` (a Gather on an
    /// initializer) must have a row for each listed category: tract would
    /// otherwise index out of range on the first frame of a late category.
    fn check_table_rows(&self, graph: &GraphProto) -> Result<(), ModelError> {
        for node in
            graph.node.iter().filter(|n| n.op_type == "Gather" && n.input.get(1).is_some_and(|i| i == "category"))
        {
            let Some(table) = node.input.first().and_then(|t| graph.initializer.iter().find(|i| &i.name == t)) else {
                continue;
            };
            let axis = node.attribute.iter().find(|a| a.name == "axis").map_or(0, |a| a.i);
            let rank = table.dims.len() as i64;
            let axis = if axis < 0 { axis + rank } else { axis };
            let Some(&rows) = usize::try_from(axis).ok().and_then(|a| table.dims.get(a)) else { continue };
            let listed = self.categories.len();
            if rows < listed as i64 {
                return Err(ModelError::CategoryRows {
                    path: self.path.clone(),
                    listed,
                    table: table.name.clone(),
                    rows: rows.max(0) as usize,
                });
            }
        }
        Ok(())
    }
}

/// Reads `path` (at most [`MAX_MODEL_BYTES`]) and decodes its ModelProto.
pub fn read_proto(path: &Path) -> Result<ModelProto, ModelError> {
    let read = |source| ModelError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.is_dir() {
        return Err(read(std::io::Error::other("is a directory")));
    }
    if meta.len() == 0 {
        return Err(ModelError::Empty { path: path.to_path_buf() });
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge { path: path.to_path_buf(), bytes: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    decode_proto(path, &bytes)
}

/// Decodes a model held in memory; `path` names it in errors.
pub fn decode_proto(path: &Path, bytes: &[u8]) -> Result<ModelProto, ModelError> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge { path: path.to_path_buf(), bytes: bytes.len() as u64 });
    }
    let proto = ModelProto::decode(bytes)
        .map_err(|e| ModelError::NotOnnx { path: path.to_path_buf(), detail: e.to_string() })?;
    // An empty or cut-off file can still decode as a message with no graph.
    if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(ModelError::NotOnnx {
            path: path.to_path_buf(),
            detail: "no graph (empty or cut-off file)".into(),
        });
    }
    Ok(proto)
}

fn parse_categories(text: &str) -> Result<Categories, String> {
    let mut out = Categories::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err("empty category name".into());
        }
        let mut s = CategoryName::new();
        s.push_str(name).map_err(|_| format!("category {name:?} is longer than {MAX_CATEGORY_LEN} bytes"))?;
        if out.iter().any(|c| c == &s) {
            return Err(format!("category {name:?} appears twice"));
        }
        out.push(s).map_err(|_| format!("more than {MAX_CATEGORIES} categories"))?;
    }
    Ok(out)
}

/// The declared dims of a graph input (`None` for a symbolic one).
fn declared_dims(input: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref()?.value.as_ref() else { return None };
    let dims = t.shape.as_ref()?.dim.iter().map(|d| match &d.value {
        Some(tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => Some(*v),
        _ => None,
    });
    Some(dims.collect())
}

/// Saturating: a crafted file's dims may multiply past u64.
fn element_count(t: &TensorProto) -> u64 {
    t.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d.max(0) as u64))
}
