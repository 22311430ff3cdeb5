//! The few layers every model here is built from, written with Candle's
//! primitive tensor ops so that autograd reaches through them.
//!
//! `candle_nn::LayerNorm` and `candle_nn::ops::softmax_last_dim` use fused
//! kernels that return no gradient on contiguous input (candle issues 2977,
//! 3011). The SP prompts enter the frozen ViT at layer 2, so their gradient
//! has to flow back through every frozen layer norm and softmax after it.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{DType, Device, Module, Result, Tensor, D};

use crate::onnx_graph::{self, initializer, transposed};

/// Layer normalisation over the last dimension, differentiable.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self { weight, bias, eps }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

impl LayerNorm {
    /// `forward` in ONNX: LayerNormalization over the last axis (opset 17).
    pub fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let scale = initializer(g, "weight", &self.weight)?;
        let bias = initializer(g, "bias", &self.bias)?;
        let attrs = [("axis", (-1i64).into()), ("epsilon", (self.eps as f32).into())];
        Ok(g.node("LayerNormalization", &[x, &scale, &bias], &attrs))
    }
}

/// `y = x W^T + b`, with `W` stored as `[out, in]` (the PyTorch layout).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// An identity map of width `dim` with zero bias: the starting point of
    /// every trainable adapter (DESIGN.md section 2).
    pub fn identity(dim: usize, device: &Device) -> Result<Self> {
        Ok(Self { weight: Tensor::eye(dim, DType::F32, device)?, bias: Some(Tensor::zeros(dim, DType::F32, device)?) })
    }

    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match x.rank() {
            2 => x.matmul(&self.weight.t()?)?,
            _ => x.broadcast_matmul(&self.weight.t()?)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl Linear {
    /// `forward` in ONNX: MatMul by `W^T` (any rank), then Add the bias.
    pub fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let w = transposed(g, "weight_t", &self.weight)?;
        let y = g.node("MatMul", &[x, &w], &[]);
        match &self.bias {
            Some(b) => {
                let b = initializer(g, "bias", b)?;
                Ok(g.node("Add", &[&y, &b], &[]))
            }
            None => Ok(y),
        }
    }
}

/// Softmax over the last dimension, differentiable and numerically stable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `1 / (1 + exp(-x))`, differentiable.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// OpenAI CLIP's activation: `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x.mul(&sigmoid(&(x * 1.702)?)?)
}

/// Bilinear upsampling of maps `[B, h, w]` to `[B, out_h, out_w]` exactly as
/// the runtime upsamples (PyTorch's `align_corners=False`), written as two
/// matrix products so that gradients flow (candle has no backward for
/// `upsample_bilinear2d`).
pub fn bilinear_upsample(maps: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (_, h, w) = maps.dims3()?;
    let matrix = |in_n: usize, out_n: usize| -> Result<Tensor> {
        let mut m = vec![0f32; out_n * in_n];
        for (o, (i0, i1, f)) in afr_runtime::postprocess::bilinear_taps(in_n, out_n).into_iter().enumerate() {
            m[o * in_n + i0] += 1.0 - f;
            m[o * in_n + i1] += f;
        }
        Tensor::from_vec(m, (out_n, in_n), maps.device())
    };
    let rows = matrix(h, out_h)?;
    let cols = matrix(w, out_w)?;
    rows.broadcast_matmul(maps)?.broadcast_matmul(&cols.t()?)
}

/// Activations the CLIP presets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// OpenAI's checkpoints.
    QuickGelu,
    /// Exact (erf) GELU, as most LAION / open_clip checkpoints use.
    Gelu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => quick_gelu(x),
            Self::Gelu => x.gelu_erf(),
        }
    }

    /// `apply` in ONNX (opset 17 has no Gelu op: the erf form is spelled out).
    pub fn to_onnx(self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        match self {
            Self::QuickGelu => {
                // x * sigmoid(1.702 x)
                let scaled = onnx_graph::mul_scalar(g, x, 1.702)?;
                let gate = g.node("Sigmoid", &[&scaled], &[]);
                Ok(g.node("Mul", &[x, &gate], &[]))
            }
            Self::Gelu => {
                // 0.5 x (1 + erf(x / sqrt 2))
                let r = onnx_graph::mul_scalar(g, x, std::f32::consts::FRAC_1_SQRT_2)?;
                let e = g.node("Erf", &[&r], &[]);
                let one = g.scalar_f32("one", 1.0)?;
                let e1 = g.node("Add", &[&e, &one], &[]);
                let xe = g.node("Mul", &[x, &e1], &[]);
                onnx_graph::mul_scalar(g, &xe, 0.5)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn layer_norm_and_softmax_pass_gradients_on_contiguous_input() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::arange(0f32, 12., &dev)?.reshape((3, 4))?)?;
        let ln = LayerNorm::new(Tensor::new(&[1f32, 2., 3., 4.], &dev)?, Tensor::zeros(4, DType::F32, &dev)?, 1e-5);
        let y = softmax_last_dim(&ln.forward(x.as_tensor())?)?;
        let loss = y.narrow(1, 3, 1)?.sum_all()?;
        let grads = loss.backward()?;
        let g = grads.get(&x).expect("gradient for x");
        let gmax = g.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(gmax > 1e-3, "gradient vanished: {gmax}");
        Ok(())
    }

    #[test]
    fn bilinear_upsample_equals_the_runtime_upsampler() -> Result<()> {
        let dev = Device::Cpu;
        let map: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let up = bilinear_upsample(&Tensor::from_vec(map.clone(), (1, 3, 4), &dev)?, 9, 10)?;
        let mut want = vec![0f32; 90];
        afr_runtime::postprocess::Upsampler::new((4, 3), (10, 9), 0.0).run(&map, &mut want, &mut []);
        let got = up.flatten_all()?.to_vec1::<f32>()?;
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        Ok(())
    }

    #[test]
    fn layer_norm_matches_definition() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2., 4., 9.]], &dev)?;
        let ln =
            LayerNorm::new(Tensor::new(&[1f32, 1., 1., 1.], &dev)?, Tensor::new(&[0.5f32, 0.5, 0.5, 0.5], &dev)?, 0.0);
        let y = ln.forward(&x)?.to_vec2::<f32>()?;
        let (mean, var) = (4.0f32, (9.0f32 + 4.0 + 0.0 + 25.0) / 4.0);
        for (yi, xi) in y[0].iter().zip([1f32, 2., 4., 9.]) {
            assert!((yi - ((xi - mean) / var.sqrt() + 0.5)).abs() < 1e-6);
        }
        Ok(())
    }
}
