//! Evaluating an exported model on a dataset, the way the toolchain's
//! reference evaluation does (toolchain/src/evaluate.rs): maps upsampled to
//! S x S with the model's smoothing, masks resized to S x S and thresholded
//! at 0.5, pixel metrics only for categories where every anomalous image has
//! a mask. Categories the model's table does not hold use its `object` row,
//! and the report says so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::dataset::{Dataset, Sample};
use crate::detector::{Detector, DetectorError};
use crate::image_io::{self, ImageError};
use crate::metrics::{CategoryEvaluator, MetricsError, PixelData};
use crate::model_info::{ModelInfo, FALLBACK_CATEGORY};
use crate::report::CategoryReport;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Detector(#[from] DetectorError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{}: no row for {} in the model's table ({}){}", model.display(), missing.join(", "), known.join(", "), if *strict {
        "; export the model with --categories-from DATA to give every category of a dataset its own row, or leave out \
         --strict-categories to score them with the generic `object` row"
    } else {
        " and no generic `object` row to score them with"
    })]
    NotInTable { model: PathBuf, missing: Vec<String>, known: Vec<String>, strict: bool },
}

/// The row of the model's table that scores a category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringRow {
    pub category: String,
    pub row: usize,
    /// The row's name: the category itself, or `object` standing in for it.
    pub scored_as: String,
}

impl ScoringRow {
    /// Whether the generic row stands in for a category the table does not hold.
    pub fn is_fallback(&self) -> bool {
        self.scored_as != self.category
    }
}

/// The row that scores each of `categories`: its own, else (unless `strict`)
/// the generic `object` row, which is how an export without a row for a
/// category scores it zero-shot. Every category missing from the table is
/// named in one error.
pub fn scoring_rows(info: &ModelInfo, categories: &[String], strict: bool) -> Result<Vec<ScoringRow>, EvalError> {
    let fallback = if strict { None } else { info.category_index(FALLBACK_CATEGORY) };
    let mut rows = Vec::with_capacity(categories.len());
    let mut missing = Vec::new();
    for category in categories {
        match info.category_index(category).map(|r| (r, category.as_str())).or(fallback.map(|r| (r, FALLBACK_CATEGORY)))
        {
            Some((row, name)) => rows.push(ScoringRow { category: category.clone(), row, scored_as: name.to_string() }),
            None => missing.push(category.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(EvalError::NotInTable {
            model: info.path.clone(),
            missing,
            known: info.categories.iter().map(|c| c.to_string()).collect(),
            strict,
        });
    }
    Ok(rows)
}

/// Metrics per category, each scored by its row of [`scoring_rows`] (`strict`
/// refuses categories the table does not hold); `progress(done, total)` after
/// each image.
pub fn evaluate(
    detector: &mut Detector,
    data: &Dataset,
    strict: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<BTreeMap<String, CategoryReport>, EvalError> {
    let s = detector.info().input_size;
    let rows = scoring_rows(detector.info(), &data.categories(), strict)?;
    let mut map = vec![0f32; s * s];
    let mut results = BTreeMap::new();
    let (mut done, total) = (0, data.samples.len());
    for ScoringRow { category, row, scored_as } in rows {
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
        results.insert(category, CategoryReport { metrics: eval.finish(), scored_as });
    }
    Ok(results)
}
