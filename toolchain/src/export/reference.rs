//! Reference outputs for the parity checks (DESIGN.md section 4): Candle's
//! `image_score` and `anomaly_map` on seeded inputs, on the device it ran
//! on, in one safetensors file that tract and ONNX Runtime replay.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::{ExportError, Result};
use crate::afr::AfrClip;

/// Inputs in a reference file; each is run alone (batch of one, as the ONNX graph).
pub const REFERENCE_SAMPLES: usize = 3;

/// Writes `image` `[N, 3, S, S]` (CLIP-normalised noise, seeds 0..N),
/// `category` i64 `[N]`, `image_score` `[N]` and `anomaly_map` `[N, h, w]`;
/// metadata `afr.device` names where Candle ran.
pub fn write_reference(model: &AfrClip, path: &Path, device: &Device) -> Result<()> {
    let s = model.preset().input_size;
    let n_cat = model.tables().categories.len();
    let (mut images, mut cats, mut scores, mut maps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..REFERENCE_SAMPLES {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
        let pixels: Vec<f32> = (0..3 * s * s).map(|_| StandardNormal.sample(&mut rng)).collect();
        let image = Tensor::from_vec(pixels, (1, 3, s, s), device)?;
        // First, second and last rows of the table (the last is `object` unless the run named it).
        let cat = [0, 1 % n_cat, n_cat - 1][i % 3] as u32;
        let out = model.forward(&image, &Tensor::new(&[cat], device)?)?;
        images.push(image.to_device(&Device::Cpu)?);
        cats.push(cat as i64);
        scores.push(out.image_score.to_device(&Device::Cpu)?);
        maps.push(out.anomaly_map.to_device(&Device::Cpu)?);
    }
    let tensors = [
        ("image", Tensor::cat(&images, 0)?),
        ("category", Tensor::new(cats.as_slice(), &Device::Cpu)?),
        ("image_score", Tensor::cat(&scores, 0)?.to_dtype(DType::F32)?),
        ("anomaly_map", Tensor::cat(&maps, 0)?.to_dtype(DType::F32)?),
    ];
    let meta = HashMap::from([
        ("afr.device".to_string(), crate::device::describe(device)),
        ("afr.samples".to_string(), REFERENCE_SAMPLES.to_string()),
    ]);
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (*k, t)), Some(meta))
        .map_err(|e| ExportError::Reference { path: path.to_path_buf(), message: e.to_string() })?;
    afr_runtime::atomic::write_atomic(path, &bytes)
        .map_err(|e| ExportError::Reference { path: path.to_path_buf(), message: e.to_string() })
}
