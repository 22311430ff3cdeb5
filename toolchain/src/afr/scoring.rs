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
use crate::onnx_graph::{self, initializer, reshape, slice, transpose};

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

/// `x / |x|` over the last dimension, in ONNX.
fn l2_normalize_to_onnx(g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
    let sq = g.node("Mul", &[x, x], &[]);
    let axes = g.ints("axes", &[-1])?;
    let sum = g.node("ReduceSum", &[&sq, &axes], &[("keepdims", 1i64.into())]);
    let norm = g.node("Sqrt", &[&sum], &[]);
    Ok(g.node("Div", &[x, &norm], &[]))
}

/// The initializer names of the prototypes in an exported model (DESIGN.md
/// section 3): `[stages, E]`, one row per stage, after the text linear.
pub const NORMAL_PROTOTYPE: &str = "normal_prototype";
pub const ABNORMAL_PROTOTYPE: &str = "abnormal_prototype";

/// The prototypes `F_t^n`, `F_t^a` `[E]` as initializers of `stages` rows
/// each (the rows are equal: one text linear serves every stage), and per
/// stage the scoring direction `(a / |a| - n / |n|) / tau` `[E, 1]` derived
/// from them in the graph. Every input of that derivation is a constant, so
/// the runtime folds it once at load; the file keeps the prototypes
/// themselves, which `afr info` shows.
pub fn prototypes_to_onnx(
    g: &mut GraphBuilder,
    normal: &Tensor,
    abnormal: &Tensor,
    stages: usize,
    tau: f64,
) -> onnx_graph::Result<Vec<String>> {
    let rows = |t: &Tensor| t.unsqueeze(0)?.repeat((stages, 1));
    let n = initializer(g, NORMAL_PROTOTYPE, &rows(normal)?)?;
    let a = initializer(g, ABNORMAL_PROTOTYPE, &rows(abnormal)?)?;
    let (n, a) = (l2_normalize_to_onnx(g, &n)?, l2_normalize_to_onnx(g, &a)?);
    let diff = g.node("Sub", &[&a, &n], &[]);
    let tau = g.scalar_f32("tau", tau as f32)?;
    let directions = g.node("Div", &[&diff, &tau], &[]); // [stages, E]
    (0..stages)
        .map(|s| {
            let row = slice(g, &directions, 0, s, s + 1)?;
            Ok(transpose(g, &row, &[1, 0]))
        })
        .collect()
}

/// `abnormal_probability` in ONNX: `features` `[1, T, E]` -> `[1, T]`, with
/// `direction` `[E, 1]` from [`prototypes_to_onnx`]: the two prototype dot
/// products and the temperature in one, `(S_a - S_n) / tau = f . (a - n) / tau`
/// with `f`, `a`, `n` normalised.
pub fn abnormal_probability_to_onnx(
    g: &mut GraphBuilder,
    features: &str,
    direction: &str,
) -> onnx_graph::Result<String> {
    let f = l2_normalize_to_onnx(g, features)?;
    let logit = g.node("MatMul", &[&f, direction], &[]); // [1, T, 1]
    let p = g.node("Sigmoid", &[&logit], &[]);
    reshape(g, &p, &[0, -1])
}
