//! Scoring frames: prepare a size, score into the caller's map.

use afr_runtime::detector::Scores;

use crate::frame::{AfrFrame, Layout};
use crate::handle::{with_handle, AfrDetector};
use crate::status::{AfrStatus, Failure};

/// What a frame scored.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AfrScores {
    /// The model's image score (higher: more anomalous).
    pub image: f32,
    /// The largest value of the anomaly map.
    pub map_max: f32,
}

/// Allocates what frames of `width x height` need, so that the first such
/// frame does not (optional: `afr_score` prepares on demand). The handle
/// keeps the last four sizes prepared.
///
/// # Safety
/// `detector` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn afr_prepare(detector: *mut AfrDetector, width: u32, height: u32) -> AfrStatus {
    with_handle("afr_prepare", detector, |h| Ok(h.detector.prepare(width as usize, height as usize)?))
}

/// Turns the Gaussian smoothing of the maps on (the default) or off.
///
/// # Safety
/// `detector` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn afr_set_smoothing(detector: *mut AfrDetector, on: bool) -> AfrStatus {
    with_handle("afr_set_smoothing", detector, |h| {
        h.detector.set_smoothing(on);
        Ok(())
    })
}

/// Scores `frame` against category row `category` (see
/// `afr_category_index`), writes the anomaly map at the frame's size into
/// `map` (`map_len` floats, row-major; `afr_map_len` gives the count) and
/// the scores into `*scores`. `map` may be NULL with `map_len` 0 when only
/// the scores are wanted. After the first frame of a size, nothing is
/// allocated.
///
/// # Safety
/// `detector` is NULL or an open handle; `frame` is NULL or points to an
/// `AfrFrame` whose `data` has `len` readable bytes; `map` is NULL or has
/// `map_len` writable floats; `scores` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn afr_score(
    detector: *mut AfrDetector,
    frame: *const AfrFrame,
    category: usize,
    map: *mut f32,
    map_len: usize,
    scores: *mut AfrScores,
) -> AfrStatus {
    with_handle("afr_score", detector, |h| {
        // SAFETY: NULL or valid (the caller's contract).
        let frame = unsafe { frame.as_ref() }.ok_or_else(|| Failure::null("afr_score", "frame"))?;
        // SAFETY: NULL or writable (the caller's contract).
        let scores = unsafe { scores.as_mut() }.ok_or_else(|| Failure::null("afr_score", "scores"))?;
        if frame.data.is_null() {
            return Err(Failure::null("afr_score", "frame->data"));
        }
        let layout = Layout::of(frame)?;
        // SAFETY: `len` readable bytes at `data` (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(frame.data, frame.len) };
        let rgb = layout.rgb8(data, &mut h.rgb);
        let (w, hgt) = (layout.width, layout.height);
        let result = if map.is_null() {
            if map_len != 0 {
                return Err(Failure::null("afr_score", "map (with a non-zero map_len)"));
            }
            h.map.resize(w * hgt, 0.0);
            h.detector.score(rgb, w, hgt, category, &mut h.map)
        } else {
            // SAFETY: `map_len` writable floats (the caller's contract).
            let map = unsafe { std::slice::from_raw_parts_mut(map, map_len) };
            h.detector.score(rgb, w, hgt, category, map)
        };
        let Scores { image, map_max } = result.map_err(|e| {
            let mut failure = Failure::from(e);
            failure.message = format!("afr_score: {}", failure.message);
            failure
        })?;
        *scores = AfrScores { image, map_max };
        Ok(())
    })
}
