//! AFR-CLIP runtime: the deployable half. Everything here is shared with the
//! toolchain (preprocessing, metrics, dataset readers) so that training and
//! inference can never disagree.

pub mod atomic;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dataset;
pub mod detector;
pub mod evaluate;
pub mod heatmap;
pub mod image_io;
pub mod metrics;
pub mod model_info;
pub mod postprocess;
pub mod preprocess;
pub mod prototypes;
pub mod report;
pub mod weights_sha256;
pub use heapless;
