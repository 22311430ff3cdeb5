//! Int8 or f16 storage of weights computed in float: `DequantizeLinear` (per
//! output channel) or `Cast` on a constant, which tract and ONNX Runtime fold
//! into an f32 constant at load. Smaller files, the same float compute.

use std::collections::{HashMap, HashSet};

use half::f16;
use tract_onnx::pb::tensor_proto::DataType;

use crate::fold;
use crate::graph::Rewriter;
use crate::onnx::AttrValue;
use crate::tensor::{dims_usize, f32_tensor, f32_values, i8_tensor};
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
    let q =
        if matmul { weights::per_column(values, dims[0], dims[1]) } else { weights::per_leading_axis(values, dims[0]) };
    let base = format!("{}/dequantize_weight", layer.name);
    let (ranges, row) = fold::slices(dims, fold::FOLD_ELEMENTS);
    let mut parts = Vec::new();
    let mut nodes = Vec::new();
    let shared_scale = matmul
        .then(|| rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[q.scales.len()], &q.scales)));
    for (lo, hi) in ranges {
        let mut part_dims = dims.to_vec();
        part_dims[0] = hi - lo;
        let wq =
            rw.add_initializer(i8_tensor(&format!("{}_int8", layer.weight), &part_dims, &q.values[lo * row..hi * row]));
        let ws = match &shared_scale {
            Some(s) => s.clone(),
            None => rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[hi - lo], &q.scales[lo..hi])),
        };
        let dq = rw.new_node(
            &base,
            "DequantizeLinear",
            &[&wq, &ws],
            &[("axis", AttrValue::Int(if matmul { 1 } else { 0 }))],
        );
        parts.push(dq.output[0].clone());
        nodes.push(dq);
        exact.insert(wq);
        exact.insert(ws);
    }
    let weight = fold::join(rw, &base, parts, &mut nodes);
    let mut node = rw.nodes()[layer.index].clone();
    node.input[1] = weight;
    nodes.push(node);
    rw.replace(layer.index, nodes);
    Ok(q.values.len() + 4 * q.scales.len())
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
        let (nodes, out, bytes) = fold::f16_as_f32(rw, &name, &dims_usize(t), &values, fold::FOLD_ELEMENTS);
        renamed.insert(name.clone(), out);
        stored.insert(name, bytes);
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
