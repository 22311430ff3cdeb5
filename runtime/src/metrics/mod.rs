//! Evaluation metrics, equal to scikit-learn and anomalib (DESIGN.md section 4).
//!
//! Everything is accumulated in f64 after one O(n log n) sort of packed
//! (score, tag) keys, so tens of millions of pixels cost 8 bytes each and no
//! per-pixel allocation. Undefined metrics (one class only, no masks, no
//! anomalous pixel) are `None`, never 0 or 1; non-finite scores are errors.

mod aupro;
mod auroc;
mod binary;
mod connected;
mod curve;
mod error;
mod evaluator;
mod precision_recall;

pub use aupro::{aupro, DEFAULT_FPR_LIMIT};
pub use auroc::auroc;
pub use binary::{binary_metrics, BinaryMetrics};
pub use connected::RegionLabeller;
pub use error::MetricsError;
pub use evaluator::{CategoryEvaluator, PixelData};
pub use precision_recall::{average_precision, max_f1};

use serde::{Deserialize, Serialize};

/// The seven metrics of one category (or their macro mean), each a fraction
/// in [0, 1] or `None` where undefined. Field order is the report's column order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub image_auroc: Option<f64>,
    pub image_max_f1: Option<f64>,
    pub image_ap: Option<f64>,
    pub pixel_auroc: Option<f64>,
    pub pixel_max_f1: Option<f64>,
    pub pixel_ap: Option<f64>,
    pub aupro: Option<f64>,
}

impl Metrics {
    /// Metric names in column order, as they appear in the JSON report.
    pub const NAMES: [&'static str; 7] =
        ["image_auroc", "image_max_f1", "image_ap", "pixel_auroc", "pixel_max_f1", "pixel_ap", "aupro"];

    /// The values in the order of [`Metrics::NAMES`].
    pub fn values(&self) -> [Option<f64>; 7] {
        [
            self.image_auroc,
            self.image_max_f1,
            self.image_ap,
            self.pixel_auroc,
            self.pixel_max_f1,
            self.pixel_ap,
            self.aupro,
        ]
    }

    /// Inverse of [`Metrics::values`].
    pub fn from_values(v: [Option<f64>; 7]) -> Self {
        Metrics {
            image_auroc: v[0],
            image_max_f1: v[1],
            image_ap: v[2],
            pixel_auroc: v[3],
            pixel_max_f1: v[4],
            pixel_ap: v[5],
            aupro: v[6],
        }
    }

    /// Macro average over `items` of each metric's defined values; `None`
    /// for a metric no item defines (an average of nothing is not 0).
    pub fn macro_mean<'a>(items: impl IntoIterator<Item = &'a Metrics>) -> Metrics {
        let mut sum = [0.0f64; 7];
        let mut count = [0usize; 7];
        for m in items {
            for (k, v) in m.values().iter().enumerate() {
                if let Some(x) = v {
                    sum[k] += x;
                    count[k] += 1;
                }
            }
        }
        let mut out = [None; 7];
        for k in 0..7 {
            if count[k] > 0 {
                out[k] = Some(sum[k] / count[k] as f64);
            }
        }
        Metrics::from_values(out)
    }
}
