//! The pre-LN residual attention block shared by CLIP's image and text
//! encoders: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.

use candle_core::{Module, Tensor};

use super::Naming;
use crate::nn::{softmax_last_dim, Activation, LayerNorm, Linear};
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
                Linear::new(
                    Tensor::cat(&[&q.0, &k.0, &v.0], 0)?,
                    Some(Tensor::cat(&[&q.1, &k.1, &v.1], 0)?),
                )
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
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
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
    pub fn load(
        w: &Weights,
        naming: Naming,
        p: &str,
        cfg: &BlockConfig,
    ) -> Result<Self> {
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
    /// For `random:SEED`, OpenAI's CLIP initialisation: the projections back
    /// into the residual stream are scaled by `(2 L)^-1/2`, so that a random
    /// encoder keeps each token's own content rather than washing it out.
    fn residual_std(&self) -> f64 {
        (self.width as f64).powf(-0.5) * (2.0 * self.layers as f64).powf(-0.5)
    }
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
