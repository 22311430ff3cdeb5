//! What can be wrong with the inputs of a metric.

/// Bad input to a metric. Messages name the input (`what`: a caller-given
/// name such as an image path, or the argument) and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("{what}: {scores} scores but {labels} labels")]
    LengthMismatch { what: String, scores: usize, labels: usize },
    #[error("{what}: score at index {index} is {value}, not a finite number")]
    NonFiniteScore { what: String, index: usize, value: f32 },
    #[error("{what}: {kind} has {len} values, expected {width}x{height} = {expected}")]
    PixelCount { what: String, kind: &'static str, len: usize, width: usize, height: usize, expected: usize },
    #[error("{what}: anomaly map is {width}x{height} but earlier maps were {expected_width}x{expected_height}; all maps of a category must share one resolution")]
    ResolutionChanged { what: String, width: usize, height: usize, expected_width: usize, expected_height: usize },
    #[error("{what}: {detail}; either every image of a category has a map and mask or none has")]
    MixedPixelData { what: String, detail: &'static str },
    #[error("{maps} anomaly maps but {masks} masks")]
    MapMaskCount { maps: usize, masks: usize },
    #[error("fpr_limit must lie in (0, 1], got {0}")]
    FprLimit(f64),
    #[error("{what}: more pixels or regions than 32-bit indices can count")]
    TooLarge { what: String },
}
