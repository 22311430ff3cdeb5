//! Evaluating an exported model on a dataset, the way the toolchain's
//! reference evaluation does (toolchain/src/evaluate.rs): maps upsampled to
//! S x S with the model's smoothing, masks resized to S x S and thresholded
//! at 0.5, pixel metrics only for categories where every anomalous image has
//! a mask. Categories the model's table does not hold use its `object` row.

use std::collections::BTreeMap;

use crate::dataset::{Dataset, Sample};
use crate::detector::{Detector, DetectorError};
use crate::image_io::{self, ImageError};
use crate::metrics::{CategoryEvaluator, Metrics, MetricsError, PixelData};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Detector(#[from] DetectorError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("category {category:?} is not in the model's table and it has no `object` row")]
    UnknownCategory { category: String },
}

/// Metrics per category; `progress(done, total)` after each image.
pub fn evaluate(
    detector: &mut Detector,
    data: &Dataset,
    mut progress: impl FnMut(usize, usize),
) -> Result<BTreeMap<String, Metrics>, EvalError> {
    let s = detector.info().input_size;
    let mut map = vec![0f32; s * s];
    let mut results = BTreeMap::new();
    let (mut done, total) = (0, data.samples.len());
    for category in data.categories() {
        let row = detector
            .category_or_default(&category)
            .ok_or_else(|| EvalError::UnknownCategory { category: category.clone() })?;
        let samples: Vec<&Sample> = data.samples_of(&category).collect();
        let pixel_level = samples.iter().all(|x| !x.anomalous || x.mask.is_some());
        let mut eval = CategoryEvaluator::new();
        for sample in samples {
            let name = sample.image.display().to_string();
            let (rgb, mask) = image_io::load_pair(&sample.image, sample.mask.as_deref())?;
            let (w, h) = (rgb.width() as usize, rgb.height() as usize);
            let scores = detector.score_to(rgb.as_raw(), w, h, row, &mut map, (s, s))?;
            let truth = match &mask {
                Some(m) => image_io::resize_mask(m, s),
                None => vec![false; s * s],
            };
            let pixels = pixel_level.then_some(PixelData { map: &map, mask: &truth, width: s, height: s });
            eval.add(&name, scores.image, sample.anomalous, pixels)?;
            done += 1;
            progress(done, total);
        }
        results.insert(category, eval.finish());
    }
    Ok(results)
}
