//! AFR-CLIP assembled (DESIGN.md section 2): SP prompts into the frozen ViT,
//! four stage taps through `ln_post`, the visual projection and a trainable
//! adapter, MPFA on the patch grid, CMFR against the category's stateless
//! prompt, and text-on-text scoring; image score and anomaly map averaged
//! over the stages.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Device, Module, Tensor};

use super::cmfr::Cmfr;
use super::mpfa::Mpfa;
use super::params::ParamStore;
use super::prompts::TextTables;
use super::scoring::{abnormal_probability, abnormal_probability_to_onnx, prototypes_to_onnx};
use super::sp::{SelfPrompting, SpMode};
use super::AfrConfig;
use crate::clip::{Prompts, VisionTransformer};
use crate::nn::Linear;
use crate::onnx_graph::{self, initializer, reshape, slice};
use crate::preset::Preset;
use crate::resnet::ResNet;
use afr_runtime::preprocess::{CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD};

/// What one forward pass yields.
#[derive(Debug, Clone)]
pub struct AfrOutput {
    /// `[B]`: the mean over stages of the class token's `P_a`.
    pub image_score: Tensor,
    /// `[B, h, w]`: the mean over stages of the patch `P_a` grids.
    pub anomaly_map: Tensor,
    /// Per stage, `[B]` and `[B, h, w]` (the losses are taken per stage).
    pub stage_scores: Vec<Tensor>,
    pub stage_maps: Vec<Tensor>,
}

#[derive(Debug, Clone)]
pub struct AfrClip {
    preset: Preset,
    cfg: AfrConfig,
    vision: VisionTransformer,
    resnet: ResNet,
    sp: SelfPrompting,
    /// One per stage, `E -> E`, identity at the start (Eq. 1).
    adapters: Vec<Linear>,
    /// `E -> E`, identity at the start (Eq. 2).
    text_adapter: Linear,
    cmfr: Option<Cmfr>,
    mpfa: Mpfa,
    tables: TextTables,
    /// `x * a + b` per channel turns CLIP-normalised pixels into
    /// ImageNet-normalised ones for the ResNet.
    to_imagenet: (Tensor, Tensor),
}

impl AfrClip {
    /// Builds the trainable modules in `params` (created on first use, so a
    /// checkpoint can be assigned afterwards).
    pub fn new(
        preset: &Preset,
        cfg: &AfrConfig,
        vision: VisionTransformer,
        resnet: ResNet,
        tables: TextTables,
        params: &mut ParamStore,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let e = preset.clip.embed_dim;
        let d_v = preset.clip.vision.width;
        let sp = SelfPrompting::new(params, cfg.sp, cfg.prompt_tokens, preset.resnet.out_dim(), d_v)?;
        let adapters = (0..4)
            .map(|s| params.linear(&format!("adapter.stage{}", s + 1), e, e, true))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let text_adapter = params.linear("adapter.text", e, e, true)?;
        let cmfr = if cfg.cmfr { Some(Cmfr::new(params, e)?) } else { None };
        let scale: Vec<f32> = (0..3).map(|c| CLIP_STD[c] / IMAGENET_STD[c]).collect();
        let shift: Vec<f32> = (0..3).map(|c| (CLIP_MEAN[c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]).collect();
        Ok(Self {
            preset: preset.clone(),
            cfg: cfg.clone(),
            vision,
            resnet,
            sp,
            adapters,
            text_adapter,
            cmfr,
            mpfa: Mpfa::new(cfg.mpfa_window),
            tables,
            to_imagenet: (
                Tensor::from_vec(scale, (1, 3, 1, 1), device)?,
                Tensor::from_vec(shift, (1, 3, 1, 1), device)?,
            ),
        })
    }

    pub fn config(&self) -> &AfrConfig {
        &self.cfg
    }

    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// The frozen image encoder.
    pub fn vision(&self) -> &VisionTransformer {
        &self.vision
    }

    /// The frozen ResNet of SP.
    pub fn resnet(&self) -> &ResNet {
        &self.resnet
    }

    pub fn tables(&self) -> &TextTables {
        &self.tables
    }

    /// `F_t^n`, `F_t^a` `[E]` and the stateless table `[C, E]` after the text linear.
    pub fn text_features(&self) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let t = &self.tables;
        let lin = |x: &Tensor| self.text_adapter.forward(&x.unsqueeze(0)?)?.squeeze(0);
        Ok((lin(&t.normal)?, lin(&t.abnormal)?, self.text_adapter.forward(&t.stateless)?))
    }

    /// The ViT layers SP's prompts enter (Eq. 18; Table 4 with `sp_stages` > 1).
    pub fn sp_layers(&self) -> std::ops::RangeInclusive<usize> {
        self.preset.sp_layers(self.cfg.sp_stages)
    }

    /// SP's prompt tokens `[B, K, D_v]`, or `None` when SP is off.
    pub fn prompts(&self, pixels: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if self.sp.mode() == SpMode::Off {
            return Ok(None);
        }
        let (a, b) = &self.to_imagenet;
        // The ResNet's features are frozen inputs of the SP linears.
        let f_cnn = match self.sp.mode() {
            SpMode::LearnedOnly => {
                Tensor::zeros((pixels.dim(0)?, self.preset.resnet.out_dim()), pixels.dtype(), pixels.device())?
            }
            _ => self.resnet.pooled(&pixels.broadcast_mul(a)?.broadcast_add(b)?)?.detach(),
        };
        self.sp.forward(&f_cnn)
    }

    /// `prompts` in ONNX for the `[1, 3, S, S]` input `pixels`.
    pub fn prompts_to_onnx(&self, g: &mut GraphBuilder, pixels: &str) -> onnx_graph::Result<Option<String>> {
        let f_cnn = match self.sp.mode() {
            SpMode::Off => return Ok(None),
            SpMode::LearnedOnly => None,
            _ => {
                let (a, b) = &self.to_imagenet;
                let a = initializer(g, "to_imagenet_scale", a)?;
                let b = initializer(g, "to_imagenet_shift", b)?;
                let x = g.node("Mul", &[pixels, &a], &[]);
                let x = g.node("Add", &[&x, &b], &[]);
                Some(g.scoped("resnet", |g| self.resnet.pooled_to_onnx(g, &x))?)
            }
        };
        g.scoped("sp", |g| self.sp.to_onnx(g, f_cnn.as_deref()))
    }

    /// `pixels` `[B, 3, S, S]` CLIP-normalised; `categories` `[B]` u32 rows of the
    /// stateless table.
    pub fn forward(&self, pixels: &Tensor, categories: &Tensor) -> candle_core::Result<AfrOutput> {
        let b = pixels.dim(0)?;
        let g = self.preset.grid();
        let prompts = self.prompts(pixels)?;
        let injection = prompts.as_ref().map(|tokens| Prompts { tokens, layers: self.sp_layers() });
        let states = self.vision.hidden_states(pixels, injection.as_ref())?;
        let (f_n, f_a, stateless) = self.text_features()?;
        let f_s = stateless.index_select(categories, 0)?;
        let mut stage_scores = Vec::with_capacity(4);
        let mut stage_maps = Vec::with_capacity(4);
        for (adapter, &tap) in self.adapters.iter().zip(&self.preset.taps()) {
            let tokens = adapter.forward(&self.vision.project(&states[tap])?)?; // Eq. 1
            let cls = tokens.narrow(1, 0, 1)?;
            let patches = self.mpfa.forward(&tokens.narrow(1, 1, g * g)?, g, g)?; // Eq. 19-21
            let f_v = Tensor::cat(&[&cls, &patches], 1)?;
            let f = match &self.cmfr {
                Some(cmfr) => cmfr.forward(&f_v, &f_s)?, // Eq. 3-6, 10
                None => f_v,
            };
            let p_a = abnormal_probability(&f, &f_n, &f_a, self.cfg.tau)?; // Eq. 7-13
            stage_scores.push(p_a.narrow(1, 0, 1)?.squeeze(1)?);
            stage_maps.push(p_a.narrow(1, 1, g * g)?.reshape((b, g, g))?);
        }
        Ok(AfrOutput { image_score: mean(&stage_scores)?, anomaly_map: mean(&stage_maps)?, stage_scores, stage_maps })
    }

    /// `forward` in ONNX for a batch of one: `pixels` `[1, 3, S, S]` and
    /// `category` i64 `[1]` (a row of the stateless table) to the names of
    /// `image_score` `[1]` and `anomaly_map` `[1, h, w]`.
    pub fn to_onnx(&self, g: &mut GraphBuilder, pixels: &str, category: &str) -> onnx_graph::Result<(String, String)> {
        let grid = self.preset.grid();
        let n = grid * grid;
        let prompts = self.prompts_to_onnx(g, pixels)?;
        let injection = prompts.as_deref().map(|p| (p, self.sp_layers()));
        let states = g.scoped("vision", |g| {
            self.vision.hidden_states_to_onnx(g, pixels, (grid, grid), injection, &self.preset.taps())
        })?;
        let (f_n, f_a, stateless) = self.text_features()?;
        let directions = g.scoped("text", |g| prototypes_to_onnx(g, &f_n, &f_a, self.adapters.len(), self.cfg.tau))?;
        let text = match &self.cmfr {
            Some(cmfr) => Some(g.scoped("text", |g| cmfr.text_to_onnx(g, &stateless, category))?),
            None => None,
        };
        let mut scores = Vec::with_capacity(4);
        let mut maps = Vec::with_capacity(4);
        for (s, ((adapter, state), direction)) in self.adapters.iter().zip(&states).zip(&directions).enumerate() {
            let (score, map) = g.scoped(&format!("stage{}", s + 1), |g| -> onnx_graph::Result<(String, String)> {
                let tokens = self.vision.project_to_onnx(g, state)?;
                let tokens = g.scoped("adapter", |g| adapter.to_onnx(g, &tokens))?;
                let cls = slice(g, &tokens, 1, 0, 1)?;
                let patches = slice(g, &tokens, 1, 1, 1 + n)?;
                let patches = g.scoped("mpfa", |g| self.mpfa.to_onnx(g, &patches, grid, grid))?;
                let f_v = g.node("Concat", &[&cls, &patches], &[("axis", 1i64.into())]);
                let f = match (&self.cmfr, &text) {
                    (Some(cmfr), Some(text)) => g.scoped("cmfr", |g| cmfr.to_onnx(g, &f_v, text))?,
                    _ => f_v,
                };
                let p_a = g.scoped("scoring", |g| abnormal_probability_to_onnx(g, &f, direction))?;
                let score = slice(g, &p_a, 1, 0, 1)?;
                let score = reshape(g, &score, &[1])?;
                let map = slice(g, &p_a, 1, 1, 1 + n)?;
                let map = reshape(g, &map, &[1, grid as i64, grid as i64])?;
                Ok((score, map))
            })?;
            scores.push(score);
            maps.push(map);
        }
        g.scoped("mean", |g| -> onnx_graph::Result<(String, String)> {
            Ok((mean_to_onnx(g, &scores)?, mean_to_onnx(g, &maps)?))
        })
    }
}

/// The mean of same-shaped tensors, as `mean` (sum, then divided by the count).
fn mean_to_onnx(g: &mut GraphBuilder, xs: &[String]) -> onnx_graph::Result<String> {
    let inputs: Vec<&str> = xs.iter().map(String::as_str).collect();
    let sum = g.node("Sum", &inputs, &[]);
    let count = g.scalar_f32("count", xs.len() as f32)?;
    Ok(g.node("Div", &[&sum, &count], &[]))
}

fn mean(xs: &[Tensor]) -> candle_core::Result<Tensor> {
    Tensor::stack(xs, 0)?.mean(0)
}
