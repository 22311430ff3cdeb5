//! AFR-CLIP's own modules on top of the frozen backbones: self prompting
//! (`sp`), multi-patch feature aggregation (`mpfa`), cross-modal feature
//! rectification (`cmfr`), text-on-text scoring (`scoring`), the text
//! prompts (`prompts`) and the assembled model (`model`).

pub mod cmfr;
pub mod model;
pub mod mpfa;
pub mod params;
pub mod prompts;
pub mod scoring;
pub mod sp;

use serde::{Deserialize, Serialize};

pub use model::{AfrClip, AfrOutput};
pub use params::ParamStore;
pub use sp::SpMode;

#[derive(Debug, thiserror::Error)]
pub enum AfrError {
    #[error("prompts {0}")]
    Prompts(String),
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The switches of AFR-CLIP, defaults as in the paper. The non-default
/// values reproduce the ablation rows of the paper's Tables 3, 5 and 6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AfrConfig {
    /// K, the number of SP prompt tokens.
    pub prompt_tokens: usize,
    pub sp: SpMode,
    /// MPFA window m (odd); 1 turns MPFA off.
    pub mpfa_window: usize,
    /// Without CMFR the visual tokens are scored against the prototypes
    /// directly: image-text cosine scoring, Table 3 row 1.
    pub cmfr: bool,
    /// Softmax temperature of the scoring.
    pub tau: f64,
}

impl Default for AfrConfig {
    fn default() -> Self {
        Self { prompt_tokens: 5, sp: SpMode::Both, mpfa_window: 3, cmfr: true, tau: scoring::CLIP_TAU }
    }
}
