//! Self prompting (SP): a frozen ResNet's pooled feature `F_cnn` becomes K
//! image-specific prompt tokens `P_v` through K linears (Eq. 15), to which
//! the K learned tokens `P_l` are added (Eq. 16). The ViT takes them in
//! stage 1 (Eq. 17-18; see `clip::vision::Prompts`).

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use super::params::{ParamInit, ParamStore};
use crate::nn::Linear;
use crate::onnx_graph::{self, initializer, reshape};

/// Which prompts SP uses: the ablation of the paper's Table 5 (and Table 3's "no SP").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpMode {
    /// `P_v + P_l` (the paper's method).
    #[default]
    Both,
    /// `P_v` alone.
    VisualOnly,
    /// `P_l` alone.
    LearnedOnly,
    /// No prompts: the ViT runs unmodified.
    Off,
}

#[derive(Debug, Clone)]
pub struct SelfPrompting {
    /// `Linear_i` of Eq. 15, i = 1..K, each `C -> D_v`.
    visual: Vec<Linear>,
    /// `P_l`: `[K, D_v]`.
    learned: Option<Tensor>,
    mode: SpMode,
}

impl SelfPrompting {
    pub fn new(
        p: &mut ParamStore,
        mode: SpMode,
        k: usize,
        cnn_dim: usize,
        vit_width: usize,
    ) -> candle_core::Result<Self> {
        let visual = match mode {
            SpMode::Both | SpMode::VisualOnly => (0..k)
                .map(|i| p.linear(&format!("sp.visual.{i}"), cnn_dim, vit_width, false))
                .collect::<candle_core::Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let learned = match mode {
            SpMode::Both | SpMode::LearnedOnly => {
                Some(p.get("sp.learned", &[k, vit_width], ParamInit::Normal(0.02))?)
            }
            _ => None,
        };
        Ok(Self { visual, learned, mode })
    }

    pub fn mode(&self) -> SpMode {
        self.mode
    }

    /// `P~_v = P_v + P_l`: `[B, K, D_v]` from `F_cnn` `[B, C]`; `None` when SP is off.
    pub fn forward(&self, f_cnn: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let b = f_cnn.dim(0)?;
        let p_v = if self.visual.is_empty() {
            None
        } else {
            let tokens = self.visual.iter().map(|l| l.forward(f_cnn)).collect::<candle_core::Result<Vec<_>>>()?;
            Some(Tensor::stack(&tokens, 1)?)
        };
        let p_l = match &self.learned {
            Some(l) => Some(l.unsqueeze(0)?.broadcast_as((b, l.dim(0)?, l.dim(1)?))?),
            None => None,
        };
        match (p_v, p_l) {
            (Some(v), Some(l)) => Ok(Some((v + l)?)),
            (Some(t), None) | (None, Some(t)) => Ok(Some(t.contiguous()?)),
            (None, None) => Ok(None),
        }
    }
}

impl SelfPrompting {
    /// `forward` in ONNX for a batch of one: `f_cnn` `[1, C]` (absent when
    /// only the learned prompts are used) to the prompt tokens `[1, K, D_v]`.
    /// The K linears run as one MatMul by their stacked weights.
    pub fn to_onnx(&self, g: &mut GraphBuilder, f_cnn: Option<&str>) -> onnx_graph::Result<Option<String>> {
        let p_v = match (self.visual.is_empty(), f_cnn) {
            (true, _) => None,
            (false, None) => {
                return Err(onnx_graph::GraphError::Invalid("SP's visual prompts need the ResNet feature".into()))
            }
            (false, Some(f)) => {
                let weights = self.visual.iter().map(|l| l.weight.clone()).collect::<Vec<_>>();
                let biases = self.visual.iter().map(|l| l.bias.clone()).collect::<Option<Vec<_>>>();
                let stacked = Linear::new(Tensor::cat(&weights, 0)?, biases.map(|b| Tensor::cat(&b, 0)).transpose()?);
                let y = g.scoped("visual", |g| stacked.to_onnx(g, f))?; // [1, K * D_v]
                let d = self.visual[0].out_dim() as i64;
                Some(reshape(g, &y, &[1, self.visual.len() as i64, d])?)
            }
        };
        let p_l = match &self.learned {
            Some(l) => Some(initializer(g, "learned", &l.unsqueeze(0)?)?),
            None => None,
        };
        Ok(match (p_v, p_l) {
            (Some(v), Some(l)) => Some(g.node("Add", &[&v, &l], &[])),
            (Some(t), None) | (None, Some(t)) => Some(t),
            (None, None) => None,
        })
    }
}
