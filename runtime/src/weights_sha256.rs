//! `afr.weights_sha256`: a SHA-256 of a model's weights, written by the
//! export and by `afr-quantize` and checked when the runtime loads the file,
//! so that a weight altered on disk or in transit is refused instead of
//! scoring silently wrong.
//!
//! What is hashed (the canonical order): the graph's initializers sorted by
//! name (byte order); for each, in little-endian,
//! - the name's length (u64) and its UTF-8 bytes,
//! - the ONNX data type (i32), the number of dims (u64) and each dim (i64),
//! - the payload's length in bytes (u64) and the payload: `raw_data` when it
//!   is not empty, else the typed fields in the order `float_data` (f32),
//!   `int32_data` (i32), `string_data` (u64 length + bytes each),
//!   `int64_data` (i64), `double_data` (f64), `uint64_data` (u64).
//!
//! Node attributes and metadata are not covered: the hash is of the weights
//! only (the graph's structure is checked against the contract at load).

use std::path::Path;

use sha2::{Digest, Sha256};
use tract_onnx::pb::{GraphProto, ModelProto, TensorProto};

use crate::model_info::ModelError;

/// The metadata key that holds the hash (64 lowercase hex digits).
pub const KEY: &str = "afr.weights_sha256";

/// The hash of `graph`'s initializers, as 64 lowercase hex digits.
pub fn weights_sha256(graph: &GraphProto) -> String {
    let mut order: Vec<&TensorProto> = graph.initializer.iter().collect();
    order.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut h = Sha256::new();
    for t in order {
        h.update((t.name.len() as u64).to_le_bytes());
        h.update(t.name.as_bytes());
        h.update(t.data_type.to_le_bytes());
        h.update((t.dims.len() as u64).to_le_bytes());
        for d in &t.dims {
            h.update(d.to_le_bytes());
        }
        if !t.raw_data.is_empty() {
            h.update((t.raw_data.len() as u64).to_le_bytes());
            h.update(&t.raw_data);
        } else {
            hash_typed(&mut h, t);
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_typed(h: &mut Sha256, t: &TensorProto) {
    let strings: usize = t.string_data.iter().map(|s| 8 + s.len()).sum();
    let bytes = 4 * (t.float_data.len() + t.int32_data.len())
        + 8 * (t.int64_data.len() + t.double_data.len() + t.uint64_data.len())
        + strings;
    h.update((bytes as u64).to_le_bytes());
    let mut buf = Chunked { h, buf: Vec::with_capacity(CHUNK) };
    t.float_data.iter().for_each(|v| buf.put(&v.to_le_bytes()));
    t.int32_data.iter().for_each(|v| buf.put(&v.to_le_bytes()));
    for s in &t.string_data {
        buf.put(&(s.len() as u64).to_le_bytes());
        buf.put(s);
    }
    t.int64_data.iter().for_each(|v| buf.put(&v.to_le_bytes()));
    t.double_data.iter().for_each(|v| buf.put(&v.to_le_bytes()));
    t.uint64_data.iter().for_each(|v| buf.put(&v.to_le_bytes()));
    buf.flush();
}

const CHUNK: usize = 1 << 16;

/// Feeds the hasher in 64 KiB blocks: one `update` per element would cost
/// more than the hashing itself.
struct Chunked<'a> {
    h: &'a mut Sha256,
    buf: Vec<u8>,
}

impl Chunked<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > CHUNK {
            self.flush();
        }
        if bytes.len() > CHUNK {
            self.h.update(bytes);
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn flush(&mut self) {
        self.h.update(&self.buf);
        self.buf.clear();
    }
}

/// Sets `model`'s `afr.weights_sha256` to the hash of its weights as they
/// are now (replacing an earlier value).
pub fn stamp(model: &mut ModelProto) {
    let digest = model.graph.as_ref().map(weights_sha256).unwrap_or_else(|| weights_sha256(&GraphProto::default()));
    match model.metadata_props.iter_mut().find(|e| e.key == KEY) {
        Some(e) => e.value = digest,
        None => model.metadata_props.push(tract_onnx::pb::StringStringEntryProto { key: KEY.into(), value: digest }),
    }
}

/// Recomputes `model`'s `afr.weights_sha256` when it has one: what a pass
/// that rewrites weights calls, so that its output verifies.
pub fn refresh(model: &mut ModelProto) {
    if model.metadata_props.iter().any(|e| e.key == KEY) {
        stamp(model);
    }
}

/// Checks `model`'s weights against its `afr.weights_sha256`; a file
/// without the key (written before it existed) passes unchecked.
pub fn verify(path: &Path, model: &ModelProto) -> Result<(), ModelError> {
    let Some(expected) = model.metadata_props.iter().find(|e| e.key == KEY).map(|e| e.value.trim()) else {
        return Ok(());
    };
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ModelError::BadValue {
            path: path.to_path_buf(),
            key: KEY,
            value: expected.to_string(),
            problem: "expected 64 lowercase hex digits".into(),
        });
    }
    let found = model.graph.as_ref().map(weights_sha256).unwrap_or_default();
    if found != expected {
        return Err(ModelError::WeightsAltered { path: path.to_path_buf(), expected: expected.to_string(), found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::tensor_proto::DataType;

    fn tensor(name: &str, raw: &[u8]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![raw.len() as i64],
            data_type: DataType::Uint8 as i32,
            raw_data: raw.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn order_free_and_sensitive_to_every_byte_name_and_shape() {
        let a = GraphProto { initializer: vec![tensor("a", &[1, 2]), tensor("b", &[3])], ..Default::default() };
        let swapped = GraphProto { initializer: vec![tensor("b", &[3]), tensor("a", &[1, 2])], ..Default::default() };
        assert_eq!(weights_sha256(&a), weights_sha256(&swapped));
        assert_eq!(weights_sha256(&a).len(), 64);
        let flipped = GraphProto { initializer: vec![tensor("a", &[1, 3]), tensor("b", &[3])], ..Default::default() };
        let renamed = GraphProto { initializer: vec![tensor("a", &[1, 2]), tensor("c", &[3])], ..Default::default() };
        // The same bytes split differently between the two tensors.
        let moved = GraphProto { initializer: vec![tensor("a", &[1]), tensor("b", &[2, 3])], ..Default::default() };
        let mut reshaped = a.clone();
        reshaped.initializer[0].dims = vec![1, 2];
        for other in [flipped, renamed, moved, reshaped] {
            assert_ne!(weights_sha256(&a), weights_sha256(&other));
        }
    }

    #[test]
    fn stamp_then_verify_and_refuse_a_changed_weight() {
        let graph = GraphProto { initializer: vec![tensor("w", &[9, 8, 7])], ..Default::default() };
        let mut model = ModelProto { graph: Some(graph), ..Default::default() };
        let path = Path::new("m.onnx");
        verify(path, &model).unwrap(); // no key: unchecked
        stamp(&mut model);
        verify(path, &model).unwrap();
        stamp(&mut model); // replaces, does not add a second entry
        assert_eq!(model.metadata_props.iter().filter(|e| e.key == KEY).count(), 1);
        if let Some(g) = model.graph.as_mut() {
            g.initializer[0].raw_data[1] ^= 1;
        }
        let err = verify(path, &model).unwrap_err().to_string();
        assert!(err.starts_with("m.onnx: ") && err.contains(KEY), "{err}");
        model.metadata_props[0].value = "xyz".into();
        let err = verify(path, &model).unwrap_err().to_string();
        assert!(err.contains("64 lowercase hex digits"), "{err}");
    }
}
