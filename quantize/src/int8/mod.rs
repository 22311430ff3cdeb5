//! The int8 pass: weighted layers rewritten so that tract runs them on its
//! int8 kernels, or at least stores them in int8.
//!
//! tract folds QuantizeLinear/DequantizeLinear pairs back to float, so a QDQ
//! graph is smaller but no faster. What reaches tract's integer matmul
//! (VNNI on x86-64) is an integer op:
//! - **dynamic**: `DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_q, x_zp)
//!   -> Cast -> Mul(x_scale * w_scale[col])`: u8 activations with their
//!   range measured on each frame, int8 weights.
//! - **calibrated**: the same with a fixed `QuantizeLinear(x, s, zp)` whose
//!   scale comes from [`Calibration`]: no range scan per frame, but a range
//!   that was seen on other images.
//!
//! Weights are int8, symmetric, one scale per output channel ([`weights`]).
//! Layers where an int8 matmul gains nothing are stored in int8 and
//! dequantized once at load (`DequantizeLinear` on a constant, which tract
//! and ONNX Runtime fold): **weights only**. Layers kept in float store
//! large weights as f16 behind a `Cast` (folded at load too), except the
//! text tables `text/*`, which stay bit-identical. [`rules`] says which
//! layer gets what, and why.

mod dynamic;
mod rules;
mod storage;
pub mod weights;

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::GraphProto;

use crate::calibrate::{Calibration, RangeMethod};
use crate::graph::Rewriter;
use crate::onnx::Model;
use crate::tensor::{data_bytes, dims_usize, f32_values};
use crate::{KeepFp32, LayerChoice, QuantizeError};

pub use rules::{Plan, Role};

/// A node whose weight (input 1) is an f32 initializer: a MatMul with a
/// rank-2 `[in, out]` weight or a Conv with a rank-4 `[out, in, kh, kw]` one.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedLayer {
    pub index: usize,
    pub name: String,
    pub op: String,
    /// The activation it reads (input 0).
    pub input: String,
    pub weight: String,
}

/// The weighted layers of `graph`, in node order.
pub fn weighted_layers(graph: &GraphProto) -> Vec<WeightedLayer> {
    let inits: HashMap<&str, &tract_onnx::pb::TensorProto> =
        graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    graph
        .node
        .iter()
        .enumerate()
        .filter_map(|(index, n)| {
            let rank = match n.op_type.as_str() {
                "MatMul" => 2,
                "Conv" => 4,
                _ => return None,
            };
            let w = inits.get(n.input.get(1)?.as_str())?;
            (w.data_type == DataType::Float as i32 && w.dims.len() == rank).then(|| WeightedLayer {
                index,
                name: n.name.clone(),
                op: n.op_type.clone(),
                input: n.input[0].clone(),
                weight: w.name.clone(),
            })
        })
        .collect()
}

/// How the int8 compute layers quantize their activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationMode {
    /// By [`rules`]: per frame (measured more robust on unseen categories
    /// for 2-4% of speed; see the rules' table).
    #[default]
    Auto,
    Dynamic,
    /// Fixed ranges from the calibration (needed): for images like the
    /// calibration set.
    Calibrated,
    /// No int8 compute at all: the compute layers are stored int8 and
    /// dequantized at load (for comparison).
    WeightsOnly,
}

impl ActivationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Dynamic => "dynamic",
            Self::Calibrated => "calibrated",
            Self::WeightsOnly => "weights-only",
        }
    }

    /// Whether this mode reads activation ranges from a calibration.
    pub fn needs_calibration(self) -> bool {
        self == Self::Calibrated
    }
}

impl std::fmt::Display for ActivationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ActivationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Auto, Self::Dynamic, Self::Calibrated, Self::WeightsOnly]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown int8 activation mode `{s}` (expected auto, dynamic, calibrated or weights-only)")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int8Options {
    pub activations: ActivationMode,
    /// How a calibrated range is read from the calibration.
    pub range: RangeMethod,
}

impl Default for Int8Options {
    fn default() -> Self {
        Self { activations: ActivationMode::Auto, range: rules::DEFAULT_RANGE }
    }
}

/// The int8 model of `model` with the default options.
pub fn convert(
    model: &Model,
    calibration: Option<&Calibration>,
    keep: &KeepFp32,
) -> Result<(Model, Vec<LayerChoice>), QuantizeError> {
    convert_with(model, calibration, keep, &Int8Options::default())
}

/// The int8 model of `model`, and what was chosen for each layer. Metadata
/// is kept as it is (the caller sets `afr.precision`).
pub fn convert_with(
    model: &Model,
    calibration: Option<&Calibration>,
    keep: &KeepFp32,
    options: &Int8Options,
) -> Result<(Model, Vec<LayerChoice>), QuantizeError> {
    let graph = model.proto.graph.clone().unwrap_or_default();
    let layers = weighted_layers(&graph);
    let mut rw = Rewriter::new(graph);
    let mut choices = Vec::new();
    // Tensors the pass wrote or must leave alone: the f16 storage skips them.
    let mut exact: HashSet<String> = HashSet::new();
    let mut quantized_inputs = dynamic::SharedQuantizers::default();
    // Layers are rewritten back to front so that the indices found above stay valid.
    for layer in layers.iter().rev() {
        let plan = rules::plan(layer, calibration, keep, options)?;
        let w = rw.initializer(&layer.weight).expect("found above").clone();
        let before = data_bytes(&w);
        let values = f32_values(&w)?;
        let dims = dims_usize(&w);
        let (choice, reason, after) = match &plan.kind {
            Plan::Exact => {
                exact.insert(layer.weight.clone());
                ("fp32 (kept)", plan.reason.clone(), before)
            }
            Plan::Float => ("fp32", plan.reason.clone(), before),
            Plan::WeightsOnly => {
                let after = storage::weights_only(&mut rw, layer, &values, &dims, &mut exact)?;
                ("int8 weights only", plan.reason.clone(), after)
            }
            Plan::Dynamic | Plan::Calibrated { .. } => {
                let after = dynamic::integer_matmul(
                    &mut rw,
                    layer,
                    &values,
                    &dims,
                    &plan.kind,
                    &mut quantized_inputs,
                    &mut exact,
                )?;
                let choice = if plan.kind == Plan::Dynamic { "int8 dynamic" } else { "int8 calibrated" };
                (choice, plan.reason.clone(), after)
            }
        };
        choices.push(LayerChoice {
            node: layer.name.clone(),
            op: layer.op.clone(),
            choice: choice.to_string(),
            reason,
            weight_bytes_before: before,
            weight_bytes_after: after,
        });
    }
    choices.reverse();
    quantized_inputs.insert_into(&mut rw);
    // Float weights (and other large float initializers): f16 storage.
    let stored = storage::f16_storage(&mut rw, keep, &exact)?;
    for c in choices.iter_mut() {
        let weight = layers.iter().find(|l| l.name == c.node).map(|l| l.weight.as_str());
        if let Some(bytes) = weight.and_then(|w| stored.get(w)) {
            c.choice = format!("{} (f16 weights)", c.choice);
            c.weight_bytes_after = *bytes;
        }
    }
    let layer_weights: HashSet<&str> = layers.iter().map(|l| l.weight.as_str()).collect();
    let mut other: Vec<_> = stored.iter().filter(|(name, _)| !layer_weights.contains(name.as_str())).collect();
    other.sort();
    for (name, after) in other {
        let before = model
            .proto
            .graph
            .as_ref()
            .and_then(|g| g.initializer.iter().find(|t| &t.name == name))
            .map(data_bytes)
            .unwrap_or(0);
        choices.push(LayerChoice {
            node: name.clone(),
            op: "Initializer".into(),
            choice: "f16 storage".into(),
            reason: storage::F16_REASON.into(),
            weight_bytes_before: before,
            weight_bytes_after: *after,
        });
    }
    let mut out = model.clone();
    out.proto.graph = Some(rw.finish());
    afr_runtime::weights_sha256::refresh(&mut out.proto);
    Ok((out, choices))
}

#[cfg(test)]
mod tests;
