//! CLIP's image encoder: patch convolution, class token, positional embedding
//! (bicubically interpolated to any patch grid), `ln_pre`, pre-LN residual
//! blocks, `ln_post` and the visual projection.
//!
//! Every layer's hidden state is returned, and SP's prompt tokens can be
//! appended before one layer, replace the previous prompt tokens before the
//! following ones, and be dropped after the last (DESIGN.md section 2, step 1).

use std::ops::RangeInclusive;

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use super::transformer::{load_blocks, load_layer_norm, BlockConfig, ResidualBlock};
use super::{ClipConfig, Naming};
use crate::nn::{LayerNorm, Linear};
use crate::onnx_graph::{self, initializer, reshape, slice, transpose};
use crate::weights::{Init, Result, Weights};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// The resolution the checkpoint was trained at (its positional grid).
    pub image_size: usize,
    pub patch_size: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
}

impl VisionConfig {
    /// Patches per side of the checkpoint's own positional grid.
    pub fn native_grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// SP's prompt tokens and the (1-based) layers they enter.
#[derive(Debug, Clone)]
pub struct Prompts<'a> {
    /// `[B, K, D]`.
    pub tokens: &'a Tensor,
    /// Appended before the first of these layers, replacing the previous K
    /// prompt tokens before each later one, dropped after the last.
    pub layers: RangeInclusive<usize>,
}

#[derive(Debug, Clone)]
pub struct VisionTransformer {
    patch_embedding: Tensor,
    class_embedding: Tensor,
    /// `[1 + g*g, D]` at the checkpoint's native grid `g`.
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    blocks: Vec<ResidualBlock>,
    ln_post: LayerNorm,
    proj: Linear,
    cfg: VisionConfig,
}

impl VisionTransformer {
    pub fn load(w: &Weights, naming: Naming, clip: &ClipConfig) -> Result<Self> {
        let c = &clip.vision;
        let (d, p, e) = (c.width, c.patch_size, clip.embed_dim);
        let g = c.native_grid();
        let scale = (d as f64).powf(-0.5);
        let n = |hf: &str, oa: &str| naming.pick(hf, oa);
        let patch_embedding = w.get(
            &n("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
            &[d, 3, p, p],
            // Unit-variance patch features over the 0.1-scale positions, as
            // PyTorch's default convolution init gives.
            Init::Normal((3.0 * (3 * p * p) as f64).powf(-0.5)),
        )?;
        let class_embedding =
            w.get(&n("vision_model.embeddings.class_embedding", "visual.class_embedding"), &[d], Init::Normal(scale))?;
        let positional_embedding = w.get(
            &n("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
            &[g * g + 1, d],
            Init::Normal(scale),
        )?;
        let ln_pre = load_layer_norm(w, &n("vision_model.pre_layrnorm", "visual.ln_pre"), d, clip.layer_norm_eps)?;
        let block = BlockConfig::new(d, c.heads, c.intermediate, c.layers, clip);
        let blocks = load_blocks(w, naming, &block, |i| {
            n(&format!("vision_model.encoder.layers.{i}."), &format!("visual.transformer.resblocks.{i}."))
        })?;
        let ln_post = load_layer_norm(w, &n("vision_model.post_layernorm", "visual.ln_post"), d, clip.layer_norm_eps)?;
        // Hugging Face stores the projection as a Linear weight `[E, D]`,
        // OpenAI as the matrix `[D, E]` that multiplies from the right.
        let proj = match naming {
            Naming::HuggingFace => w.get("visual_projection.weight", &[e, d], Init::Normal(scale))?,
            Naming::OpenAi => w.get("visual.proj", &[d, e], Init::Normal(scale))?.t()?.contiguous()?,
        };
        Ok(Self {
            patch_embedding,
            class_embedding,
            positional_embedding,
            ln_pre,
            blocks,
            ln_post,
            proj: Linear::new(proj, None),
            cfg: c.clone(),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Patch tokens with the class token in front, positions added, `ln_pre`
    /// applied: `[B, 1 + h*w, D]`, the input of layer 1.
    pub fn embed(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, height, width) = pixels.dims4()?;
        let p = self.cfg.patch_size;
        if height % p != 0 || width % p != 0 {
            candle_core::bail!("image {height}x{width} is not a multiple of the patch size {p}");
        }
        let patches = pixels.conv2d(&self.patch_embedding, 0, p, 1, 1)?.flatten_from(2)?.transpose(1, 2)?;
        let d = self.cfg.width;
        let cls = self.class_embedding.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?;
        let pos = self.positional_embedding_for(height / p, width / p)?;
        self.ln_pre.forward(&x.broadcast_add(&pos)?)
    }

    /// `embed` in ONNX for a batch of one `[1, 3, S, S]` image of an `h x w`
    /// patch grid: the interpolated positional table is an initializer.
    pub fn embed_to_onnx(&self, g: &mut GraphBuilder, pixels: &str, h: usize, w: usize) -> onnx_graph::Result<String> {
        let p = self.cfg.patch_size as i64;
        let d = self.cfg.width;
        let kernel = initializer(g, "patch_weight", &self.patch_embedding)?;
        let attrs = [("kernel_shape", vec![p, p].into()), ("strides", vec![p, p].into())];
        let patches = g.node("Conv", &[pixels, &kernel], &attrs);
        let patches = reshape(g, &patches, &[0, 0, -1])?;
        let patches = transpose(g, &patches, &[0, 2, 1]);
        let cls = initializer(g, "class_embedding", &self.class_embedding.reshape((1, 1, d))?)?;
        let x = g.node("Concat", &[&cls, &patches], &[("axis", 1i64.into())]);
        let pos = initializer(g, "positional_embedding", &self.positional_embedding_for(h, w)?)?;
        let x = g.node("Add", &[&x, &pos], &[]);
        g.scoped("ln_pre", |g| self.ln_pre.to_onnx(g, &x))
    }

    /// The positional embedding resized to an `h x w` patch grid, bicubically
    /// as `transformers` does with `interpolate_pos_encoding=True` (the class
    /// position is kept as it is).
    pub fn positional_embedding_for(&self, h: usize, w: usize) -> candle_core::Result<Tensor> {
        let g = self.cfg.native_grid();
        if (h, w) == (g, g) {
            return Ok(self.positional_embedding.clone());
        }
        let d = self.cfg.width;
        let cls = self.positional_embedding.narrow(0, 0, 1)?;
        let grid = self.positional_embedding.narrow(0, 1, g * g)?;
        let src = grid.flatten_all()?.to_vec1::<f32>()?;
        let out = bicubic_resize_hwc(&src, g, g, d, h, w);
        let grid = Tensor::from_vec(out, (h * w, d), cls.device())?;
        Tensor::cat(&[&cls, &grid], 0)
    }

    /// Hidden states `[B, 1 + h*w, D]`: index 0 is the input of layer 1 (after
    /// `ln_pre`), index `l` the output of layer `l`. Prompt tokens are never
    /// part of a returned state.
    pub fn hidden_states(&self, pixels: &Tensor, prompts: Option<&Prompts>) -> candle_core::Result<Vec<Tensor>> {
        let mut x = self.embed(pixels)?;
        let n_real = x.dim(1)?;
        let mut states = Vec::with_capacity(self.blocks.len() + 1);
        states.push(x.clone());
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = i + 1;
            if let Some(p) = prompts.filter(|p| p.layers.contains(&layer)) {
                // Appended before the first prompted layer; afterwards the
                // previous layer's K prompt outputs are replaced (Eq. 18, with
                // the append of DESIGN.md instead of overwriting patches).
                let real = x.narrow(1, 0, n_real)?;
                x = Tensor::cat(&[&real, p.tokens], 1)?;
            }
            x = block.forward(&x, None)?;
            if prompts.is_some_and(|p| *p.layers.end() == layer) {
                x = x.narrow(1, 0, n_real)?;
            }
            states.push(x.narrow(1, 0, n_real)?);
        }
        Ok(states)
    }

    /// `hidden_states` in ONNX: the states after each layer of `taps` (0 is
    /// the input of layer 1). `prompts` is the `[1, K, D]` prompt tensor and
    /// the layers it enters, as in [`Prompts`].
    pub fn hidden_states_to_onnx(
        &self,
        g: &mut GraphBuilder,
        pixels: &str,
        grid: (usize, usize),
        prompts: Option<(&str, RangeInclusive<usize>)>,
        taps: &[usize],
    ) -> onnx_graph::Result<Vec<String>> {
        let mut x = g.scoped("embed", |g| self.embed_to_onnx(g, pixels, grid.0, grid.1))?;
        let n_real = 1 + grid.0 * grid.1;
        // Whether `x` holds prompt tokens behind the real ones.
        let mut prompted = false;
        let mut states = vec![None; self.blocks.len() + 1];
        let real = |g: &mut GraphBuilder, x: &str, prompted: bool| -> onnx_graph::Result<String> {
            if prompted {
                slice(g, x, 1, 0, n_real)
            } else {
                Ok(x.to_string())
            }
        };
        if taps.contains(&0) {
            states[0] = Some(x.clone());
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = i + 1;
            x = g.scoped(&format!("block{layer}"), |g| -> onnx_graph::Result<String> {
                let mut x = x.clone();
                if let Some((tokens, _)) = prompts.as_ref().filter(|(_, l)| l.contains(&layer)) {
                    let r = real(g, &x, prompted)?;
                    x = g.node("Concat", &[&r, tokens], &[("axis", 1i64.into())]);
                    prompted = true;
                }
                let mut x = block.to_onnx(g, &x)?;
                if prompts.as_ref().is_some_and(|(_, l)| *l.end() == layer) {
                    x = real(g, &x, prompted)?;
                    prompted = false;
                }
                Ok(x)
            })?;
            if taps.contains(&layer) {
                states[layer] = Some(g.scoped(&format!("tap{layer}"), |g| real(g, &x, prompted))?);
            }
        }
        taps.iter()
            .map(|&t| {
                states.get(t).cloned().flatten().ok_or_else(|| {
                    onnx_graph::GraphError::Invalid(format!(
                        "tap after layer {t}, but the ViT has {} layers",
                        self.blocks.len()
                    ))
                })
            })
            .collect()
    }

    /// `ln_post` then the visual projection, on any tokens `[.., D]`.
    pub fn project(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        self.proj.forward(&self.ln_post.forward(tokens)?)
    }

    /// `project` in ONNX.
    pub fn project_to_onnx(&self, g: &mut GraphBuilder, tokens: &str) -> onnx_graph::Result<String> {
        let x = g.scoped("ln_post", |g| self.ln_post.to_onnx(g, tokens))?;
        g.scoped("proj", |g| self.proj.to_onnx(g, &x))
    }

    /// CLIP's image embedding (projected, not normalised): the class token of
    /// the last layer through `ln_post` and the projection.
    pub fn image_embeds(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let last = self.hidden_states(pixels, None)?.pop().expect("at least one state");
        self.project(&last.narrow(1, 0, 1)?.squeeze(1)?)
    }
}

/// PyTorch's `interpolate(mode="bicubic", align_corners=False)` with an output
/// size (so scale = in / out), on an `[h, w, c]` grid. Cubic convolution with
/// A = -0.75; taps beyond the border are clamped to it; no antialiasing.
pub fn bicubic_resize_hwc(src: &[f32], in_h: usize, in_w: usize, c: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let taps = |in_n: usize, out_n: usize| -> Vec<([usize; 4], [f64; 4])> {
        let scale = in_n as f64 / out_n as f64;
        (0..out_n)
            .map(|o| {
                // Unlike the linear modes, PyTorch does not clamp a negative
                // source coordinate for bicubic.
                let s = (o as f64 + 0.5) * scale - 0.5;
                let f = s.floor();
                let t = s - f;
                let idx = [-1i64, 0, 1, 2].map(|k| (f as i64 + k).clamp(0, in_n as i64 - 1) as usize);
                (idx, cubic_weights(t))
            })
            .collect()
    };
    let (ty, tx) = (taps(in_h, out_h), taps(in_w, out_w));
    let mut out = vec![0f32; out_h * out_w * c];
    let mut acc = vec![0f64; c];
    for (oy, (iy, wy)) in ty.iter().enumerate() {
        for (ox, (ix, wx)) in tx.iter().enumerate() {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (&y, &wyk) in iy.iter().zip(wy) {
                for (&x, &wxk) in ix.iter().zip(wx) {
                    let w = wyk * wxk;
                    let px = &src[(y * in_w + x) * c..][..c];
                    acc.iter_mut().zip(px).for_each(|(a, &v)| *a += w * v as f64);
                }
            }
            let o = &mut out[(oy * out_w + ox) * c..][..c];
            o.iter_mut().zip(&acc).for_each(|(o, &a)| *o = a as f32);
        }
    }
    out
}

/// Keys's cubic convolution weights for the four taps at offsets -1..=2.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_to_the_same_size_is_the_identity() {
        let src: Vec<f32> = (0..4 * 5 * 2).map(|i| (i as f32).sin()).collect();
        let out = bicubic_resize_hwc(&src, 4, 5, 2, 4, 5);
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn bicubic_keeps_constants() {
        let src = vec![3.5f32; 3 * 3];
        let out = bicubic_resize_hwc(&src, 3, 3, 1, 7, 5);
        assert!(out.iter().all(|v| (v - 3.5).abs() < 1e-6));
    }
}
