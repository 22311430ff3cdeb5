//! CLIP's text encoder: token and positional embeddings, causally masked
//! pre-LN blocks, `ln_final`, pooling at the end-of-text token and the text
//! projection.

use candle_core::{DType, Device, Module, Tensor};
use serde::{Deserialize, Serialize};

use super::transformer::{load_blocks, load_layer_norm, BlockConfig, ResidualBlock};
use super::{ClipConfig, Naming};
use crate::nn::{LayerNorm, Linear};
use crate::weights::{Init, Result, Weights};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub context_length: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
}

#[derive(Debug, Clone)]
pub struct TextTransformer {
    token_embedding: Tensor,
    positional_embedding: Tensor,
    blocks: Vec<ResidualBlock>,
    ln_final: LayerNorm,
    proj: Linear,
    cfg: TextConfig,
}

impl TextTransformer {
    pub fn load(w: &Weights, naming: Naming, clip: &ClipConfig) -> Result<Self> {
        let c = &clip.text;
        let (d, e) = (c.width, clip.embed_dim);
        let n = |hf: &str, oa: &str| naming.pick(hf, oa);
        let token_embedding = w.get(
            &n("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
            &[c.vocab_size, d],
            Init::Normal(0.02),
        )?;
        let positional_embedding = w.get(
            &n("text_model.embeddings.position_embedding.weight", "positional_embedding"),
            &[c.context_length, d],
            Init::Normal(0.01),
        )?;
        let block = BlockConfig::new(d, c.heads, c.intermediate, c.layers, clip);
        let blocks = load_blocks(w, naming, &block, |i| {
            n(&format!("text_model.encoder.layers.{i}."), &format!("transformer.resblocks.{i}."))
        })?;
        let ln_final = load_layer_norm(w, &n("text_model.final_layer_norm", "ln_final"), d, clip.layer_norm_eps)?;
        let scale = (d as f64).powf(-0.5);
        // As for the image side: `[E, D]` Linear weight vs `[D, E]` matrix.
        let proj = match naming {
            Naming::HuggingFace => w.get("text_projection.weight", &[e, d], Init::Normal(scale))?,
            Naming::OpenAi => w.get("text_projection", &[d, e], Init::Normal(scale))?.t()?.contiguous()?,
        };
        Ok(Self {
            token_embedding,
            positional_embedding,
            blocks,
            ln_final,
            proj: Linear::new(proj, None),
            cfg: c.clone(),
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    /// Token states after `ln_final`: `[B, T, D]` for ids `[B, T]` (u32).
    pub fn last_hidden(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.context_length {
            candle_core::bail!("{t} tokens exceed the context length {}", self.cfg.context_length);
        }
        let d = self.cfg.width;
        let x = self
            .token_embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, d))?
            .broadcast_add(&self.positional_embedding.narrow(0, 0, t)?)?;
        let mask = causal_mask(t, x.device())?;
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(&x, Some(&mask))?;
        }
        self.ln_final.forward(&x)
    }

    /// CLIP's text embedding (projected, not normalised), pooled at the
    /// end-of-text token. As OpenAI does, that is the position of the largest
    /// id in each row (the end token has the largest id in the vocabulary).
    pub fn text_embeds(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = self.last_hidden(ids)?;
        let eot = ids.argmax(1)?.to_dtype(DType::U32)?;
        let (b, _, d) = hidden.dims3()?;
        let index = eot.reshape((b, 1, 1))?.broadcast_as((b, 1, d))?.contiguous()?;
        let pooled = hidden.gather(&index, 1)?.squeeze(1)?;
        self.proj.forward(&pooled)
    }
}

/// `-inf` above the diagonal: a token attends to itself and those before it.
fn causal_mask(t: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (t, t), device)
}
