//! Text-on-text anomaly scoring (Eq. 7-13): the rectified embedding against
//! the universal normal and abnormal prototypes,
//! `P_a = softmax([cos(F, F_t^a), cos(F, F_t^n)] / tau)[0]`.
//!
//! Eq. 9 and 13 omit CLIP's temperature tau = 0.07; without it a two-way
//! softmax of cosines cannot leave [0.12, 0.88], so we keep it (DESIGN.md).
//! The two-way softmax is computed as `sigmoid((S_a - S_n) / tau)`, its exact
//! equivalent.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Tensor, D};

use crate::nn::sigmoid;
use crate::onnx_graph::{self, initializer, reshape};

/// CLIP's initial temperature (its logit scale starts at 1 / 0.07; trained
/// checkpoints end near 1 / 0.01). DESIGN.md fixes 0.07; `--tau` changes it.
pub const CLIP_TAU: f64 = 0.07;

/// `x / |x|` over the last dimension.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// `P_a` for every token: `features` `[B, T, E]`, prototypes `[E]` -> `[B, T]`.
pub fn abnormal_probability(
    features: &Tensor,
    normal: &Tensor,
    abnormal: &Tensor,
    tau: f64,
) -> candle_core::Result<Tensor> {
    let f = l2_normalize(features)?;
    let s_a = f.broadcast_mul(&l2_normalize(abnormal)?)?.sum(D::Minus1)?; // Eq. 7 / 11
    let s_n = f.broadcast_mul(&l2_normalize(normal)?)?.sum(D::Minus1)?; // Eq. 8 / 12
    sigmoid(&((s_a - s_n)? / tau)?) // Eq. 9 / 13 with tau
}

/// `abnormal_probability` in ONNX: `features` `[1, T, E]` -> `[1, T]`. The
/// two prototype dot products and the temperature are folded into one
/// vector, `(S_a - S_n) / tau = f . (a - n) / tau` with `f`, `a`, `n` normalised.
pub fn abnormal_probability_to_onnx(
    g: &mut GraphBuilder,
    features: &str,
    normal: &Tensor,
    abnormal: &Tensor,
    tau: f64,
) -> onnx_graph::Result<String> {
    let sq = g.node("Mul", &[features, features], &[]);
    let axes = g.ints("axes", &[-1])?;
    let sum = g.node("ReduceSum", &[&sq, &axes], &[("keepdims", 1i64.into())]);
    let norm = g.node("Sqrt", &[&sum], &[]);
    let f = g.node("Div", &[features, &norm], &[]);
    let direction = ((l2_normalize(abnormal)? - l2_normalize(normal)?)? / tau)?;
    let direction = initializer(g, "prototype_direction", &direction.reshape(((), 1))?)?;
    let logit = g.node("MatMul", &[&f, &direction], &[]); // [1, T, 1]
    let p = g.node("Sigmoid", &[&logit], &[]);
    reshape(g, &p, &[0, -1])
}
