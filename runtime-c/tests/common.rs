//! Shared by the C API's tests: the fixture model, a test frame, and calls
//! that read the last error message.

#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use afr::{afr_last_error_message, afr_open, AfrDetector, AfrStatus};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

/// This thread's last error message.
pub fn last_error() -> String {
    unsafe { CStr::from_ptr(afr_last_error_message()) }.to_string_lossy().into_owned()
}

/// Interleaved RGB8, `w x h`: a dark noisy frame with a bright square.
pub fn frame_rgb(w: usize, h: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let spot = (w / 3..w / 3 + 6).contains(&x) && (h / 2..h / 2 + 6).contains(&y);
            let v = if spot { 240 } else { (20 + (x * 7 + y * 13) % 30) as u8 };
            rgb.extend_from_slice(&[v, v.saturating_add(x as u8 % 5), v / 2 + 10]);
        }
    }
    rgb
}

/// Opens `path` through the C API.
pub fn open(path: &Path) -> Result<*mut AfrDetector, (AfrStatus, String)> {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let mut handle = std::ptr::null_mut();
    match unsafe { afr_open(c.as_ptr(), &mut handle) } {
        AfrStatus::Ok => Ok(handle),
        status => {
            assert!(handle.is_null(), "a failed open leaves *out NULL");
            Err((status, last_error()))
        }
    }
}
