//! Backbone presets (`models/presets/*.json`): the CLIP and ResNet shapes and
//! the input size. The three built-in ones are compiled in; any other JSON
//! file of the same form can be given by path.

use std::ops::RangeInclusive;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clip::ClipConfig;
use crate::resnet::ResNetConfig;

const BUILTIN: [(&str, &str); 3] = [
    ("vit-l14-336", include_str!("../../models/presets/vit-l14-336.json")),
    ("vit-b16", include_str!("../../models/presets/vit-b16.json")),
    ("tiny", include_str!("../../models/presets/tiny.json")),
];

#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("unknown preset `{0}`: use one of vit-l14-336, vit-b16, tiny, or a path to a preset JSON file")]
    Unknown(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Side of the square model input in pixels; a multiple of the patch size.
    pub input_size: usize,
    pub clip: ClipConfig,
    pub resnet: ResNetConfig,
}

impl Preset {
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A built-in preset by name, or a preset JSON file by path.
    pub fn resolve(spec: &str) -> Result<Self, PresetError> {
        if let Some((name, json)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            return Self::parse(json, &format!("built-in preset {name}"));
        }
        let path = Path::new(spec);
        if path.extension().is_some_and(|e| e == "json") || path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| PresetError::Invalid {
                path: spec.to_string(),
                message: format!("cannot read preset: {e}"),
            })?;
            return Self::parse(&text, spec);
        }
        Err(PresetError::Unknown(spec.to_string()))
    }

    fn parse(json: &str, origin: &str) -> Result<Self, PresetError> {
        let invalid = |message: String| PresetError::Invalid { path: origin.to_string(), message };
        let preset: Self = serde_json::from_str(json).map_err(|e| invalid(format!("not a preset: {e}")))?;
        preset.check().map_err(invalid)?;
        Ok(preset)
    }

    /// The shapes fit together (also checked for a preset stored in a run's config).
    pub fn check(&self) -> Result<(), String> {
        let v = &self.clip.vision;
        if v.patch_size == 0 || v.image_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!(
                "clip.vision.image_size {} is not a positive multiple of the patch size {}",
                v.image_size, v.patch_size
            ));
        }
        if self.clip.text.context_length < 2 {
            return Err("clip.text.context_length must hold at least the start and end tokens (2)".into());
        }
        if self.input_size == 0 || !self.input_size.is_multiple_of(v.patch_size) {
            return Err(format!("input_size {} is not a multiple of the patch size {}", self.input_size, v.patch_size));
        }
        if v.layers < 8 || !v.layers.is_multiple_of(4) {
            return Err(format!(
                "the ViT has {} layers; AFR-CLIP needs a multiple of 4, at least 8 \
                 (four stages, SP acting on layers 2..L/4)",
                v.layers
            ));
        }
        for (what, width, heads) in [("vision", v.width, v.heads), ("text", self.clip.text.width, self.clip.text.heads)]
        {
            if heads == 0 || width % heads != 0 {
                return Err(format!("{what} width {width} is not divisible by {heads} heads"));
            }
        }
        Ok(())
    }

    /// Patches per side at the input size.
    pub fn grid(&self) -> usize {
        self.input_size / self.clip.vision.patch_size
    }

    /// The layers (1-based) whose outputs are the four stage taps: L/4, L/2, 3L/4, L.
    pub fn taps(&self) -> [usize; 4] {
        let l = self.clip.vision.layers;
        [l / 4, l / 2, 3 * l / 4, l]
    }

    /// The layers SP's prompts enter when carried through the first `stages`
    /// stages: 2..=stages*L/4 (the paper's method is one stage: all of
    /// stage 1 after its first layer).
    pub fn sp_layers(&self, stages: usize) -> RangeInclusive<usize> {
        2..=stages * self.clip.vision.layers / 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_match_the_design() {
        let l = Preset::resolve("vit-l14-336").unwrap();
        assert_eq!((l.grid(), l.taps(), l.sp_layers(1)), (37, [6, 12, 18, 24], 2..=6));
        assert_eq!((l.sp_layers(2), l.sp_layers(4)), (2..=12, 2..=24));
        assert_eq!(l.resnet.out_dim(), 2048);
        let b = Preset::resolve("vit-b16").unwrap();
        assert_eq!((b.grid(), b.taps(), b.sp_layers(1)), (14, [3, 6, 9, 12], 2..=3));
        assert_eq!(b.resnet.out_dim(), 512);
        let t = Preset::resolve("tiny").unwrap();
        assert_eq!((t.grid(), t.taps(), t.sp_layers(1)), (8, [2, 4, 6, 8], 2..=2));
    }

    #[test]
    fn unknown_and_bad_presets_are_errors() {
        assert!(matches!(Preset::resolve("vit-h14"), Err(PresetError::Unknown(_))));
        assert!(matches!(Preset::resolve("/nonexistent/p.json"), Err(PresetError::Invalid { .. })));
        let mut p = Preset::resolve("tiny").unwrap();
        p.input_size = 60;
        assert!(p.check().unwrap_err().contains("multiple of the patch size"));
    }
}
