//! AFR-CLIP quantization, and the one place that knows the ONNX protobuf
//! (`onnx`: reading, writing and building models).
//!
//! `graph` and `tensor` are the rewriting tools the passes share.

pub mod calibrate;
pub mod graph;
pub mod images;
pub mod int8;
pub mod onnx;
pub mod precision;
pub mod tensor;

pub use precision::{KeepFp32, Precision};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error("initializer `{name}`: {problem}")]
    Tensor { name: String, problem: String },
    #[error("{path}: {problem}")]
    Input { path: PathBuf, problem: String },
    #[error(transparent)]
    Image(#[from] afr_runtime::image_io::ImageError),
    #[error("running the model in tract: {0}")]
    Tract(String),
    #[error("calibration: {0}")]
    Calibration(String),
}

/// What a pass decided for one layer (a node with weights), for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerChoice {
    /// The node's name in the fp32 graph.
    pub node: String,
    pub op: String,
    /// e.g. `fp16`, `fp32 (kept)`, `int8 dynamic`, `int8 calibrated`, `int8 weights only`.
    pub choice: String,
    /// Why, in a few words (a measurement, a rule, a user pattern).
    pub reason: String,
    pub weight_bytes_before: usize,
    pub weight_bytes_after: usize,
}
