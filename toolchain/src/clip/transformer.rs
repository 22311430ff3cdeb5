//! The pre-LN residual attention block shared by CLIP's image and text
//! encoders: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Module, Tensor};

use super::Naming;
use crate::nn::{softmax_last_dim, Activation, LayerNorm, Linear};
use crate::onnx_graph::{self, reshape, transpose};
use crate::weights::{Init, Result, Weights};

/// Multi-head self-attention with a fused `[3D, D]` q/k/v projection.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(w: &Weights, naming: Naming, p: &str, cfg: &BlockConfig) -> Result<Self> {
        let (width, heads) = (cfg.width, cfg.heads);
        let std = (width as f64).powf(-0.5);
        let qkv = match naming {
            // Hugging Face keeps q, k and v apart; OpenAI fuses them.
            Naming::HuggingFace => {
                let part = |n: &str| -> Result<(Tensor, Tensor)> {
                    Ok((
                        w.get(&format!("{p}self_attn.{n}_proj.weight"), &[width, width], Init::Normal(std))?,
                        w.get(&format!("{p}self_attn.{n}_proj.bias"), &[width], Init::Zeros)?,
                    ))
                };
                let (q, k, v) = (part("q")?, part("k")?, part("v")?);
                Linear::new(Tensor::cat(&[&q.0, &k.0, &v.0], 0)?, Some(Tensor::cat(&[&q.1, &k.1, &v.1], 0)?))
            }
            Naming::OpenAi => Linear::new(
                w.get(&format!("{p}attn.in_proj_weight"), &[3 * width, width], Init::Normal(std))?,
                Some(w.get(&format!("{p}attn.in_proj_bias"), &[3 * width], Init::Zeros)?),
            ),
        };
        let out = naming.pick(&format!("{p}self_attn.out_proj"), &format!("{p}attn.out_proj"));
        let out = load_linear(w, &out, width, width, cfg.residual_std())?;
        Ok(Self { qkv, out, heads })
    }

    /// `x`: `[B, T, D]`; `mask`: additive `[T, T]` (the text encoder's causal mask).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.heads;
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, self.heads, hd))?.permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * (hd as f64).powf(-0.5))?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let y = softmax_last_dim(&scores)?.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b, t, d))?;
        self.out.forward(&y)
    }

    /// `forward` (without mask) in ONNX: the fused qkv MatMul, heads split by
    /// Reshape/Transpose, q scaled before `q k^T`, Softmax, merged back.
    pub fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let d = self.out.out_dim();
        let (h, hd) = (self.heads as i64, (d / self.heads) as i64);
        let qkv = g.scoped("qkv", |g| self.qkv.to_onnx(g, x))?;
        let qkv = reshape(g, &qkv, &[0, 0, 3, h, hd])?;
        let qkv = transpose(g, &qkv, &[2, 0, 3, 1, 4]); // [3, B, H, T, hd]
        let part = |g: &mut GraphBuilder, i: i64| -> onnx_graph::Result<String> {
            let idx = g.initializer_i64("index", &[], &[i])?;
            Ok(g.node("Gather", &[&qkv, &idx], &[("axis", 0i64.into())]))
        };
        let q = part(g, 0)?;
        let k = part(g, 1)?;
        let v = part(g, 2)?;
        let q = onnx_graph::mul_scalar(g, &q, (hd as f64).powf(-0.5) as f32)?;
        let k_t = transpose(g, &k, &[0, 1, 3, 2]);
        let scores = g.node("MatMul", &[&q, &k_t], &[]);
        let att = g.node("Softmax", &[&scores], &[("axis", (-1i64).into())]);
        let y = g.node("MatMul", &[&att, &v], &[]);
        let y = transpose(g, &y, &[0, 2, 1, 3]);
        let y = reshape(g, &y, &[0, 0, d as i64])?;
        g.scoped("out", |g| self.out.to_onnx(g, &y))
    }
}

/// One transformer layer.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    fc: Linear,
    proj: Linear,
    act: Activation,
}

impl ResidualBlock {
    /// `p` is the block's name prefix, e.g. `visual.transformer.resblocks.3.`.
    pub fn load(w: &Weights, naming: Naming, p: &str, cfg: &BlockConfig) -> Result<Self> {
        let d = cfg.width;
        let n = |hf: &str, oa: &str| naming.pick(&format!("{p}{hf}"), &format!("{p}{oa}"));
        Ok(Self {
            ln_1: load_layer_norm(w, &n("layer_norm1", "ln_1"), d, cfg.eps)?,
            attn: Attention::load(w, naming, p, cfg)?,
            ln_2: load_layer_norm(w, &n("layer_norm2", "ln_2"), d, cfg.eps)?,
            fc: load_linear(w, &n("mlp.fc1", "mlp.c_fc"), d, cfg.intermediate, (2.0 * d as f64).powf(-0.5))?,
            proj: load_linear(w, &n("mlp.fc2", "mlp.c_proj"), cfg.intermediate, d, cfg.residual_std())?,
            act: cfg.activation,
        })
    }

    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, mask)?)?;
        let h = self.act.apply(&self.fc.forward(&self.ln_2.forward(&x)?)?)?;
        x + self.proj.forward(&h)?
    }

    /// `forward` (without mask) in ONNX.
    pub fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let h = g.scoped("ln_1", |g| self.ln_1.to_onnx(g, x))?;
        let h = g.scoped("attn", |g| self.attn.to_onnx(g, &h))?;
        let x = g.node("Add", &[x, &h], &[]);
        let h = g.scoped("ln_2", |g| self.ln_2.to_onnx(g, &x))?;
        let h = g.scoped("fc", |g| self.fc.to_onnx(g, &h))?;
        let h = g.scoped("act", |g| self.act.to_onnx(g, &h))?;
        let h = g.scoped("proj", |g| self.proj.to_onnx(g, &h))?;
        Ok(g.node("Add", &[&x, &h], &[]))
    }
}

/// What a block needs to know about its encoder.
#[derive(Debug, Clone, Copy)]
pub struct BlockConfig {
    pub width: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Blocks in the encoder (scales the random initialisation).
    pub layers: usize,
    pub activation: Activation,
    pub eps: f64,
}

impl BlockConfig {
    pub fn new(width: usize, heads: usize, intermediate: usize, layers: usize, clip: &super::ClipConfig) -> Self {
        Self { width, heads, intermediate, layers, activation: clip.activation, eps: clip.layer_norm_eps }
    }

    /// For `random:SEED`, OpenAI's CLIP initialisation: the projections back
    /// into the residual stream are scaled by `(2 L)^-1/2`, so that a random
    /// encoder keeps each token's own content rather than washing it out.
    fn residual_std(&self) -> f64 {
        (self.width as f64).powf(-0.5) * (2.0 * self.layers as f64).powf(-0.5)
    }
}

/// An encoder's `cfg.layers` blocks, block `i` named by `prefix(i)`.
pub fn load_blocks(
    w: &Weights,
    naming: Naming,
    cfg: &BlockConfig,
    prefix: impl Fn(usize) -> String,
) -> Result<Vec<ResidualBlock>> {
    (0..cfg.layers).map(|i| ResidualBlock::load(w, naming, &prefix(i), cfg)).collect()
}

/// `{name}.weight` / `{name}.bias` of a layer norm of width `d`.
pub fn load_layer_norm(w: &Weights, name: &str, d: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.get(&format!("{name}.weight"), &[d], Init::Ones)?,
        w.get(&format!("{name}.bias"), &[d], Init::Zeros)?,
        eps,
    ))
}

/// `{name}.weight` (`[out, in]`) and `{name}.bias` of a linear layer.
pub fn load_linear(w: &Weights, name: &str, d_in: usize, d_out: usize, std: f64) -> Result<Linear> {
    Ok(Linear::new(
        w.get(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std))?,
        Some(w.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?),
    ))
}
