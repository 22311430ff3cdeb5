//! The ONNX graph pieces every component's `to_onnx` writes with: Candle
//! tensors as initializers (copied to the host as f32) and the few reshaping
//! nodes. It sits below the model modules; `export` assembles the whole
//! graph from them.

use afr_quantize::onnx::{GraphBuilder, OnnxError};
use candle_core::{DType, Tensor};

/// Why a component could not write its part of the graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("building the ONNX graph: {0}")]
    Invalid(String),
}

pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// `t` as an f32 initializer of the same shape, named after `prefix`.
pub fn initializer(g: &mut GraphBuilder, prefix: &str, t: &Tensor) -> Result<String> {
    let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(g.initializer_f32(prefix, t.dims(), &data)?)
}

/// The `[in, out]` matrix that multiplies from the right, for a PyTorch-layout
/// `[out, in]` weight.
pub fn transposed(g: &mut GraphBuilder, prefix: &str, weight: &Tensor) -> Result<String> {
    initializer(g, prefix, &weight.t()?.contiguous()?)
}

/// `Slice(x, [start, end))` along `axis`.
pub fn slice(g: &mut GraphBuilder, x: &str, axis: i64, start: usize, end: usize) -> Result<String> {
    let starts = g.ints("starts", &[start as i64])?;
    let ends = g.ints("ends", &[end as i64])?;
    let axes = g.ints("axes", &[axis])?;
    Ok(g.node("Slice", &[x, &starts, &ends, &axes], &[]))
}

/// `Reshape(x, shape)` (0 keeps the input's dimension, -1 is inferred).
pub fn reshape(g: &mut GraphBuilder, x: &str, shape: &[i64]) -> Result<String> {
    let s = g.ints("shape", shape)?;
    Ok(g.node("Reshape", &[x, &s], &[]))
}

pub fn transpose(g: &mut GraphBuilder, x: &str, perm: &[i64]) -> String {
    g.node("Transpose", &[x], &[("perm", perm.to_vec().into())])
}

/// `x * c` for a scalar constant.
pub fn mul_scalar(g: &mut GraphBuilder, x: &str, c: f32) -> Result<String> {
    let c = g.scalar_f32("scale", c)?;
    Ok(g.node("Mul", &[x, &c], &[]))
}
