//! The status codes every entry point returns, and how runtime errors map to them.

use afr_runtime::detector::DetectorError;
use afr_runtime::model_info::ModelError;

/// Result of a call. On anything but `AFR_STATUS_OK`, `afr_last_error_message`
/// says what went wrong, naming the model file where there is one.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfrStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument is out of its range (an unknown pixel format, a path that is not UTF-8 where one must be, ...).
    InvalidArgument = 2,
    /// The model file cannot be read.
    Io = 3,
    /// The bytes are not an AFR model this runtime can load.
    BadModel = 4,
    /// A frame or map size is zero or over the runtime's limit.
    BadSize = 5,
    /// A frame or map buffer does not have the length its size needs.
    BufferSize = 6,
    /// The category index is not a row of the model's table, or the name is unknown.
    UnknownCategory = 7,
    /// The model failed on this frame (tract error, or a non-finite output).
    Inference = 8,
    /// A bug inside the library was caught; the handle is no longer usable.
    Panic = 9,
}

/// A failed call: its status and the message the caller will read.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: AfrStatus,
    pub message: String,
}

impl Failure {
    pub fn new(status: AfrStatus, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn null(function: &str, argument: &str) -> Failure {
        Failure::new(AfrStatus::NullPointer, format!("{function}: {argument} is NULL"))
    }
}

impl From<DetectorError> for Failure {
    fn from(e: DetectorError) -> Failure {
        let status = match &e {
            DetectorError::Model(ModelError::Read { .. }) => AfrStatus::Io,
            DetectorError::Model(_) | DetectorError::Load { .. } => AfrStatus::BadModel,
            DetectorError::Inference { .. } | DetectorError::NonFinite { .. } => AfrStatus::Inference,
            DetectorError::BufferSize { .. } => AfrStatus::BufferSize,
            DetectorError::BadSize { .. } => AfrStatus::BadSize,
            DetectorError::UnknownCategory { .. } => AfrStatus::UnknownCategory,
            DetectorError::Threads { .. } | DetectorError::NoThreads => AfrStatus::InvalidArgument,
        };
        Failure::new(status, e.to_string())
    }
}
