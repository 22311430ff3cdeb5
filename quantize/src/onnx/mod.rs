//! ONNX models as AFR-CLIP writes and reads them: `ModelProto` from
//! `tract_onnx::pb` (IR version 8, opset 17), a graph builder that names
//! tensors and nodes readably, and errors that name the file.

mod builder;
mod model;

pub(crate) use builder::attribute;
pub use builder::{AttrValue, ElemType, GraphBuilder};
pub use model::{Model, IR_VERSION, OPSET};
pub use tract_onnx::pb;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model (protobuf decoding failed: {source})")]
    Decode {
        path: PathBuf,
        #[source]
        source: prost::DecodeError,
    },
    #[error("tensor `{name}`: dims {dims:?} hold {expected} values, the data has {found}")]
    DataLength { name: String, dims: Vec<usize>, expected: usize, found: usize },
    #[error("graph output `{0}` is declared twice")]
    DuplicateOutput(String),
    #[error("graph input `{0}` clashes with a tensor of the same name")]
    DuplicateInput(String),
}

pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
