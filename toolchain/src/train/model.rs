//! Building AFR-CLIP from a run's configuration: the frozen backbones from
//! their files (checked against the digests recorded at training time), the
//! text tables for the categories asked for, the trainable modules.

use candle_core::Device;

use super::run::{RunConfig, WeightRef};
use crate::afr::prompts::TextTables;
use crate::afr::{AfrClip, ParamStore};
use crate::clip::tokenizer::Tokenizer;
use crate::clip::Clip;
use crate::resnet::ResNet;
use crate::weights::{WeightError, Weights};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Run(#[from] super::run::RunError),
    #[error("{spec}: the file changed since training (sha256 {found}, the run recorded {recorded})")]
    Digest { spec: String, found: String, recorded: String },
    #[error(
        "{origin}: the text model's vocabulary has {vocab} tokens but the tokenizer's ids go up to {max_id} \
         (preset {preset}: clip.text.vocab_size must be at least {needed})"
    )]
    Vocabulary { origin: String, preset: String, vocab: usize, max_id: usize, needed: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn open(w: &WeightRef, device: &Device) -> Result<Weights, BuildError> {
    if let Some(recorded) = &w.sha256 {
        let found = WeightRef::new(&w.spec)?.sha256.unwrap_or_default();
        if &found != recorded {
            return Err(BuildError::Digest { spec: w.spec.clone(), found, recorded: recorded.clone() });
        }
    }
    Ok(Weights::open(&w.spec, device)?)
}

/// The model of `cfg` with stateless prompts for `categories` (plus `object`),
/// and its trainable parameters at their initial values.
pub fn build(cfg: &RunConfig, categories: &[String], device: &Device) -> Result<(AfrClip, ParamStore), BuildError> {
    let cw = open(&cfg.clip, device)?;
    let clip = Clip::load(&cw, &cfg.preset.clip)?;
    let mut rw = open(&cfg.resnet, device)?;
    let resnet = ResNet::load(&mut rw, &cfg.preset.resnet)?;
    let tokenizer = Tokenizer::openai();
    // Checked here rather than met as an invalid index in the first text forward pass.
    let vocab = cfg.preset.clip.text.vocab_size;
    if tokenizer.vocab_size() > vocab {
        return Err(BuildError::Vocabulary {
            origin: cw.origin(),
            preset: cfg.preset.name.clone(),
            vocab,
            max_id: tokenizer.vocab_size() - 1,
            needed: tokenizer.vocab_size(),
        });
    }
    let tables = TextTables::encode(&clip.text, &tokenizer, &cfg.prompts, categories, device)?;
    let mut params = ParamStore::new(cfg.train.seed, device);
    let model = AfrClip::new(&cfg.preset, &cfg.afr, clip.vision, resnet, tables, &mut params, device)?;
    Ok((model, params))
}
