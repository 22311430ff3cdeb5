//! Area under the per-region-overlap curve up to an FPR limit, step for step
//! as anomalib 2.7.0 computes it (`anomalib.metrics.AUPRO`,
//! `_AUPRO.compute_pro` + `compute`), but in f64 where anomalib uses f32.
//!
//! anomalib 2.7.0 no longer builds a common FPR grid and interpolates each
//! region's ROC onto it (its `interp1d` is left unused); it does one global
//! sort instead:
//! 1. label 8-connected regions of every mask (OpenCV), ids unique across
//!    images; background pixels of all images together give the FPR;
//! 2. sort all pixels by score, descending; each background pixel adds
//!    1 / #background to the FPR, each pixel of region r adds 1 / |r| / #regions
//!    to the PRO, so at every threshold PRO is the mean over regions of the
//!    region's TPR - exact, with no interpolation between thresholds;
//! 3. keep one point per distinct score (the last pixel of each tie), clamp
//!    both to 1, prepend (0, 0);
//! 4. cut at the limit: take the last point with FPR <= limit; if its FPR is
//!    below the limit, add a point at the limit, linearly interpolated towards
//!    the next point; if it equals the limit, stop there;
//! 5. trapezoidal area (torchmetrics `auc`), divided by the last FPR, i.e. by
//!    the limit.
//!
//! Where anomalib's output is a number but the metric means nothing - no
//! anomalous pixel at all (it returns 0) or no normal pixel (it returns 0) -
//! this returns `None`. anomalib keeps the limit as an f32 tensor, so it cuts at
//! 0.30000001192; we cut at the f64 limit given (a difference near 1e-8).

use super::connected::RegionLabeller;
use super::curve::{check_finite, pack, sort_keys, tag, walk_descending};
use super::MetricsError;

/// The FPR limit of the papers' AUPRO (and anomalib's default).
pub const DEFAULT_FPR_LIMIT: f64 = 0.3;

pub(crate) fn check_fpr_limit(fpr_limit: f64) -> Result<(), MetricsError> {
    if fpr_limit > 0.0 && fpr_limit <= 1.0 {
        Ok(())
    } else {
        Err(MetricsError::FprLimit(fpr_limit))
    }
}

/// AUPRO of anomaly maps against ground-truth masks, all `width x height`
/// row-major. `None` when there is no map, no anomalous pixel or no normal pixel.
pub fn aupro(
    maps: &[&[f32]],
    masks: &[&[bool]],
    width: usize,
    height: usize,
    fpr_limit: f64,
) -> Result<Option<f64>, MetricsError> {
    check_fpr_limit(fpr_limit)?;
    if maps.len() != masks.len() {
        return Err(MetricsError::MapMaskCount { maps: maps.len(), masks: masks.len() });
    }
    let pixels =
        width.checked_mul(height).ok_or_else(|| MetricsError::TooLarge { what: format!("{width}x{height} maps") })?;
    let mut keys = Vec::with_capacity(pixels * maps.len());
    // Index = region id; 0 is background and never read.
    let mut region_sizes = vec![0u32];
    let mut labeller = RegionLabeller::new();
    let mut labels = vec![0u32; pixels];
    for (i, (map, mask)) in maps.iter().zip(masks).enumerate() {
        let what = || format!("image {i}");
        for (kind, len) in [("anomaly map", map.len()), ("mask", mask.len())] {
            if len != pixels {
                return Err(MetricsError::PixelCount { what: what(), kind, len, width, height, expected: pixels });
            }
        }
        check_finite(|| format!("image {i}: anomaly map"), map)?;
        labeller.label(mask, width, height, &mut labels);
        let offset = region_sizes.len() as u64 - 1;
        if offset + labeller.sizes().len() as u64 >= u64::from(u32::MAX) {
            return Err(MetricsError::TooLarge { what: what() });
        }
        region_sizes.extend_from_slice(labeller.sizes());
        keys.extend(map.iter().zip(&labels).map(|(&s, &l)| {
            let region = if l == 0 { 0 } else { l + offset as u32 };
            pack(s, region)
        }));
    }
    sort_keys(&mut keys);
    Ok(from_sorted_keys(&keys, &region_sizes, fpr_limit))
}

/// AUPRO of keys sorted by `sort_keys`, tagged with region ids (0 for normal
/// pixels) indexing `region_sizes`; every region 1.. must be non-empty.
pub(crate) fn from_sorted_keys(keys: &[u64], region_sizes: &[u32], fpr_limit: f64) -> Option<f64> {
    let regions = region_sizes.len().saturating_sub(1);
    let background = keys.iter().filter(|&&k| tag(k) == 0).count();
    if regions == 0 || background == 0 {
        return None;
    }
    let (regions, background) = (regions as f64, background as f64);
    let mut area = ProArea::new(fpr_limit);
    let mut fp = 0u64;
    let mut overlap = 0.0f64;
    walk_descending(keys, |group| {
        for &k in group {
            match tag(k) {
                0 => fp += 1,
                r => overlap += 1.0 / f64::from(region_sizes[r as usize]),
            }
        }
        let fpr = (fp as f64 / background).min(1.0);
        let pro = (overlap / regions).min(1.0);
        area.add_point(fpr, pro)
    });
    Some(area.finish())
}

/// Trapezoidal area under (FPR, PRO) points arriving in increasing FPR,
/// cut at the limit as anomalib cuts it, normalised by the last FPR kept.
struct ProArea {
    limit: f64,
    prev_fpr: f64,
    prev_pro: f64,
    area: f64,
    /// The FPR the curve ended at, once the limit was passed.
    end: Option<f64>,
}

impl ProArea {
    fn new(limit: f64) -> Self {
        // anomalib prepends (0, 0) to the curve.
        ProArea { limit, prev_fpr: 0.0, prev_pro: 0.0, area: 0.0, end: None }
    }

    /// Adds the next point; false once the curve is cut.
    fn add_point(&mut self, fpr: f64, pro: f64) -> bool {
        if fpr <= self.limit {
            self.trapezoid(fpr, pro);
            return true;
        }
        // First point past the limit: the previous one was the last kept.
        if self.prev_fpr < self.limit {
            let (f1, p1) = (self.prev_fpr, self.prev_pro);
            let p_lim = p1 + (pro - p1) * (self.limit - f1) / (fpr - f1);
            self.trapezoid(self.limit, p_lim);
        }
        // else the previous point sits exactly on the limit: anomalib stops there.
        self.end = Some(self.prev_fpr);
        false
    }

    fn trapezoid(&mut self, fpr: f64, pro: f64) {
        // Points arrive sorted by FPR, ties in threshold order, which is the
        // order torchmetrics' stable `auc(reorder=True)` leaves them in.
        self.area += (fpr - self.prev_fpr) * (pro + self.prev_pro) / 2.0;
        self.prev_fpr = fpr;
        self.prev_pro = pro;
    }

    fn finish(&self) -> f64 {
        // No cut happens only if every point is within the limit (limit 1).
        let end = self.end.unwrap_or(self.prev_fpr);
        self.area / end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_map_scores_one() {
        let mask = [false, true, true, false, false, true];
        let map = [0.0, 0.9, 0.8, 0.1, 0.2, 0.7];
        let v = aupro(&[&map], &[&mask], 3, 2, 0.3).unwrap().unwrap();
        assert!((v - 1.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn interpolates_at_the_limit() {
        // One region of one pixel scored lowest; 4 background pixels above it.
        // Curve: (0,0) (.25,0) (.5,0) ... PRO stays 0 up to FPR 1, then 1 at FPR 1
        // only after all background: area 0 within 0.3.
        let mask = [false, false, false, false, true];
        let map = [0.9, 0.8, 0.7, 0.6, 0.1];
        assert_eq!(aupro(&[&map], &[&mask], 5, 1, 0.3).unwrap(), Some(0.0));
        // Region first, then the background: PRO 1 from FPR 0 -> area 1.
        let map = [0.2, 0.3, 0.4, 0.5, 0.9];
        let v = aupro(&[&map], &[&mask], 5, 1, 0.3).unwrap().unwrap();
        assert!((v - 1.0).abs() < 1e-12, "{v}");
        // Region tied with one background pixel: the point (.25, 1) comes
        // straight from (0, 0): area up to .25 is .125, then 1 * .05.
        let map = [0.9, 0.3, 0.2, 0.1, 0.9];
        let v = aupro(&[&map], &[&mask], 5, 1, 0.3).unwrap().unwrap();
        assert!((v - (0.125 + 0.05) / 0.3).abs() < 1e-12, "{v}");
    }

    #[test]
    fn limit_hit_exactly_stops_without_interpolation() {
        // 10 background pixels, one region pixel tied with the 3rd: FPR 0.3 exactly.
        let mut mask = [false; 11];
        mask[10] = true;
        let mut map = [0.0f32; 11];
        for (i, v) in map.iter_mut().take(10).enumerate() {
            *v = 1.0 - i as f32 * 0.05;
        }
        map[10] = map[2];
        let v = aupro(&[&map], &[&mask], 11, 1, 0.3).unwrap().unwrap();
        // (.2,0) -> (.3,1): area .05, normalised by .3
        assert!((v - 0.05 / 0.3).abs() < 1e-12, "{v}");
    }

    #[test]
    fn undefined_and_bad_input() {
        let map = [0.1f32, 0.2];
        assert_eq!(aupro(&[&map], &[&[false, false]], 2, 1, 0.3).unwrap(), None);
        assert_eq!(aupro(&[&map], &[&[true, true]], 2, 1, 0.3).unwrap(), None);
        assert_eq!(aupro(&[], &[], 2, 1, 0.3).unwrap(), None);
        assert!(matches!(aupro(&[&map], &[&[true]], 2, 1, 0.3), Err(MetricsError::PixelCount { .. })));
        assert!(matches!(aupro(&[&map], &[&[true, false]], 2, 1, 0.0), Err(MetricsError::FprLimit(_))));
        let nan = [f32::NAN, 0.0];
        assert!(matches!(
            aupro(&[&nan], &[&[true, false]], 2, 1, 0.3),
            Err(MetricsError::NonFiniteScore { index: 0, .. })
        ));
    }
}
