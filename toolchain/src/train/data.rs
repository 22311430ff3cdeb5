//! Images and masks of a dataset as model inputs: decoded with limits,
//! resized and normalised by the runtime's one preprocessing, masks resized
//! and thresholded at 0.5 (DESIGN.md section 2). Training and the Candle
//! reference evaluation both read through here.

use std::cell::RefCell;
use std::collections::HashMap;

use afr_runtime::dataset::Sample;
use afr_runtime::image_io::{self, ImageError};
use afr_runtime::preprocess::Resizer;
use candle_core::{Device, Tensor};

/// A batch on the model's device.
#[derive(Debug)]
pub struct Batch {
    /// `[B, 3, S, S]`, CLIP-normalised.
    pub pixels: Tensor,
    /// `[B, S, S]`, 0/1; zero for normal images and for those without a mask.
    pub masks: Tensor,
    /// Whether each image has pixel ground truth (normal images do: all zero).
    pub has_mask: Vec<bool>,
    /// `[B]`, 1 for anomalous.
    pub labels: Tensor,
    /// `[B]` u32 rows of the stateless table.
    pub categories: Tensor,
}

/// Reads samples at one input size, keeping a resizer per source size.
#[derive(Debug)]
pub struct ImageLoader {
    size: usize,
    resizers: RefCell<HashMap<(usize, usize), Resizer>>,
}

/// One decoded sample.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `3 * S * S`, planar.
    pub pixels: Vec<f32>,
    /// `S * S` 0/1 when the image has pixel ground truth.
    pub mask: Option<Vec<f32>>,
}

impl ImageLoader {
    pub fn new(size: usize) -> Self {
        Self { size, resizers: RefCell::default() }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn load(&self, sample: &Sample) -> Result<Loaded, ImageError> {
        let (rgb, mask) = image_io::load_pair(&sample.image, sample.mask.as_deref())?;
        let src = (rgb.width() as usize, rgb.height() as usize);
        let mut resizers = self.resizers.borrow_mut();
        let resizer = resizers.entry(src).or_insert_with(|| Resizer::new(src, (self.size, self.size)));
        let pixels = resizer.run(rgb.as_raw());
        let mask = match (mask, sample.anomalous) {
            (Some(m), _) => Some(image_io::resize_mask(&m, self.size).into_iter().map(f32::from).collect()),
            // A normal image's ground truth is all normal.
            (None, false) => Some(vec![0.0; self.size * self.size]),
            // Anomalous without a mask: image-level label only.
            (None, true) => None,
        };
        Ok(Loaded { pixels, mask })
    }

    /// Loads `samples` into one batch; `category_row` maps a category to its table row.
    pub fn batch(
        &self,
        samples: &[&Sample],
        category_row: impl Fn(&str) -> usize,
        device: &Device,
    ) -> Result<Batch, BatchError> {
        let s = self.size;
        let b = samples.len();
        let mut pixels = Vec::with_capacity(b * 3 * s * s);
        let mut masks = Vec::with_capacity(b * s * s);
        let mut has_mask = Vec::with_capacity(b);
        for sample in samples {
            let l = self.load(sample)?;
            pixels.extend_from_slice(&l.pixels);
            has_mask.push(l.mask.is_some());
            masks.extend(l.mask.unwrap_or_else(|| vec![0.0; s * s]));
        }
        let labels: Vec<f32> = samples.iter().map(|x| if x.anomalous { 1.0 } else { 0.0 }).collect();
        let cats: Vec<u32> = samples.iter().map(|x| category_row(&x.category) as u32).collect();
        Ok(Batch {
            pixels: Tensor::from_vec(pixels, (b, 3, s, s), device)?,
            masks: Tensor::from_vec(masks, (b, s, s), device)?,
            has_mask,
            labels: Tensor::from_vec(labels, b, device)?,
            categories: Tensor::from_vec(cats, b, device)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
