//! Average precision and max-F1 from the precision-recall curve, as
//! scikit-learn's `average_precision_score` and `precision_recall_curve`
//! compute them.

use super::{binary_metrics, MetricsError};

/// Walks the precision-recall curve, one point per distinct score.
pub(crate) struct PrecisionRecall {
    positives: u64,
    negatives: u64,
    tp: u64,
    fp: u64,
    prev_recall: f64,
    average_precision: f64,
    max_f1: f64,
}

impl PrecisionRecall {
    pub(crate) fn new(positives: u64, negatives: u64) -> Self {
        PrecisionRecall {
            positives,
            negatives,
            tp: 0,
            fp: 0,
            prev_recall: 0.0,
            average_precision: 0.0,
            // precision_recall_curve appends (P=1, R=0), whose F1 is 0.
            max_f1: 0.0,
        }
    }

    /// Adds the samples at the next lower distinct score.
    pub(crate) fn add_threshold(&mut self, tp: u64, fp: u64) {
        self.tp += tp;
        self.fp += fp;
        let precision = self.tp as f64 / (self.tp + self.fp) as f64;
        let recall = self.tp as f64 / self.positives as f64;
        // AP is the step sum  sum_k (R_k - R_{k-1}) * P_k  (no trapezoid, no
        // interpolation), which is what `-sum(diff(recall) * precision[:-1])`
        // over scikit-learn's reversed arrays works out to.
        self.average_precision += (recall - self.prev_recall) * precision;
        self.prev_recall = recall;
        // F1 as AnomalyCLIP / AdaCLIP take it: 2PR / (P + R), 0 where P + R = 0.
        let sum = precision + recall;
        if sum > 0.0 {
            let f1 = 2.0 * precision * recall / sum;
            if f1 > self.max_f1 {
                self.max_f1 = f1;
            }
        }
    }

    fn defined(&self) -> bool {
        // With no negatives scikit-learn says AP = 1 and max-F1 = 1; that is
        // a property of the data, not of the scores, so it is undefined here.
        self.positives > 0 && self.negatives > 0
    }

    pub(crate) fn average_precision(&self) -> Option<f64> {
        self.defined().then_some(self.average_precision)
    }

    pub(crate) fn max_f1(&self) -> Option<f64> {
        self.defined().then_some(self.max_f1)
    }
}

/// Average precision of `scores` against `labels`; `None` with one class only.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Result<Option<f64>, MetricsError> {
    Ok(binary_metrics(scores, labels)?.average_precision)
}

/// Best F1 over all thresholds; `None` with one class only.
pub fn max_f1(scores: &[f32], labels: &[bool]) -> Result<Option<f64>, MetricsError> {
    Ok(binary_metrics(scores, labels)?.max_f1)
}
