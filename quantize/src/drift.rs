//! How far a quantized model moved from its fp32 source: both run in tract
//! through the runtime's own [`Detector`] (as a deployment would run them,
//! smoothing off) on the same images, and the raw patch maps and image
//! scores are compared.

use std::path::{Path, PathBuf};

use afr_runtime::detector::{Detector, DetectorOptions};
use afr_runtime::model_info::FALLBACK_CATEGORY;

use crate::QuantizeError;

/// Images scored when no calibration folder is given.
pub const RANDOM_IMAGES: usize = 4;
const RANDOM_SEED: u64 = 0x5eed;

/// The result of comparing two models on the same inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Drift {
    /// Images each model scored (per category row).
    pub images: usize,
    /// Where the images came from: a folder, or seeded random pixels.
    pub source: String,
    /// The table rows each image was scored against.
    pub categories: Vec<String>,
    /// Largest |quantized - fp32| over every patch-map cell.
    pub max_abs_map: f32,
    /// Mean |quantized - fp32| over every patch-map cell.
    pub mean_abs_map: f32,
    /// Largest |quantized - fp32| of the image score.
    pub max_abs_score: f32,
}

/// The images to compare on.
#[derive(Debug, Clone)]
pub enum DriftImages {
    /// Image files (a calibration set), described by `source`.
    Files { paths: Vec<PathBuf>, source: String },
    /// `count` images of seeded uniform random pixels at the model's input size.
    Random { count: usize },
}

/// Compares `quantized` with `fp32` on `images`, against table row 0 and the
/// `object` row. `progress(done, total)` counts scored images.
pub fn measure(
    fp32: &Path,
    quantized: &Path,
    images: &DriftImages,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Drift, QuantizeError> {
    let options = DetectorOptions { smoothing: false, ..DetectorOptions::default() };
    let mut reference = Detector::load_with(fp32, options)?;
    let mut candidate = Detector::load_with(quantized, options)?;
    let info = reference.info();
    let mut rows = vec![0];
    if let Some(object) = info.category_index(FALLBACK_CATEGORY).filter(|&o| o != 0) {
        rows.push(object);
    }
    let categories: Vec<String> = rows.iter().map(|&r| info.categories[r].to_string()).collect();
    let size = info.input_size;
    let (count, source) = match images {
        DriftImages::Files { paths, source } => (paths.len(), source.clone()),
        DriftImages::Random { count } => (*count, format!("seeded random {size}x{size} pixels; no calibration folder")),
    };
    let grid = reference.grid();
    let mut map = vec![0.0f32; grid.0 * grid.1];
    let (mut max_map, mut sum_map, mut cells, mut max_score) = (0f32, 0f64, 0usize, 0f32);
    for i in 0..count {
        progress(i, count);
        let (pixels, width, height) = match images {
            DriftImages::Files { paths, .. } => {
                let image = afr_runtime::image_io::load_rgb8(&paths[i])?;
                let (w, h) = (image.width() as usize, image.height() as usize);
                (image.into_raw(), w, h)
            }
            DriftImages::Random { .. } => (random_pixels(RANDOM_SEED + i as u64, size * size * 3), size, size),
        };
        for &row in &rows {
            let a = reference.score_to(&pixels, width, height, row, &mut map, grid)?.image;
            let b = candidate.score_to(&pixels, width, height, row, &mut map, grid)?.image;
            max_score = max_score.max((a - b).abs());
            for (x, y) in reference.patch_map().iter().zip(candidate.patch_map()) {
                let d = (x - y).abs();
                max_map = max_map.max(d);
                sum_map += d as f64;
                cells += 1;
            }
        }
    }
    progress(count, count);
    Ok(Drift {
        images: count,
        source,
        categories,
        max_abs_map: max_map,
        mean_abs_map: if cells == 0 { 0.0 } else { (sum_map / cells as f64) as f32 },
        max_abs_score: max_score,
    })
}

/// `len` bytes from splitmix64 seeded with `seed`.
fn random_pixels(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_pixels_are_seeded_and_spread() {
        let a = random_pixels(1, 3000);
        assert_eq!(a, random_pixels(1, 3000));
        assert_ne!(a, random_pixels(2, 3000));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 127.5).abs() < 8.0, "{mean}");
    }
}
