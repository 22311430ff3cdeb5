//! What a loaded model expects and offers: input size, categories, precision,
//! the map's size.

use std::ffi::{c_char, CStr};

use afr_runtime::image_io::MAX_DIMENSION;

use crate::boundary::call;
use crate::handle::{with_handle, AfrDetector};
use crate::status::{AfrStatus, Failure};

/// A model's description. The strings belong to the handle and live until
/// `afr_close`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AfrInfo {
    /// S: the model reads S x S pixels (frames of any size are resized to it).
    pub input_size: u32,
    /// Rows of the category table; the last is the generic "object".
    pub category_count: u32,
    /// The model's patch grid; maps are upsampled from it to the frame size.
    pub grid_width: u32,
    pub grid_height: u32,
    /// Gaussian sigma of the map smoothing, in pixels of the S x S input.
    pub smoothing_sigma: f32,
    /// "fp32", "fp16" or "int8".
    pub precision: *const c_char,
    /// The model preset it was trained with (e.g. "vit-b16").
    pub preset: *const c_char,
}

/// Writes the model's description to `*out`.
///
/// # Safety
/// `detector` is NULL or an open handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn afr_info(detector: *const AfrDetector, out: *mut AfrInfo) -> AfrStatus {
    with_handle("afr_info", detector.cast_mut(), |h| {
        // SAFETY: NULL or writable (the caller's contract).
        let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::null("afr_info", "out"))?;
        let info = h.detector.info();
        let (grid_width, grid_height) = h.detector.grid();
        *out = AfrInfo {
            input_size: info.input_size as u32,
            category_count: h.names.len() as u32,
            grid_width: grid_width as u32,
            grid_height: grid_height as u32,
            smoothing_sigma: info.smoothing_sigma,
            precision: h.precision.as_ptr(),
            preset: h.preset.as_ptr(),
        };
        Ok(())
    })
}

/// Writes the name of category row `index` to `*name` (owned by the handle).
///
/// # Safety
/// `detector` is NULL or an open handle; `name` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn afr_category_name(
    detector: *const AfrDetector,
    index: usize,
    name: *mut *const c_char,
) -> AfrStatus {
    with_handle("afr_category_name", detector.cast_mut(), |h| {
        // SAFETY: NULL or writable (the caller's contract).
        let name = unsafe { name.as_mut() }.ok_or_else(|| Failure::null("afr_category_name", "name"))?;
        let count = h.names.len();
        let found = h.names.get(index).ok_or_else(|| {
            Failure::new(
                AfrStatus::UnknownCategory,
                format!("afr_category_name: category index {index} is out of range: the model has {count} categories"),
            )
        })?;
        *name = found.as_ptr();
        Ok(())
    })
}

/// Writes the row of category `name` to `*index`. With `fallback` true, a
/// name the table does not hold gets the generic "object" row (how the
/// paper scores categories the model was not given); otherwise it is an
/// `AFR_STATUS_UNKNOWN_CATEGORY`.
///
/// # Safety
/// `detector` is NULL or an open handle; `name` is NULL or NUL-terminated;
/// `index` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn afr_category_index(
    detector: *const AfrDetector,
    name: *const c_char,
    fallback: bool,
    index: *mut usize,
) -> AfrStatus {
    with_handle("afr_category_index", detector.cast_mut(), |h| {
        if name.is_null() {
            return Err(Failure::null("afr_category_index", "name"));
        }
        // SAFETY: NULL or writable (the caller's contract).
        let index = unsafe { index.as_mut() }.ok_or_else(|| Failure::null("afr_category_index", "index"))?;
        // SAFETY: non-NULL and NUL-terminated (the caller's contract).
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        let detector = &h.detector;
        let row = if fallback { detector.category_or_default(&name) } else { detector.category_index(&name) };
        *index = row.ok_or_else(|| {
            let known: Vec<&str> = detector.info().categories.iter().map(|c| c.as_str()).collect();
            Failure::new(
                AfrStatus::UnknownCategory,
                format!(
                    "afr_category_index: {}: no category {name:?} (the model has {})",
                    detector.info().path.display(),
                    known.join(", ")
                ),
            )
        })?;
        Ok(())
    })
}

/// Writes to `*len` the number of floats a map for a `width x height` frame
/// holds (maps are at the frame's size, row-major).
///
/// # Safety
/// `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn afr_map_len(width: u32, height: u32, len: *mut usize) -> AfrStatus {
    call("afr_map_len", || {
        // SAFETY: NULL or writable (the caller's contract).
        let len = unsafe { len.as_mut() }.ok_or_else(|| Failure::null("afr_map_len", "len"))?;
        if !(1..=MAX_DIMENSION).contains(&width) || !(1..=MAX_DIMENSION).contains(&height) {
            return Err(Failure::new(
                AfrStatus::BadSize,
                format!("afr_map_len: map size {width}x{height} is invalid: each side must be in 1..={MAX_DIMENSION}"),
            ));
        }
        *len = width as usize * height as usize;
        Ok(())
    })
}
