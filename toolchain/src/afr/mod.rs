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
    /// How many of the four stages SP's prompts are carried through: they
    /// enter layers 2..=N*L/4. 1 is the paper's method; 2-4 are the rows of
    /// its Table 4. Runs saved before this switch existed read as 1.
    pub sp_stages: usize,
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
        Self { prompt_tokens: 5, sp: SpMode::Both, sp_stages: 1, mpfa_window: 3, cmfr: true, tau: scoring::CLIP_TAU }
    }
}

impl AfrConfig {
    /// Every switch within its range, or what is wrong, in the flags' terms.
    pub fn check(&self) -> Result<(), String> {
        if self.prompt_tokens == 0 {
            return Err("--prompt-tokens must be at least 1".into());
        }
        if !(1..=4).contains(&self.sp_stages) {
            return Err(format!(
                "--sp-stages must be 1, 2, 3 or 4 (stages SP is carried through), got {}",
                self.sp_stages
            ));
        }
        if self.mpfa_window.is_multiple_of(2) {
            return Err(format!("--mpfa-window must be odd (1 turns MPFA off), got {}", self.mpfa_window));
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(format!("--tau must be a positive number, got {}", self.tau));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_switch_out_of_range() {
        assert_eq!(AfrConfig::default().check(), Ok(()));
        for (cfg, flag) in [
            (AfrConfig { sp_stages: 0, ..Default::default() }, "--sp-stages"),
            (AfrConfig { sp_stages: 5, ..Default::default() }, "--sp-stages"),
            (AfrConfig { mpfa_window: 4, ..Default::default() }, "--mpfa-window"),
            (AfrConfig { prompt_tokens: 0, ..Default::default() }, "--prompt-tokens"),
            (AfrConfig { tau: 0.0, ..Default::default() }, "--tau"),
        ] {
            assert!(cfg.check().unwrap_err().contains(flag), "{cfg:?}");
        }
        for n in 1..=4 {
            assert_eq!(AfrConfig { sp_stages: n, ..Default::default() }.check(), Ok(()));
        }
    }
}
