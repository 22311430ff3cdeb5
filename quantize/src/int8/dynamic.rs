//! Integer matmuls: a float `MatMul(x, W)` becomes
//!
//! ```text
//! x_q = u8(clip(x / s + zp + 0.5, 0, 255))          s, zp: per frame or calibrated
//! acc = MatMulInteger(x_q, W_q, 128) - (zp - 128) * colsum(W_q)   (i32, exact)
//! y   = f32(acc) * (s * w_scale[col])
//! ```
//!
//! writing the MatMul's output tensor, so that what followed (the bias Add)
//! is unchanged. Weights are symmetric int8 (no b zero point).
//!
//! Why this form and not the ONNX quantization ops (measured in tract 0.23.9
//! on the seeded vit-b16 at 224, 2 shared cores):
//! - tract's `DynamicQuantizeLinear` and `QuantizeLinear` are scalar loops:
//!   ~240 ms per frame for the 48 block inputs, as much as the int8 matmuls
//!   themselves. ReduceMin/ReduceMax and element-wise Mul/Add/Round/Clip/Cast
//!   run on tract's vectorised kernels.
//! - With an activation zero point other than 128 tract offsets u8 to i8
//!   and corrects with the weight's column sums, which it recomputes on every
//!   frame for weights over 1M values (its constant folding stops at 4 MiB):
//!   2x the matmul itself. With zero point 128 the offset cancels; the real
//!   zero point's correction uses column sums computed here.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::NodeProto;

use crate::graph::Rewriter;
use crate::onnx::AttrValue;
use crate::tensor::{f32_tensor, i32_tensor, i8_tensor, u8_tensor};
use crate::QuantizeError;

use super::rules::Plan;
use super::{weights, WeightedLayer};

/// ONNX's element type codes, for Cast.
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT32: i64 = 6;

/// The quantization of one activation, shared by every layer that reads it
/// the same way; inserted before its first reader once all layers are done.
struct Quantizer {
    nodes: Vec<NodeProto>,
    /// The u8 tensor.
    q: String,
    /// Scale and zero point: f32 scalar tensors computed per frame, or constants.
    scale: Scale,
}

#[derive(Clone)]
enum Scale {
    PerFrame { scale: String, zero_point_i32: String },
    Fixed { scale: f32, zero_point: u8 },
}

#[derive(Default)]
pub struct SharedQuantizers {
    by_key: HashMap<String, Quantizer>,
    order: Vec<String>,
}

impl SharedQuantizers {
    fn get(
        &mut self,
        rw: &mut Rewriter,
        layer: &WeightedLayer,
        kind: &Plan,
        exact: &mut HashSet<String>,
    ) -> &Quantizer {
        let key = match kind {
            Plan::Calibrated { scale, zero_point } => format!("{}|{}|{}", layer.input, scale.to_bits(), zero_point),
            _ => format!("{}|dynamic", layer.input),
        };
        if !self.by_key.contains_key(&key) {
            let q = match kind {
                Plan::Calibrated { scale, zero_point } => fixed(rw, layer, *scale, *zero_point, exact),
                _ => per_frame(rw, layer, exact),
            };
            self.by_key.insert(key.clone(), q);
            self.order.push(key.clone());
        }
        &self.by_key[&key]
    }

    /// Puts each quantizer right before the first node that reads it.
    pub fn insert_into(self, rw: &mut Rewriter) {
        let mut by_key = self.by_key;
        for key in self.order {
            let q = by_key.remove(&key).expect("one entry per key");
            let first = rw.nodes().iter().position(|n| n.input.contains(&q.q)).expect("a reader was written");
            let mut nodes = q.nodes;
            nodes.push(rw.nodes()[first].clone());
            rw.replace(first, nodes);
        }
    }
}

/// A scalar f32 constant.
fn scalar(rw: &mut Rewriter, name: &str, v: f32, exact: &mut HashSet<String>) -> String {
    let n = rw.add_initializer(f32_tensor(name, &[], &[v]));
    exact.insert(n.clone());
    n
}

/// `u8(clip(x * inv_scale + zp + 0.5, 0, 255))`, the cast truncating:
/// rounding to nearest (ties up) in one fewer pass over the activation than
/// a `Round` (measured: Round is a third of the quantizer's time in tract).
/// `zp_half` is the zero point plus 0.5, an f32 scalar tensor.
fn quantize_nodes(
    rw: &mut Rewriter,
    base: &str,
    x: &str,
    inv_scale: &str,
    zp_half: &str,
    exact: &mut HashSet<String>,
    nodes: &mut Vec<NodeProto>,
) -> String {
    let lo = scalar(rw, &format!("{base}/zero"), 0.0, exact);
    let hi = scalar(rw, &format!("{base}/u8_max"), 255.0, exact);
    let scaled = rw.new_node(&format!("{base}/scaled"), "Mul", &[x, inv_scale], &[]);
    let shifted = rw.new_node(&format!("{base}/shifted"), "Add", &[&scaled.output[0], zp_half], &[]);
    let clipped = rw.new_node(&format!("{base}/clip"), "Clip", &[&shifted.output[0], &lo, &hi], &[]);
    let q = rw.new_node(&format!("{base}/to_u8"), "Cast", &[&clipped.output[0]], &[("to", AttrValue::Int(UINT8))]);
    let out = q.output[0].clone();
    nodes.extend([scaled, shifted, clipped, q]);
    out
}

/// Scale and zero point from the frame's own range `[min(x, 0), max(x, 0)]`,
/// as `DynamicQuantizeLinear` defines them.
fn per_frame(rw: &mut Rewriter, layer: &WeightedLayer, exact: &mut HashSet<String>) -> Quantizer {
    let base = format!("{}/quantize_input", layer.name);
    let x = layer.input.as_str();
    let zero = scalar(rw, &format!("{base}/zero"), 0.0, exact);
    let steps = scalar(rw, &format!("{base}/steps"), 255.0, exact);
    // An all-zero activation would give scale 0: floor it (values stay 0).
    let tiny = scalar(rw, &format!("{base}/min_scale"), f32::MIN_POSITIVE, exact);
    let keep = [("keepdims", AttrValue::Int(0))];
    let min = rw.new_node(&format!("{base}/min"), "ReduceMin", &[x], &keep);
    let max = rw.new_node(&format!("{base}/max"), "ReduceMax", &[x], &keep);
    let lo = rw.new_node(&format!("{base}/lo"), "Min", &[&min.output[0], &zero], &[]);
    let hi = rw.new_node(&format!("{base}/hi"), "Max", &[&max.output[0], &zero], &[]);
    let span = rw.new_node(&format!("{base}/span"), "Sub", &[&hi.output[0], &lo.output[0]], &[]);
    let raw = rw.new_node(&format!("{base}/raw_scale"), "Div", &[&span.output[0], &steps], &[]);
    let scale = rw.new_node(&format!("{base}/scale"), "Max", &[&raw.output[0], &tiny], &[]);
    let inv = rw.new_node(&format!("{base}/inv_scale"), "Reciprocal", &[&scale.output[0]], &[]);
    let neg = rw.new_node(&format!("{base}/neg_lo"), "Neg", &[&lo.output[0]], &[]);
    let zp_raw = rw.new_node(&format!("{base}/zero_point_raw"), "Mul", &[&neg.output[0], &inv.output[0]], &[]);
    let zp = rw.new_node(&format!("{base}/zero_point"), "Round", &[&zp_raw.output[0]], &[]);
    let zp_i32 =
        rw.new_node(&format!("{base}/zero_point_i32"), "Cast", &[&zp.output[0]], &[("to", AttrValue::Int(INT32))]);
    let half = scalar(rw, &format!("{base}/half"), 0.5, exact);
    let zp_half = rw.new_node(&format!("{base}/zero_point_half"), "Add", &[&zp.output[0], &half], &[]);
    let (scale_out, inv_out, zp_out, zp_i32_out) =
        (scale.output[0].clone(), inv.output[0].clone(), zp_half.output[0].clone(), zp_i32.output[0].clone());
    let mut nodes = vec![min, max, lo, hi, span, raw, scale, inv, neg, zp_raw, zp, zp_i32, zp_half];
    let q = quantize_nodes(rw, &base, x, &inv_out, &zp_out, exact, &mut nodes);
    Quantizer { nodes, q, scale: Scale::PerFrame { scale: scale_out, zero_point_i32: zp_i32_out } }
}

fn fixed(
    rw: &mut Rewriter,
    layer: &WeightedLayer,
    scale: f32,
    zero_point: u8,
    exact: &mut HashSet<String>,
) -> Quantizer {
    let base = format!("{}/quantize_input", layer.name);
    let inv = scalar(rw, &format!("{base}/inv_scale"), 1.0 / scale, exact);
    let zp = scalar(rw, &format!("{base}/zero_point_half"), zero_point as f32 + 0.5, exact);
    let mut nodes = Vec::new();
    let q = quantize_nodes(rw, &base, &layer.input, &inv, &zp, exact, &mut nodes);
    Quantizer { nodes, q, scale: Scale::Fixed { scale, zero_point } }
}

/// Rewrites the MatMul `layer` (weight `[k, n]` = `values`); returns the
/// bytes its weight takes now.
pub fn integer_matmul(
    rw: &mut Rewriter,
    layer: &WeightedLayer,
    values: &[f32],
    dims: &[usize],
    kind: &Plan,
    shared: &mut SharedQuantizers,
    exact: &mut HashSet<String>,
) -> Result<usize, QuantizeError> {
    let (k, n) = (dims[0], dims[1]);
    if !weights::all_finite(values) {
        return Err(QuantizeError::Tensor { name: layer.weight.clone(), problem: "holds NaN or infinity".into() });
    }
    let qw = weights::per_column(values, k, n);
    let sums = column_sums(&qw.values, k, n);
    let wq = rw.add_initializer(i8_tensor(&format!("{}_int8", layer.weight), &[k, n], &qw.values));
    exact.insert(wq.clone());
    let (q, scale) = {
        let quant = shared.get(rw, layer, kind, exact);
        (quant.q.clone(), quant.scale.clone())
    };
    let base = &layer.name;
    let mut nodes = Vec::new();
    let offset = rw.add_initializer(u8_tensor(&format!("{base}/offset"), &[], &[128]));
    exact.insert(offset.clone());
    let mm = rw.new_node(&format!("{base}/MatMulInteger"), "MatMulInteger", &[&q, &wq, &offset], &[]);
    // (zp - 128) * column sums: a constant for a fixed zero point.
    let correction = match &scale {
        Scale::Fixed { zero_point, .. } => {
            let c: Vec<i32> = sums.iter().map(|s| (*zero_point as i32 - 128) * s).collect();
            let c = rw.add_initializer(i32_tensor(&format!("{}_zero_point_correction", layer.weight), &[n], &c));
            exact.insert(c.clone());
            c
        }
        Scale::PerFrame { zero_point_i32, .. } => {
            let sums = rw.add_initializer(i32_tensor(&format!("{}_column_sums", layer.weight), &[n], &sums));
            let off = rw.add_initializer(i32_tensor(&format!("{base}/offset_i32"), &[], &[128]));
            exact.insert(sums.clone());
            exact.insert(off.clone());
            let zp = rw.new_node(&format!("{base}/zero_point_offset"), "Sub", &[zero_point_i32, &off], &[]);
            let corr = rw.new_node(&format!("{base}/zero_point_correction"), "Mul", &[&zp.output[0], &sums], &[]);
            let out = corr.output[0].clone();
            nodes.extend([zp, corr]);
            out
        }
    };
    let acc = rw.new_node(&format!("{base}/corrected"), "Sub", &[&mm.output[0], &correction], &[]);
    let cast = rw.new_node(&format!("{base}/to_float"), "Cast", &[&acc.output[0]], &[("to", AttrValue::Int(FLOAT))]);
    nodes.splice(0..0, [mm]);
    nodes.extend([acc, cast.clone()]);
    let scale = match scale {
        Scale::Fixed { scale, .. } => {
            let combined: Vec<f32> = qw.scales.iter().map(|s| s * scale).collect();
            rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[n], &combined))
        }
        Scale::PerFrame { scale, .. } => {
            let ws = rw.add_initializer(f32_tensor(&format!("{}_scale", layer.weight), &[n], &qw.scales));
            exact.insert(ws.clone());
            let mul = rw.new_node(&format!("{base}/scale"), "Mul", &[&scale, &ws], &[]);
            let out = mul.output[0].clone();
            nodes.push(mul);
            out
        }
    };
    exact.insert(scale.clone());
    let mut rescale = rw.new_node(&format!("{base}/rescale"), "Mul", &[&cast.output[0], &scale], &[]);
    rescale.output = rw.nodes()[layer.index].output.clone();
    nodes.push(rescale);
    rw.replace(layer.index, nodes);
    Ok(k * n + 4 * n)
}

/// Per column of a `[k, n]` int8 matrix, the sum of its values.
fn column_sums(values: &[i8], k: usize, n: usize) -> Vec<i32> {
    let mut sums = vec![0i32; n];
    for row in values.chunks_exact(n).take(k) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += *v as i32);
    }
    sums
}
