//! The opaque handle: a loaded detector with what the C side reads from it,
//! and the entry points that open and close it.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use afr_runtime::detector::{Detector, DetectorOptions};

use crate::boundary::call;
use crate::status::{AfrStatus, Failure};

/// A loaded model and its per-frame buffers. Opaque to C: created by
/// `afr_open` or `afr_open_bytes`, released by `afr_close`.
pub struct AfrDetector {
    pub(crate) detector: Detector,
    /// NUL-terminated copies of the category names, for `afr_category_name`.
    pub(crate) names: Vec<CString>,
    pub(crate) precision: CString,
    pub(crate) preset: CString,
    /// Frames that are not tight RGB8, converted (grown on a new size only).
    pub(crate) rgb: Vec<u8>,
    /// The map of calls that pass none (grown on a new size only).
    pub(crate) map: Vec<f32>,
    /// Set when a call panicked: the detector's state is unknown.
    poisoned: bool,
}

impl AfrDetector {
    fn new(detector: Detector) -> AfrDetector {
        let info = detector.info();
        let text = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        AfrDetector {
            names: info.categories.iter().map(|c| text(c)).collect(),
            precision: text(&info.precision),
            preset: text(&info.preset),
            detector,
            rgb: Vec::new(),
            map: Vec::new(),
            poisoned: false,
        }
    }
}

/// Runs `body` on the handle behind `handle`, refusing NULL and a handle
/// that an earlier panic left unusable; marks the handle after a panic.
pub(crate) fn with_handle(
    function: &str,
    handle: *mut AfrDetector,
    body: impl FnOnce(&mut AfrDetector) -> Result<(), Failure>,
) -> AfrStatus {
    // Set once the body runs: a panic status after that came from the body.
    let mut entered = false;
    let status = call(function, || {
        // SAFETY: the caller passes a handle from afr_open that it has not
        // closed, used by this thread only (the header's contract).
        let h = unsafe { handle.as_mut() }.ok_or_else(|| Failure::null(function, "detector"))?;
        if h.poisoned {
            return Err(Failure::new(
                AfrStatus::Panic,
                format!("{function}: the detector hit an internal error earlier and can only be closed"),
            ));
        }
        entered = true;
        body(h)
    });
    if entered && status == AfrStatus::Panic {
        // SAFETY: non-NULL (checked above), and no reference to it is alive.
        unsafe { (*handle).poisoned = true };
    }
    status
}

/// Writes NULL to `out` now and the new handle on success.
fn open(function: &str, out: *mut *mut AfrDetector, load: impl FnOnce() -> Result<Detector, Failure>) -> AfrStatus {
    call(function, || {
        if out.is_null() {
            return Err(Failure::null(function, "out"));
        }
        // SAFETY: non-NULL, and the caller passes room for one pointer.
        unsafe { *out = ptr::null_mut() };
        let handle = Box::new(AfrDetector::new(load()?));
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Loads the AFR ONNX model at `path` (a NUL-terminated file name) and
/// stores a new handle in `*out` (NULL on failure). Smoothing of the maps is
/// on (the model's sigma); tract runs on the calling thread.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or points to
/// writable room for one pointer.
#[no_mangle]
pub unsafe extern "C" fn afr_open(path: *const c_char, out: *mut *mut AfrDetector) -> AfrStatus {
    open("afr_open", out, || {
        if path.is_null() {
            return Err(Failure::null("afr_open", "path"));
        }
        // SAFETY: non-NULL and NUL-terminated (the caller's contract).
        let path = path_from_c(unsafe { CStr::from_ptr(path) })?;
        Ok(Detector::load(&path)?)
    })
}

/// Loads an AFR ONNX model from `len` bytes at `data` (owned by the caller,
/// read only during this call) and stores a new handle in `*out` (NULL on
/// failure). Messages name the model "model bytes".
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `out` is NULL or points
/// to writable room for one pointer.
#[no_mangle]
pub unsafe extern "C" fn afr_open_bytes(data: *const u8, len: usize, out: *mut *mut AfrDetector) -> AfrStatus {
    open("afr_open_bytes", out, || {
        if data.is_null() {
            return Err(Failure::null("afr_open_bytes", "data"));
        }
        // SAFETY: non-NULL, `len` readable bytes (the caller's contract).
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        Ok(Detector::load_bytes(bytes, Path::new("model bytes"), DetectorOptions::default())?)
    })
}

/// Releases a handle and everything it holds. NULL is accepted and ignored.
///
/// # Safety
/// `detector` is NULL or a handle from `afr_open` / `afr_open_bytes` that is
/// not used again.
#[no_mangle]
pub unsafe extern "C" fn afr_close(detector: *mut AfrDetector) {
    if detector.is_null() {
        return;
    }
    call("afr_close", || {
        // SAFETY: a handle from Box::into_raw, closed once (the caller's contract).
        drop(unsafe { Box::from_raw(detector) });
        Ok(())
    });
}

/// The library's version, e.g. "0.1.0" (static, never NULL).
#[no_mangle]
pub extern "C" fn afr_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(unix)]
fn path_from_c(path: &CStr) -> Result<PathBuf, Failure> {
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
}

#[cfg(not(unix))]
fn path_from_c(path: &CStr) -> Result<PathBuf, Failure> {
    let text =
        path.to_str().map_err(|_| Failure::new(AfrStatus::InvalidArgument, "afr_open: path is not valid UTF-8"))?;
    Ok(PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_leaves_the_handle_closable_only() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime/model.onnx");
        let handle = Box::into_raw(Box::new(AfrDetector::new(Detector::load(&model).unwrap())));
        let status = with_handle("afr_score", handle, |h| {
            let _ = h.detector.grid();
            panic!("internal bug");
        });
        assert_eq!(status, AfrStatus::Panic);
        // The next call refuses the handle instead of using a half-updated state.
        let status = with_handle("afr_prepare", handle, |h| Ok(h.detector.prepare(8, 8)?));
        assert_eq!(status, AfrStatus::Panic);
        let message = unsafe { CStr::from_ptr(crate::afr_last_error_message()) }.to_str().unwrap().to_string();
        assert_eq!(message, "afr_prepare: the detector hit an internal error earlier and can only be closed");
        unsafe { afr_close(handle) };
    }
}
