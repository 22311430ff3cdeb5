//! AUROC, AP and max-F1 together, from one sort.

use super::auroc::RocArea;
use super::curve::{check_finite, pack, sort_keys, tag, walk_descending};
use super::precision_recall::PrecisionRecall;
use super::MetricsError;

/// The three ranking metrics of one set of (score, label) samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryMetrics {
    pub auroc: Option<f64>,
    pub average_precision: Option<f64>,
    pub max_f1: Option<f64>,
}

/// AUROC, AP and max-F1 of `scores` (higher = more anomalous) against
/// `labels` (true = anomalous), sorting once. Each is `None` when only one
/// class is present (or there are no samples).
pub fn binary_metrics(scores: &[f32], labels: &[bool]) -> Result<BinaryMetrics, MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            what: "binary metrics".to_string(),
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    check_finite(|| "binary metrics".into(), scores)?;
    let mut keys: Vec<u64> = scores.iter().zip(labels).map(|(&s, &l)| pack(s, u32::from(l))).collect();
    sort_keys(&mut keys);
    Ok(from_sorted_keys(&keys))
}

/// The metrics of keys sorted by `sort_keys`, a tag of 0 meaning normal and
/// any other tag (a label or a region id) anomalous.
pub(crate) fn from_sorted_keys(keys: &[u64]) -> BinaryMetrics {
    let positives = keys.iter().filter(|&&k| tag(k) != 0).count() as u64;
    let negatives = keys.len() as u64 - positives;
    let mut roc = RocArea::new(positives, negatives);
    let mut pr = PrecisionRecall::new(positives, negatives);
    if positives > 0 && negatives > 0 {
        walk_descending(keys, |group| {
            let tp = group.iter().filter(|&&k| tag(k) != 0).count() as u64;
            let fp = group.len() as u64 - tp;
            roc.add_threshold(tp, fp);
            pr.add_threshold(tp, fp);
            true
        });
    }
    BinaryMetrics { auroc: roc.finish(), average_precision: pr.average_precision(), max_f1: pr.max_f1() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn hand_computed_example() {
        // scores 0.9(+) 0.8(-) 0.7(+) 0.6(-): ROC points (0,.5) (.5,.5) (.5,1) (1,1)
        let m = binary_metrics(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]).unwrap();
        assert!(close(m.auroc, 0.75));
        // AP = 0.5 * 1 + 0.5 * 2/3
        assert!(close(m.average_precision, 0.5 + 1.0 / 3.0));
        // best F1 at threshold 0.7: P = 2/3, R = 1 -> 0.8
        assert!(close(m.max_f1, 0.8));
    }

    #[test]
    fn one_class_is_undefined() {
        for labels in [[true, true], [false, false]] {
            let m = binary_metrics(&[0.1, 0.2], &labels).unwrap();
            assert_eq!(m, BinaryMetrics { auroc: None, average_precision: None, max_f1: None });
        }
        let m = binary_metrics(&[], &[]).unwrap();
        assert_eq!(m.auroc, None);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert!(matches!(
            binary_metrics(&[0.1], &[true, false]),
            Err(MetricsError::LengthMismatch { scores: 1, labels: 2, .. })
        ));
    }
}
