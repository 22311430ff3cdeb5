//! Placeholder, replaced by the int8 branch.

use crate::calibrate::Calibration;
use crate::onnx::Model;
use crate::{KeepFp32, LayerChoice, QuantizeError};

pub fn convert(
    _model: &Model,
    _calibration: Option<&Calibration>,
    _keep: &KeepFp32,
) -> Result<(Model, Vec<LayerChoice>), QuantizeError> {
    Err(QuantizeError::Tensor { name: "int8".into(), problem: "the int8 pass is not in this build".into() })
}
