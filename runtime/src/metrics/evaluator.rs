//! Per-category accumulation of image scores and pixel maps, then all seven
//! metrics at once.

use super::aupro::{self, check_fpr_limit, DEFAULT_FPR_LIMIT};
use super::binary;
use super::connected::RegionLabeller;
use super::curve::{check_finite, pack, sort_keys};
use super::{Metrics, MetricsError};

/// An image's anomaly map and ground-truth mask, both `width x height`
/// row-major (true = anomalous).
#[derive(Debug, Clone, Copy)]
pub struct PixelData<'a> {
    pub map: &'a [f32],
    pub mask: &'a [bool],
    pub width: usize,
    pub height: usize,
}

/// Collects one category's images, then computes its [`Metrics`].
///
/// Pixels are kept as packed (score, region id) keys, 8 bytes each: the
/// masks are labelled into regions as they arrive, so one sort at the end
/// serves pixel AUROC, AP, max-F1 and AUPRO alike.
#[derive(Debug, Clone)]
pub struct CategoryEvaluator {
    fpr_limit: f64,
    image_keys: Vec<u64>,
    pixel_keys: Vec<u64>,
    /// Index = global region id; entry 0 (background) is unused.
    region_sizes: Vec<u32>,
    /// Set by the first image: whether images carry maps, and their size.
    pixels: Option<Option<(usize, usize)>>,
    labeller: RegionLabeller,
    labels: Vec<u32>,
}

impl Default for CategoryEvaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl CategoryEvaluator {
    /// An evaluator with AUPRO's usual FPR limit of 0.3.
    pub fn new() -> Self {
        CategoryEvaluator {
            fpr_limit: DEFAULT_FPR_LIMIT,
            image_keys: Vec::new(),
            pixel_keys: Vec::new(),
            region_sizes: vec![0],
            pixels: None,
            labeller: RegionLabeller::new(),
            labels: Vec::new(),
        }
    }

    /// An evaluator whose AUPRO integrates up to `fpr_limit` in (0, 1].
    pub fn with_fpr_limit(fpr_limit: f64) -> Result<Self, MetricsError> {
        check_fpr_limit(fpr_limit)?;
        Ok(CategoryEvaluator { fpr_limit, ..Self::new() })
    }

    /// Number of images added so far.
    pub fn images(&self) -> usize {
        self.image_keys.len()
    }

    /// Adds one image: its score, its label (true = anomalous) and, when the
    /// dataset has masks, its map and mask. `name` only labels errors. Every
    /// image of a category must have pixels or none, at one resolution. On
    /// error nothing is added.
    pub fn add(
        &mut self,
        name: &str,
        score: f32,
        label: bool,
        pixels: Option<PixelData<'_>>,
    ) -> Result<(), MetricsError> {
        check_finite(|| format!("{name}: image score"), std::slice::from_ref(&score))?;
        let shape = pixels.map(|p| (p.width, p.height));
        match (self.pixels, shape) {
            (Some(None), Some(_)) => {
                return Err(MetricsError::MixedPixelData {
                    what: name.to_string(),
                    detail: "this image has a map but earlier images had none",
                })
            }
            (Some(Some(_)), None) => {
                return Err(MetricsError::MixedPixelData {
                    what: name.to_string(),
                    detail: "this image has no map but earlier images had one",
                })
            }
            (Some(Some((ew, eh))), Some((w, h))) if (ew, eh) != (w, h) => {
                return Err(MetricsError::ResolutionChanged {
                    what: name.to_string(),
                    width: w,
                    height: h,
                    expected_width: ew,
                    expected_height: eh,
                })
            }
            _ => {}
        }
        if let Some(p) = pixels {
            self.add_pixels(name, p)?;
        }
        self.pixels = Some(shape);
        self.image_keys.push(pack(score, u32::from(label)));
        Ok(())
    }

    fn add_pixels(&mut self, name: &str, p: PixelData<'_>) -> Result<(), MetricsError> {
        let expected =
            p.width.checked_mul(p.height).ok_or_else(|| MetricsError::TooLarge { what: name.to_string() })?;
        for (kind, len) in [("anomaly map", p.map.len()), ("mask", p.mask.len())] {
            if len != expected {
                return Err(MetricsError::PixelCount {
                    what: name.to_string(),
                    kind,
                    len,
                    width: p.width,
                    height: p.height,
                    expected,
                });
            }
        }
        check_finite(|| format!("{name}: anomaly map"), p.map)?;
        self.labels.resize(expected, 0);
        self.labeller.label(p.mask, p.width, p.height, &mut self.labels);
        let offset = self.region_sizes.len() as u64 - 1;
        if offset + self.labeller.sizes().len() as u64 >= u64::from(u32::MAX) {
            return Err(MetricsError::TooLarge { what: name.to_string() });
        }
        let offset = offset as u32;
        self.region_sizes.extend_from_slice(self.labeller.sizes());
        self.pixel_keys.reserve(expected);
        self.pixel_keys
            .extend(p.map.iter().zip(&self.labels).map(|(&s, &l)| pack(s, if l == 0 { 0 } else { l + offset })));
        Ok(())
    }

    /// The category's seven metrics; pixel metrics are `None` without maps.
    pub fn finish(mut self) -> Metrics {
        sort_keys(&mut self.image_keys);
        let image = binary::from_sorted_keys(&self.image_keys);
        sort_keys(&mut self.pixel_keys);
        let pixel = binary::from_sorted_keys(&self.pixel_keys);
        let aupro = aupro::from_sorted_keys(&self.pixel_keys, &self.region_sizes, self.fpr_limit);
        Metrics {
            image_auroc: image.auroc,
            image_max_f1: image.max_f1,
            image_ap: image.average_precision,
            pixel_auroc: pixel.auroc,
            pixel_max_f1: pixel.max_f1,
            pixel_ap: pixel.average_precision,
            aupro,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px<'a>(map: &'a [f32], mask: &'a [bool]) -> Option<PixelData<'a>> {
        Some(PixelData { map, mask, width: 2, height: 1 })
    }

    #[test]
    fn matches_the_free_functions() {
        let maps: [[f32; 2]; 3] = [[0.1, 0.9], [0.3, 0.2], [0.8, 0.05]];
        let masks = [[false, true], [false, false], [true, false]];
        let scores = [0.9f32, 0.2, 0.7];
        let labels = [true, false, true];
        let mut e = CategoryEvaluator::new();
        for i in 0..3 {
            e.add(&format!("img{i}"), scores[i], labels[i], px(&maps[i], &masks[i])).unwrap();
        }
        let m = e.finish();
        let bin = binary::binary_metrics(&scores, &labels).unwrap();
        assert_eq!((m.image_auroc, m.image_ap, m.image_max_f1), (bin.auroc, bin.average_precision, bin.max_f1));
        let flat: Vec<f32> = maps.iter().flatten().copied().collect();
        let flat_mask: Vec<bool> = masks.iter().flatten().copied().collect();
        let pix = binary::binary_metrics(&flat, &flat_mask).unwrap();
        assert_eq!(m.pixel_auroc, pix.auroc);
        assert_eq!(m.pixel_ap, pix.average_precision);
        let maps_ref: Vec<&[f32]> = maps.iter().map(|m| &m[..]).collect();
        let masks_ref: Vec<&[bool]> = masks.iter().map(|m| &m[..]).collect();
        assert_eq!(m.aupro, aupro::aupro(&maps_ref, &masks_ref, 2, 1, 0.3).unwrap());
        assert!(m.aupro.is_some());
    }

    #[test]
    fn no_masks_means_no_pixel_metrics() {
        let mut e = CategoryEvaluator::new();
        e.add("a", 0.1, false, None).unwrap();
        e.add("b", 0.9, true, None).unwrap();
        let m = e.finish();
        assert_eq!(m.image_auroc, Some(1.0));
        assert_eq!((m.pixel_auroc, m.pixel_ap, m.pixel_max_f1, m.aupro), (None, None, None, None));
    }

    #[test]
    fn bad_images_are_rejected_and_not_added() {
        let mut e = CategoryEvaluator::new();
        assert!(matches!(e.add("nan.png", f32::NAN, true, None), Err(MetricsError::NonFiniteScore { .. })));
        e.add("a.png", 0.5, false, px(&[0.1, 0.2], &[false, false])).unwrap();
        let err = e.add("b.png", 0.5, true, None).unwrap_err();
        assert!(err.to_string().contains("b.png"), "{err}");
        let err = e.add("c.png", 0.5, true, px(&[0.1], &[true])).unwrap_err();
        assert!(matches!(err, MetricsError::PixelCount { kind: "anomaly map", .. }), "{err}");
        let wide = PixelData { map: &[0.0; 3], mask: &[false; 3], width: 3, height: 1 };
        assert!(matches!(e.add("d.png", 0.5, true, Some(wide)), Err(MetricsError::ResolutionChanged { .. })));
        let err = e.add("e.png", 0.5, true, px(&[0.1, f32::INFINITY], &[true, false])).unwrap_err();
        assert!(matches!(err, MetricsError::NonFiniteScore { index: 1, .. }), "{err}");
        assert_eq!(e.images(), 1);
        assert!(CategoryEvaluator::with_fpr_limit(1.5).is_err());
    }
}
