//! Int8 or f16 storage of weights computed in float: `DequantizeLinear` (per
//! output channel) or `Cast` on a constant, which tract and ONNX Runtime fold
//! into an f32 constant at load. Smaller files, the same float compute.

use std::collections::{HashMap, HashSet};

use half::f16;
use tract_onnx::pb::tensor_proto::DataType;

use crate::graph::Rewriter;
use crate::onnx::AttrValue;
use crate::tensor::{dims_usize, f16_tensor, f32_tensor, f32_values, i8_tensor};
use crate::{KeepFp32, QuantizeError};

use super::{weights, WeightedLayer};

/// Float initializers smaller than this stay f32: their bytes don't matter.
pub const F16_MIN_ELEMENTS: usize = 4096;

pub const F16_REASON: &str = "large float initializer: f16 in the file, cast to f32 once at load";

/// Replaces the weight of `layer` by int8 + `DequantizeLinear`; returns the
/// bytes it takes now.
pub fn weights_only(
    rw: &mut Rewriter,
    layer: &WeightedLayer,
    values: &[f32],
    dims: &[usize],
    exact: &mut HashSet<String>,
) -> Result<usize, QuantizeError> {
    if !weights::all_finite(values) {
        return Err(QuantizeError::Tensor { name: layer.weight.clone(), problem: "holds NaN or infinity".into() });
    }
    // MatMul weights are [in, out]: channels on axis 1; Conv [out, ...]: axis 0.
    let matmul = layer.op == "MatMul";
    let q = if matmul { weights::per_column(values, dims[0], dims[1]) } else { weights::per_leading_axis(values, dims[0]) };
    let base = format!("{}/dequantize_weight", layer.name);
    let row = values.len() / dims[0].max(1);
    let mut parts = Vec::new();
    let mut nodes = Vec::new();
    let shared_scale = matmul.then(|| rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[q.scales.len()], &q.scales)));
    for (lo, hi) in chunks(dims[0], row) {
        let mut part_dims = dims.to_vec();
        part_dims[0] = hi - lo;
        let wq = rw.add_initializer(i8_tensor(&format!("{}_int8", layer.weight), &part_dims, &q.values[lo * row..hi * row]));
        let ws = match &shared_scale {
            Some(s) => s.clone(),
            None => rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[hi - lo], &q.scales[lo..hi])),
        };
        let dq = rw.new_node(&base, "DequantizeLinear", &[&wq, &ws], &[("axis", AttrValue::Int(if matmul { 1 } else { 0 }))]);
        parts.push(dq.output[0].clone());
        nodes.push(dq);
        exact.insert(wq);
        exact.insert(ws);
    }
    let weight = join(rw, &base, parts, &mut nodes);
    let mut node = rw.nodes()[layer.index].clone();
    node.input[1] = weight;
    nodes.push(node);
    rw.replace(layer.index, nodes);
    Ok(q.values.len() + 4 * q.scales.len())
}

/// tract 0.23.9 folds a constant op at load only when its output stays
/// within 4 MiB (`CONST_FOLD_MEM_BUDGET`) or the size of its inputs: a
/// larger weight dequantized or cast to f32 in one piece would be converted
/// again on every frame (measured: a weights-only vit-b16 slower than fp32).
/// So large weights are stored in slices along axis 0 of at most this many
/// elements, each converted alone, then concatenated (which folds: its output
/// is as large as its inputs).
pub const FOLD_CHUNK_ELEMENTS: usize = 1 << 20;

/// `[lo, hi)` ranges of axis 0 (length `rows`, `row` elements each) whose
/// slices hold at most [`FOLD_CHUNK_ELEMENTS`].
fn chunks(rows: usize, row: usize) -> Vec<(usize, usize)> {
    let per = (FOLD_CHUNK_ELEMENTS / row.max(1)).max(1);
    (0..rows).step_by(per).map(|lo| (lo, (lo + per).min(rows))).collect()
}

/// The one tensor of `parts` (axis-0 slices), through a Concat when there are several.
fn join(rw: &mut Rewriter, base: &str, mut parts: Vec<String>, nodes: &mut Vec<tract_onnx::pb::NodeProto>) -> String {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let concat = rw.new_node(&format!("{base}/concat"), "Concat", &refs, &[("axis", AttrValue::Int(0))]);
    let out = concat.output[0].clone();
    nodes.push(concat);
    out
}

/// Stores every large f32 initializer as f16 behind a Cast, except the text
/// tables (`text/*`, kept bit-identical), those in `exact`, those read by a
/// node that `keep` matches and those f16 cannot hold. Returns name -> bytes now.
pub fn f16_storage(
    rw: &mut Rewriter,
    keep: &KeepFp32,
    exact: &HashSet<String>,
) -> Result<HashMap<String, usize>, QuantizeError> {
    let consumers = rw.consumers();
    let candidates: Vec<String> = rw
        .initializers()
        .iter()
        .filter(|t| t.data_type == DataType::Float as i32 && !t.name.starts_with("text/") && !exact.contains(&t.name))
        .filter(|t| dims_usize(t).iter().product::<usize>() >= F16_MIN_ELEMENTS)
        .filter(|t| {
            consumers.get(&t.name).is_some_and(|readers| readers.iter().all(|&i| !keep.matches(&rw.nodes()[i].name)))
        })
        .map(|t| t.name.clone())
        .collect();
    let mut stored = HashMap::new();
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut casts = Vec::new();
    for name in candidates {
        let t = rw.initializer(&name).expect("listed above");
        let values = f32_values(t)?;
        if values.iter().any(|v| !f16::from_f32(*v).is_finite()) {
            continue;
        }
        let dims = dims_usize(t);
        let row = values.len() / dims.first().copied().unwrap_or(1).max(1);
        let base = format!("{name}/to_f32");
        let mut parts = Vec::new();
        let mut nodes = Vec::new();
        for (lo, hi) in if dims.is_empty() { vec![(0, 1)] } else { chunks(dims[0], row) } {
            let mut part_dims = dims.clone();
            if let Some(d) = part_dims.first_mut() {
                *d = hi - lo;
            }
            let h = rw.add_initializer(f16_tensor(&format!("{name}_f16"), &part_dims, &values[lo * row..hi * row]));
            let cast = rw.new_node(&base, "Cast", &[&h], &[("to", AttrValue::Int(1))]);
            parts.push(cast.output[0].clone());
            nodes.push(cast);
        }
        let out = join(rw, &base, parts, &mut nodes);
        renamed.insert(name.clone(), out);
        stored.insert(name, 2 * values.len());
        casts.extend(nodes);
    }
    if casts.is_empty() {
        return Ok(stored);
    }
    let readers: Vec<usize> = {
        let mut r: Vec<usize> = renamed.keys().flat_map(|n| consumers[n].iter().copied()).collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    for i in readers {
        let mut node = rw.nodes()[i].clone();
        for input in node.input.iter_mut() {
            if let Some(to) = renamed.get(input) {
                *input = to.clone();
            }
        }
        rw.replace(i, vec![node]);
    }
    casts.push(rw.nodes()[0].clone());
    rw.replace(0, casts);
    Ok(stored)
}
