//! CLIP: the vision transformer, the text transformer and the BPE tokenizer,
//! loading Hugging Face `CLIPModel` and OpenAI / open_clip checkpoints.

pub mod text;
pub mod tokenizer;
pub mod transformer;
pub mod vision;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::nn::Activation;
use crate::weights::{Result, WeightError, Weights};
pub use text::{TextConfig, TextTransformer};
pub use vision::{Prompts, VisionConfig, VisionTransformer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub vision: VisionConfig,
    pub text: TextConfig,
    /// The shared image-text embedding width.
    pub embed_dim: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

/// The two tensor namings CLIP checkpoints come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `transformers`' `CLIPModel` (`vision_model.encoder.layers.0.self_attn.q_proj.weight`).
    HuggingFace,
    /// OpenAI's and open_clip's state dicts (`visual.transformer.resblocks.0.attn.in_proj_weight`).
    OpenAi,
}

impl Naming {
    /// Tells the naming from the tensors present; random weights use OpenAI's.
    pub fn detect(w: &Weights) -> Result<Self> {
        if w.is_random() {
            Ok(Self::OpenAi)
        } else if w.contains("vision_model.embeddings.patch_embedding.weight") {
            Ok(Self::HuggingFace)
        } else if w.contains("visual.conv1.weight") {
            Ok(Self::OpenAi)
        } else {
            Err(w.invalid(
                "neither a Hugging Face CLIPModel (vision_model.*) nor an OpenAI/open_clip \
                 CLIP state dict (visual.*); a ViT-based CLIP checkpoint is needed",
            ))
        }
    }

    /// The name under this naming.
    pub fn pick(self, hugging_face: &str, openai: &str) -> String {
        match self {
            Self::HuggingFace => hugging_face,
            Self::OpenAi => openai,
        }
        .to_string()
    }
}

/// Both encoders, loaded from one weight source.
#[derive(Debug, Clone)]
pub struct Clip {
    pub vision: VisionTransformer,
    pub text: TextTransformer,
    pub naming: Naming,
}

impl Clip {
    pub fn load(w: &Weights, cfg: &ClipConfig) -> Result<Self> {
        let naming = Naming::detect(w)?;
        check_config(w, naming, cfg)?;
        let clip = Self {
            vision: VisionTransformer::load(w, naming, cfg)?,
            text: TextTransformer::load(w, naming, cfg)?,
            naming,
        };
        w.check_all_used(&UNUSED_BY_DESIGN)?;
        Ok(clip)
    }
}

/// Tensors of CLIP checkpoints that AFR-CLIP has no use for: the contrastive
/// temperature, Hugging Face's position-id buffers, the scalars OpenAI's JIT
/// state dicts carry.
pub const UNUSED_BY_DESIGN: [&str; 6] = [
    "logit_scale",
    "vision_model.embeddings.position_ids",
    "text_model.embeddings.position_ids",
    "input_resolution",
    "context_length",
    "vocab_size",
];

/// A Hugging Face checkpoint's `config.json` beside the weights, when there is
/// one, must describe the same architecture as the preset: shapes alone miss a
/// different activation or head count.
pub fn check_config(w: &Weights, naming: Naming, cfg: &ClipConfig) -> Result<()> {
    match (naming, w.path()) {
        (Naming::HuggingFace, Some(path)) => check_hf_config(path, cfg),
        _ => Ok(()),
    }
}

fn check_hf_config(weights: &Path, cfg: &ClipConfig) -> Result<()> {
    let Some(path) = weights.parent().map(|d| d.join("config.json")).filter(|p| p.is_file()) else {
        return Ok(());
    };
    let origin = path.display().to_string();
    let invalid = |message: String| WeightError::Invalid { origin: origin.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|source| WeightError::Io { path: path.clone(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let get = |section: &str, key: &str| json.get(section).and_then(|s| s.get(key)).cloned();
    let act = |section: &str| match get(section, "hidden_act").as_ref().and_then(|v| v.as_str()) {
        Some("quick_gelu") | None => Some(Activation::QuickGelu),
        Some("gelu") => Some(Activation::Gelu),
        Some(_) => None,
    };
    let checks: [(&str, &str, usize); 8] = [
        ("vision_config", "hidden_size", cfg.vision.width),
        ("vision_config", "num_hidden_layers", cfg.vision.layers),
        ("vision_config", "num_attention_heads", cfg.vision.heads),
        ("vision_config", "patch_size", cfg.vision.patch_size),
        ("vision_config", "image_size", cfg.vision.image_size),
        ("text_config", "hidden_size", cfg.text.width),
        ("text_config", "num_hidden_layers", cfg.text.layers),
        ("text_config", "num_attention_heads", cfg.text.heads),
    ];
    for (section, key, want) in checks {
        if let Some(found) = get(section, key).and_then(|v| v.as_u64()) {
            if found as usize != want {
                return Err(invalid(format!(
                    "{section}.{key} is {found}, the preset expects {want} (does the preset match the weights?)"
                )));
            }
        }
    }
    for section in ["vision_config", "text_config"] {
        if act(section) != Some(cfg.activation) {
            return Err(invalid(format!(
                "{section}.hidden_act is {:?}, the preset uses {:?}",
                get(section, "hidden_act"),
                cfg.activation
            )));
        }
    }
    Ok(())
}
