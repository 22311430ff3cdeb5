//! The normal and abnormal prototypes an exported model keeps (DESIGN.md
//! section 3): `text/normal_prototype` and `text/abnormal_prototype`, f32
//! `[stages, E]`, one row per stage, the text embeddings after the trained
//! text linear. The graph derives its scoring direction from them; here
//! they are read back to show what the model compares each patch with.

use std::path::Path;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{GraphProto, TensorProto};

use crate::model_info::ModelError;

pub const NORMAL: &str = "text/normal_prototype";
pub const ABNORMAL: &str = "text/abnormal_prototype";
/// Most stages a prototype table may have (AFR-CLIP has 4).
pub const MAX_STAGES: usize = 16;
/// Widest embedding accepted (CLIP ViT-L/14 is 768, ViT-bigG 1280).
pub const MAX_DIM: usize = 8192;

#[derive(Debug, Clone, PartialEq)]
pub struct Prototypes {
    pub stages: usize,
    /// E, the embedding width.
    pub dim: usize,
    /// `[stages, E]`, row-major.
    pub normal: Vec<f32>,
    pub abnormal: Vec<f32>,
}

impl Prototypes {
    /// The prototypes of `graph`, `None` when it keeps none (files written
    /// before they were stored, or by other tools); an error when only one
    /// is there or either is malformed.
    pub fn from_graph(path: &Path, graph: &GraphProto) -> Result<Option<Self>, ModelError> {
        let find = |name: &str| graph.initializer.iter().find(|t| t.name == name);
        let contract = |problem: String| ModelError::Contract { path: path.to_path_buf(), problem };
        let (n, a) = match (find(NORMAL), find(ABNORMAL)) {
            (None, None) => return Ok(None),
            (Some(n), Some(a)) => (n, a),
            (Some(_), None) => return Err(contract(format!("{NORMAL} is stored without {ABNORMAL}"))),
            (None, Some(_)) => return Err(contract(format!("{ABNORMAL} is stored without {NORMAL}"))),
        };
        let (stages, dim, normal) = table(n).map_err(&contract)?;
        let (stages_a, dim_a, abnormal) = table(a).map_err(&contract)?;
        if (stages, dim) != (stages_a, dim_a) {
            return Err(contract(format!("{NORMAL} is [{stages}, {dim}] but {ABNORMAL} is [{stages_a}, {dim_a}]")));
        }
        Ok(Some(Self { stages, dim, normal, abnormal }))
    }

    pub fn normal_row(&self, stage: usize) -> &[f32] {
        &self.normal[stage * self.dim..][..self.dim]
    }

    pub fn abnormal_row(&self, stage: usize) -> &[f32] {
        &self.abnormal[stage * self.dim..][..self.dim]
    }

    /// cos(normal, abnormal) of each stage: how far apart the two states
    /// are in the space the patches are scored in.
    pub fn cosines(&self) -> Vec<f32> {
        (0..self.stages).map(|s| cosine(self.normal_row(s), self.abnormal_row(s))).collect()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
    (dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())) as f32
}

/// `(stages, E, values)` of one prototype initializer, its size checked
/// against its dims before anything is copied.
fn table(t: &TensorProto) -> Result<(usize, usize, Vec<f32>), String> {
    if t.data_type != DataType::Float as i32 {
        return Err(format!("{} is not f32 (ONNX data type {})", t.name, t.data_type));
    }
    let (stages, dim) = match t.dims[..] {
        [s, e] if (1..=MAX_STAGES as i64).contains(&s) && (1..=MAX_DIM as i64).contains(&e) => (s as usize, e as usize),
        _ => {
            return Err(format!(
                "{} has shape {:?}; expected [stages <= {MAX_STAGES}, width <= {MAX_DIM}]",
                t.name, t.dims
            ))
        }
    };
    let n = stages * dim;
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != 4 * n {
            return Err(format!("{} holds {} bytes for shape [{stages}, {dim}]", t.name, t.raw_data.len()));
        }
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else if t.float_data.len() == n {
        t.float_data.clone()
    } else {
        return Err(format!("{} holds {} values for shape [{stages}, {dim}]", t.name, t.float_data.len()));
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!("{} holds non-finite values", t.name));
    }
    Ok((stages, dim, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_both_tables_and_refuses_half_or_malformed_ones() {
        let path = Path::new("m.onnx");
        let n = tensor(NORMAL, &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
        let a = tensor(ABNORMAL, &[2, 2], &[1.0, 1.0, 0.0, -1.0]);
        let graph = GraphProto { initializer: vec![n.clone(), a.clone()], ..Default::default() };
        let p = Prototypes::from_graph(path, &graph).unwrap().unwrap();
        assert_eq!((p.stages, p.dim), (2, 2));
        assert_eq!(p.abnormal_row(1), [0.0, -1.0]);
        let c = p.cosines();
        assert!((c[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6 && (c[1] + 1.0).abs() < 1e-6, "{c:?}");

        assert_eq!(Prototypes::from_graph(path, &GraphProto::default()).unwrap(), None);
        let half = GraphProto { initializer: vec![n.clone()], ..Default::default() };
        let err = Prototypes::from_graph(path, &half).unwrap_err().to_string();
        assert!(err.contains("m.onnx") && err.contains("without"), "{err}");
        for bad in [
            tensor(ABNORMAL, &[2, 3], &[0.0; 6]),
            tensor(ABNORMAL, &[4], &[0.0; 4]),
            tensor(ABNORMAL, &[2, 2], &[0.0; 3]),
            tensor(ABNORMAL, &[2, 2], &[0.0, f32::NAN, 0.0, 0.0]),
            tensor(ABNORMAL, &[1 << 40, 1 << 40], &[]),
        ] {
            let graph = GraphProto { initializer: vec![n.clone(), bad.clone()], ..Default::default() };
            let err = Prototypes::from_graph(path, &graph).unwrap_err().to_string();
            assert!(err.contains("m.onnx") && err.contains(ABNORMAL), "{:?}: {err}", bad.dims);
        }
    }
}
