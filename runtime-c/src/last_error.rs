//! The message of the last failed call, per thread.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NULs become spaces).
pub(crate) fn set(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// The message of the last call on this thread that did not return
/// `AFR_STATUS_OK` (an empty string if none failed yet). Successful calls
/// leave it as it was. The pointer stays valid until the next failing call
/// on this thread; copy the text to keep it. Never NULL.
#[no_mangle]
pub extern "C" fn afr_last_error_message() -> *const c_char {
    // Reading a thread-local cannot panic except during thread teardown.
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}
