//! The losses AFR-CLIP trains with (DESIGN.md section 2, Training), as the
//! peers write them in PyTorch: AnomalyCLIP's / APRIL-GAN's `FocalLoss` and
//! `BinaryDiceLoss`, and `F.binary_cross_entropy` for the image score.
//!
//! Written with Candle's primitive ops only, so that autograd reaches through
//! them (no fused softmax or layer norm here). Every function works in the
//! dtype of its input (f32 in training; f64 lets the tests check the formula
//! tightly). `tests/loss_parity.rs` holds them to the PyTorch formulas.

use candle_core::{DType, Tensor};

/// The focal loss's exponent in every peer and in the paper.
pub const FOCAL_GAMMA: f64 = 2.0;
/// `FocalLoss(smooth=1e-5)`: label smoothing of the one-hot key, and the
/// floor added to `pt` before its log.
pub const FOCAL_SMOOTH: f64 = 1e-5;
/// `BinaryDiceLoss`'s additive smoothing of numerator and denominator.
pub const DICE_SMOOTH: f64 = 1.0;
/// PyTorch's `binary_cross_entropy` clamps each log at -100 so that a
/// probability of exactly 0 or 1 gives a finite loss.
pub const BCE_LOG_FLOOR: f64 = -100.0;
/// ... and floors `p (1 - p)` at 1e-12 in its gradient. ATen declares that
/// constant as a C `float`, so in double precision it is float32's 1e-12.
pub const BCE_GRAD_EPSILON: f64 = 1e-12_f32 as f64;

#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error("train/loss.rs: {loss}: {what} has shape {found:?}, expected {expected}")]
    Shape { loss: &'static str, what: &'static str, found: Vec<usize>, expected: String },
    #[error("train/loss.rs: {loss}: {what} has dtype {found:?}, expected {expected:?}")]
    Dtype { loss: &'static str, what: &'static str, found: DType, expected: DType },
    #[error("train/loss.rs: {loss}: {message}")]
    Invalid { loss: &'static str, message: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, LossError>;

fn float_dtype(loss: &'static str, what: &'static str, t: &Tensor) -> Result<DType> {
    match t.dtype() {
        d @ (DType::F16 | DType::BF16 | DType::F32 | DType::F64) => Ok(d),
        found => Err(LossError::Dtype { loss, what, found, expected: DType::F32 }),
    }
}

fn same_dtype(loss: &'static str, what: &'static str, t: &Tensor, expected: DType) -> Result<()> {
    if t.dtype() != expected {
        return Err(LossError::Dtype { loss, what, found: t.dtype(), expected });
    }
    Ok(())
}

fn same_shape(loss: &'static str, what: &'static str, t: &Tensor, expected: &[usize]) -> Result<()> {
    if t.dims() != expected {
        return Err(LossError::Shape { loss, what, found: t.dims().to_vec(), expected: format!("{expected:?}") });
    }
    Ok(())
}

/// AnomalyCLIP's `FocalLoss` with its training defaults (probabilities in, no
/// nonlinearity; alpha = ones; smooth 1e-5; mean over every pixel).
///
/// `probs` is `[B, 2, H, W]`, channels `[normal, abnormal]`, already
/// probabilities; `mask` is `[B, H, W]` with 0 (normal) / 1 (abnormal). The
/// peer indexes the one-hot key with `mask.long()`; masks here are thresholded
/// at 0.5 when loaded (DESIGN.md section 2), and `mask >= 0.5` picks the
/// abnormal class, which is the same on such masks. Per pixel:
/// `pt = sum_c clamp(onehot_c, s, 1 - s) * p_c + s`,
/// `loss = -(1 - pt)^gamma * ln(pt)`; the result is the mean.
pub fn focal_loss(probs: &Tensor, mask: &Tensor, gamma: f64) -> Result<Tensor> {
    const LOSS: &str = "focal_loss";
    if !(gamma.is_finite() && gamma >= 0.0) {
        return Err(LossError::Invalid { loss: LOSS, message: format!("gamma {gamma} must be finite and >= 0") });
    }
    let dtype = float_dtype(LOSS, "probs", probs)?;
    same_dtype(LOSS, "mask", mask, dtype)?;
    let dims = probs.dims();
    if dims.len() != 4 || dims[1] != 2 {
        return Err(LossError::Shape {
            loss: LOSS,
            what: "probs",
            found: dims.to_vec(),
            expected: "[B, 2, H, W] ([normal, abnormal] probabilities)".into(),
        });
    }
    same_shape(LOSS, "mask", mask, &[dims[0], dims[2], dims[3]])?;

    let s = FOCAL_SMOOTH;
    // With two classes the peer's clamp bounds are s / (C - 1) = s and 1 - s.
    let abnormal = mask.ge(0.5)?.to_dtype(dtype)?;
    let key_abnormal = abnormal.clamp(s, 1.0 - s)?;
    let key_normal = (1.0 - &abnormal)?.clamp(s, 1.0 - s)?;
    let p_normal = probs.narrow(1, 0, 1)?.squeeze(1)?;
    let p_abnormal = probs.narrow(1, 1, 1)?.squeeze(1)?;
    let pt = ((key_normal.mul(&p_normal)? + key_abnormal.mul(&p_abnormal)?)? + s)?;
    let one_minus = (1.0 - &pt)?;
    // (1 - pt) can round to a hair below 0 when p is 1: square it rather than
    // `powf`, which is NaN for a negative base with a fractional exponent.
    let modulation = if gamma == 2.0 {
        one_minus.sqr()?
    } else if gamma == 1.0 {
        one_minus
    } else if gamma == 0.0 {
        one_minus.ones_like()?
    } else {
        one_minus.powf(gamma)?
    };
    Ok(modulation.mul(&pt.log()?)?.neg()?.mean_all()?)
}

/// AnomalyCLIP's `BinaryDiceLoss`: per sample
/// `(2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`, loss = 1 - the batch mean.
/// `pred` and `target` have the same shape `[B, ...]`.
pub fn dice_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    const LOSS: &str = "dice_loss";
    let dtype = float_dtype(LOSS, "pred", pred)?;
    same_dtype(LOSS, "target", target, dtype)?;
    let dims = pred.dims();
    if dims.is_empty() || dims[0] == 0 {
        return Err(LossError::Shape {
            loss: LOSS,
            what: "pred",
            found: dims.to_vec(),
            expected: "[B, ...] with B >= 1".into(),
        });
    }
    same_shape(LOSS, "target", target, dims)?;
    let b = dims[0];
    let p = pred.reshape((b, ()))?;
    let t = target.reshape((b, ()))?;
    let inter = p.mul(&t)?.sum(1)?;
    let num = ((inter * 2.0)? + DICE_SMOOTH)?;
    let den = ((p.sum(1)? + t.sum(1)?)? + DICE_SMOOTH)?;
    let coef = num.div(&den)?;
    Ok((1.0 - (coef.sum_all()? / b as f64)?)?)
}

/// `F.binary_cross_entropy(score, label)` with the mean reduction, on
/// probabilities: `-mean(y max(ln p, -100) + (1 - y) max(ln(1 - p), -100))`.
///
/// The gradient is PyTorch's own, `(p - y) / max(p (1 - p), 1e-12) / B`, not
/// the derivative of the clamped logs (which is 0 where a log is clamped and
/// unbounded as p reaches 0 or 1): the value is built as
/// `loss + (p - p.detach()) * g.detach()`, whose value is `loss` exactly
/// (the second term is 0) and whose gradient is `g`.
/// `score` and `label` are `[B]`; scores must lie in [0, 1] (not checked).
pub fn bce_loss(score: &Tensor, label: &Tensor) -> Result<Tensor> {
    const LOSS: &str = "bce_loss";
    let dtype = float_dtype(LOSS, "score", score)?;
    same_dtype(LOSS, "label", label, dtype)?;
    let dims = score.dims();
    if dims.len() != 1 || dims[0] == 0 {
        return Err(LossError::Shape {
            loss: LOSS,
            what: "score",
            found: dims.to_vec(),
            expected: "[B] with B >= 1".into(),
        });
    }
    same_shape(LOSS, "label", label, dims)?;
    let n = dims[0] as f64;
    let p = score.detach();
    let y = label.detach();
    let one_minus_p = (1.0 - &p)?;
    let log_p = p.log()?.maximum(BCE_LOG_FLOOR)?;
    let log_q = one_minus_p.log()?.maximum(BCE_LOG_FLOOR)?;
    let per = (y.mul(&log_p)? + (1.0 - &y)?.mul(&log_q)?)?.neg()?;
    let value = per.mean_all()?;
    let grad = ((&p - &y)?.div(&one_minus_p.mul(&p)?.maximum(BCE_GRAD_EPSILON)?)? / n)?;
    let carrier = (score - &p)?.mul(&grad)?.sum_all()?;
    Ok((value + carrier)?)
}

/// One stage's segmentation loss (DESIGN.md section 2): focal loss on the
/// 2-channel map `[1 - p, p]` + Dice(p, mask) + Dice(1 - p, 1 - mask), as
/// AnomalyCLIP's `train.py` adds them up. `p_abnormal` and `mask` are
/// `[B, H, W]`, the map already upsampled to the mask size.
pub fn stage_loss(p_abnormal: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const LOSS: &str = "stage_loss";
    let dtype = float_dtype(LOSS, "p_abnormal", p_abnormal)?;
    same_dtype(LOSS, "mask", mask, dtype)?;
    if p_abnormal.rank() != 3 {
        return Err(LossError::Shape {
            loss: LOSS,
            what: "p_abnormal",
            found: p_abnormal.dims().to_vec(),
            expected: "[B, H, W]".into(),
        });
    }
    same_shape(LOSS, "mask", mask, p_abnormal.dims())?;
    let p_normal = (1.0 - p_abnormal)?;
    let probs = Tensor::stack(&[&p_normal, p_abnormal], 1)?;
    let focal = focal_loss(&probs, mask, FOCAL_GAMMA)?;
    let dice_abnormal = dice_loss(p_abnormal, mask)?;
    let dice_normal = dice_loss(&p_normal, &(1.0 - mask)?)?;
    Ok(((focal + dice_abnormal)? + dice_normal)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shape_and_dtype_mistakes_are_errors() {
        let dev = Device::Cpu;
        let p = Tensor::zeros((2, 3, 3), DType::F32, &dev).unwrap();
        let m = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        assert!(matches!(stage_loss(&p, &m), Err(LossError::Shape { what: "mask", .. })));
        let m64 = Tensor::zeros((2, 3, 3), DType::F64, &dev).unwrap();
        assert!(matches!(dice_loss(&p, &m64), Err(LossError::Dtype { .. })));
        let probs = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
        let msg = focal_loss(&probs, &p, 2.0).unwrap_err().to_string();
        assert!(msg.contains("train/loss.rs") && msg.contains("focal_loss"), "{msg}");
        assert!(matches!(focal_loss(&probs, &p, -1.0), Err(LossError::Invalid { .. })));
        let s = Tensor::zeros(0, DType::F32, &dev).unwrap();
        assert!(matches!(bce_loss(&s, &s), Err(LossError::Shape { .. })));
    }

    #[test]
    fn perfect_prediction_has_near_zero_stage_loss() {
        let dev = Device::Cpu;
        let m = Tensor::new(&[[[0f64, 1.], [1., 0.]]], &dev).unwrap();
        let l = stage_loss(&m, &m).unwrap().to_scalar::<f64>().unwrap();
        // Dice terms vanish exactly; pt rounds to 1 on every pixel.
        assert!(l.abs() < 1e-8, "{l}");
    }
}
