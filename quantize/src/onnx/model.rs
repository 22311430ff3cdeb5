//! A whole ONNX model: encoding, decoding, atomic writes and metadata.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{ModelProto, OperatorSetIdProto, StringStringEntryProto};

use super::{OnnxError, Result};

/// IR version 8 is what opset 17 ships with (ONNX 1.12).
pub const IR_VERSION: i64 = 8;
/// LayerNormalization exists from opset 17.
pub const OPSET: i64 = 17;

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub proto: ModelProto,
}

impl Model {
    /// A model around `graph` with our IR version, opset and producer.
    pub fn new(graph: tract_onnx::pb::GraphProto, metadata: Vec<(String, String)>) -> Self {
        Self {
            proto: ModelProto {
                ir_version: IR_VERSION,
                opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
                producer_name: "afr-clip".into(),
                producer_version: env!("CARGO_PKG_VERSION").into(),
                graph: Some(graph),
                metadata_props: metadata
                    .into_iter()
                    .map(|(key, value)| StringStringEntryProto { key, value })
                    .collect(),
                ..Default::default()
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// `origin` names the bytes in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let proto =
            ModelProto::decode(bytes).map_err(|source| OnnxError::Decode { path: origin.to_path_buf(), source })?;
        Ok(Self { proto })
    }

    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// Written to a temporary file and renamed: never half a model under `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        afr_runtime::atomic::write_atomic(path, &self.to_bytes())
            .map_err(|source| OnnxError::Io { path: path.to_path_buf(), source })
    }

    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.proto.metadata_props.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Sets `key`, replacing an earlier value.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        match self.proto.metadata_props.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value.to_string(),
            None => self.proto.metadata_props.push(StringStringEntryProto { key: key.into(), value: value.into() }),
        }
    }
}
