//! Which layer gets what, and why. The patch embedding (it reads the pixels
//! themselves), the projections into the scoring space and the scoring head
//! stay in float: the anomaly map is the most sensitive to them for little
//! time (the stage-heads item below). The rest follows measurements in
//! tract 0.23.9 (one thread, 2 shared cores, medians of interleaved runs), on the seeded random vit-b16 at 224 and the
//! trained tiny demo model, drift = max |map - fp32 map| on synthetic images:
//!
//! | vit-b16 at 224              | ms / frame | map drift |
//! |-----------------------------|-----------:|----------:|
//! | fp32                        | 551        | -         |
//! | int8 weights only           | 556        | 2.7e-4    |
//! | int8 dynamic (per frame)    | 366        | 3.0e-4    |
//! | int8 calibrated (min/max)   | 358        | 2.8e-4    |
//!
//! - Block linears: int8 compute halves their time (395 -> 197 ms incl. the
//!   activation quantizers); weights only gains nothing (the matmul is f32).
//! - Calibrated vs per frame: 2-4% faster (no min/max scan), the same drift
//!   on images like the calibration set, but twice the drift on images
//!   unlike it. The demo model (trained on four synthetic categories,
//!   calibrated on their 32 training images, evaluated on the held-out
//!   `bolt`): map drift 1.6e-2 calibrated vs 8.6e-3 per frame, score drift
//!   8.9e-3 vs 4.6e-3 (the fp32 scores span only 2.5e-2 there: image AUROC
//!   55.3 fp32, 49.3 calibrated, 57.3 per frame; pixel AUROC 56.7, 56.7,
//!   56.6). Zero-shot anomaly detection scores categories and defects the
//!   calibration set cannot hold, so [`ActivationMode::Auto`] quantizes
//!   every block input per frame; calibrated ranges are there on request
//!   ([`ActivationMode::Calibrated`]) for a fixed line whose images the
//!   calibration set represents.
//! - Stage heads in int8 (tried): 1-2% faster on vit-b16, but the trained
//!   tiny model's map drift rose from 1.0e-3 to 2.1e-2 (of the 3e-2 budget):
//!   they stay float.
//! - The SP ResNet (72 ms of the 358) and the one-row SP linear are stored
//!   int8 and computed in f32. ConvInteger is not used: ONNX Runtime 1.20's
//!   CPU ConvInteger takes u8 weights only (int8: NOT_IMPLEMENTED), which
//!   would mean asymmetric weights and a per-window weight zero point
//!   correction; QLinearConv would need calibrated output ranges. Measured
//!   with u8 weights on a layer1 conv (64 -> 64, 3x3, 56x56): 6.2 ms f32,
//!   4.7 ms ConvInteger, of which 3.4 ms is tract's quantized im2col: about
//!   5% of a frame to gain, left for later.

use crate::calibrate::{Calibration, RangeMethod};
use crate::{KeepFp32, QuantizeError};

use super::{ActivationMode, Int8Options, WeightedLayer};

/// What a weighted layer is, from its place in the AFR graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A ViT block's linear (qkv, attention out, MLP fc and proj): ~all of
    /// the compute and of the parameters.
    BlockLinear,
    /// A linear applied to a single row (the SP ResNet feature): an int8
    /// matmul has nothing to speed up there.
    SingleRow,
    /// The SP ResNet's convolutions.
    ResnetConv,
    /// The patch embedding, the stage heads (ln_post projection, adapter,
    /// CMFR, scoring) and anything not recognised.
    Float,
}

impl Role {
    pub fn of(layer: &WeightedLayer) -> Role {
        let name = layer.name.as_str();
        match layer.op.as_str() {
            "MatMul" if name.starts_with("vision/block") => Role::BlockLinear,
            "MatMul" if name.starts_with("sp/") => Role::SingleRow,
            "Conv" if name.starts_with("resnet/") => Role::ResnetConv,
            _ => Role::Float,
        }
    }
}

/// What is done to one layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// fp32, bit for bit (a `--keep-fp32` pattern).
    Exact,
    /// Float compute; the weight may be stored as f16.
    Float,
    WeightsOnly,
    Dynamic,
    /// u8 activations with this fixed scale and zero point.
    Calibrated {
        scale: f32,
        zero_point: u8,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub kind: Plan,
    pub reason: String,
}

/// Calibrated ranges: min/max of what was seen. The 99.99th percentile gave
/// the same drift on vit-b16 (3.6e-4) and more on the tiny model (1.7e-3
/// against 1.1e-3): clipping the rare large activations costs more than the
/// coarser step.
pub const DEFAULT_RANGE: RangeMethod = RangeMethod::MinMax;

/// Why [`ActivationMode::Auto`] quantizes every block input per frame.
pub const AUTO_REASON: &str =
    "per-frame range: calibrated ranges were 2-4% faster but doubled the drift on an unseen category";

pub fn plan(
    layer: &WeightedLayer,
    calibration: Option<&Calibration>,
    keep: &KeepFp32,
    options: &Int8Options,
) -> Result<Decision, QuantizeError> {
    let d = |kind: Plan, reason: &str| Ok(Decision { kind, reason: reason.to_string() });
    if keep.matches(&layer.name) {
        return d(Plan::Exact, "matches a --keep-fp32 pattern");
    }
    match Role::of(layer) {
        Role::Float => d(
            Plan::Float,
            "patch embedding / stage head (projection, adapter, CMFR, scoring): kept float (in int8 the heads \
             gained 1-2% of a frame and raised the map drift 20x)",
        ),
        Role::ResnetConv => d(
            Plan::WeightsOnly,
            "SP ResNet conv: int8 storage, f32 compute (ONNX Runtime's ConvInteger needs u8 weights; tract's gains ~25%)",
        ),
        Role::SingleRow => d(Plan::WeightsOnly, "one row per frame: an int8 matmul has nothing to speed up; int8 storage"),
        Role::BlockLinear => choose_activation(layer, calibration, options),
    }
}

/// Dynamic or calibrated activations for a ViT block linear.
fn choose_activation(
    layer: &WeightedLayer,
    calibration: Option<&Calibration>,
    options: &Int8Options,
) -> Result<Decision, QuantizeError> {
    let calibrated = |c: &Calibration, reason: String| {
        let (lo, hi) = c.range(&layer.input, options.range).ok_or_else(|| {
            QuantizeError::Calibration(format!("`{}` (input of `{}`) was not calibrated", layer.input, layer.name))
        })?;
        let (scale, zero_point) = u8_affine(lo, hi);
        Ok(Decision { kind: Plan::Calibrated { scale, zero_point }, reason })
    };
    match (options.activations, calibration) {
        (ActivationMode::WeightsOnly, _) => {
            Ok(Decision { kind: Plan::WeightsOnly, reason: "asked for weights only".into() })
        }
        (ActivationMode::Dynamic, _) => Ok(Decision { kind: Plan::Dynamic, reason: "asked for dynamic".into() }),
        (ActivationMode::Calibrated, Some(c)) => calibrated(c, "asked for calibrated".into()),
        (ActivationMode::Calibrated, None) => {
            Err(QuantizeError::Calibration("calibrated activations need calibration images".into()))
        }
        (ActivationMode::Auto, _) => Ok(Decision { kind: Plan::Dynamic, reason: AUTO_REASON.into() }),
    }
}

/// Scale and zero point that map `[lo, hi]` (containing 0) onto u8.
pub fn u8_affine(lo: f32, hi: f32) -> (f32, u8) {
    let span = hi - lo;
    if span <= 0.0 || !span.is_finite() {
        return (1.0, 0);
    }
    let scale = span / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
    (scale, zero_point)
}
