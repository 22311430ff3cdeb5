//! AFR-CLIP quantization, and the one place that knows the ONNX protobuf
//! (`onnx`: reading, writing and building models).
//!
//! `graph` and `tensor` are the rewriting tools the passes share; `fp16`
//! and `int8` (with `calibrate`) are the passes; `run` is the front door
//! ([`quantize_file`]) that the CLI and the demo call, `drift` and `report`
//! what it hands back.

pub mod calibrate;
pub mod drift;
pub mod fold;
pub mod fp16;
pub mod graph;
pub mod images;
pub mod int8;
pub mod onnx;
pub mod precision;
pub mod report;
pub mod run;
pub mod tensor;

pub use drift::Drift;
pub use fp16::Fp16Compute;
pub use precision::{KeepFp32, Precision};
pub use report::Report;
pub use run::{quantize_file, quantize_with_images, ImageSet, Options, Phase};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error("initializer `{name}`: {problem}")]
    Tensor { name: String, problem: String },
    #[error("{path}: {problem}")]
    Input { path: PathBuf, problem: String },
    /// The file is not an AFR model, or breaks its contract.
    #[error(transparent)]
    Model(#[from] afr_runtime::model_info::ModelError),
    /// tract could not load or run a model (drift measurement).
    #[error(transparent)]
    Detector(#[from] afr_runtime::detector::DetectorError),
    #[error(transparent)]
    Image(#[from] afr_runtime::image_io::ImageError),
    /// tract could not load or run the fp32 model for calibration.
    #[error("running the model in tract: {0}")]
    Tract(String),
    #[error("calibration: {0}")]
    Calibration(String),
}

/// What a pass decided for one layer (a node with weights), for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
