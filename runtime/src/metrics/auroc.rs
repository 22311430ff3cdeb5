//! Area under the ROC curve, as scikit-learn's `roc_auc_score` computes it.

use super::{binary_metrics, MetricsError};

/// Trapezoidal area under (FPR, TPR) with one point per distinct score,
/// starting at (0, 0), as `roc_curve` + `auc` do. `roc_curve` also drops
/// collinear points (`drop_intermediate`), which changes no area.
pub(crate) struct RocArea {
    positives: f64,
    negatives: f64,
    tp: u64,
    fp: u64,
    prev_fpr: f64,
    prev_tpr: f64,
    area: f64,
}

impl RocArea {
    pub(crate) fn new(positives: u64, negatives: u64) -> Self {
        RocArea {
            positives: positives as f64,
            negatives: negatives as f64,
            tp: 0,
            fp: 0,
            prev_fpr: 0.0,
            prev_tpr: 0.0,
            area: 0.0,
        }
    }

    /// Adds the samples at the next lower distinct score.
    pub(crate) fn add_threshold(&mut self, tp: u64, fp: u64) {
        self.tp += tp;
        self.fp += fp;
        let fpr = self.fp as f64 / self.negatives;
        let tpr = self.tp as f64 / self.positives;
        // numpy's trapezoid: dx * (y0 + y1) / 2, in this order.
        self.area += (fpr - self.prev_fpr) * (tpr + self.prev_tpr) / 2.0;
        self.prev_fpr = fpr;
        self.prev_tpr = tpr;
    }

    /// `None` with one class only (scikit-learn raises there).
    pub(crate) fn finish(&self) -> Option<f64> {
        (self.positives > 0.0 && self.negatives > 0.0).then_some(self.area)
    }
}

/// AUROC of `scores` (higher = more anomalous) against `labels` (true =
/// anomalous); `None` when only one class is present.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Result<Option<f64>, MetricsError> {
    Ok(binary_metrics(scores, labels)?.auroc)
}
