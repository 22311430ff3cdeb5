//! The C boundary: every entry point runs its body through [`call`], so that a
//! failure becomes a status and a message, and a panic never unwinds into C.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::last_error;
use crate::status::{AfrStatus, Failure};

/// Runs `body`; records the message of a failure or a caught panic.
pub(crate) fn call(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> AfrStatus {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return AfrStatus::Ok,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(
            AfrStatus::Panic,
            format!("{function}: internal error: {}; the handle can only be closed", panic_text(&*payload)),
        ),
    };
    last_error::set(&failure.message);
    failure.status
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        unsafe { CStr::from_ptr(crate::afr_last_error_message()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = call("afr_test", || panic!("index out of bounds: the len is 3 but the index is 7"));
        assert_eq!(status, AfrStatus::Panic);
        let message = last();
        assert!(message.starts_with("afr_test: internal error: index out of bounds"), "{message}");
        let status = call("afr_test", || std::panic::panic_any(42u8));
        assert_eq!(status, AfrStatus::Panic);
        assert!(last().contains("internal error: panic"));
    }

    #[test]
    fn failures_set_the_message_and_successes_keep_it() {
        assert_eq!(call("f", || Err(Failure::null("afr_score", "frame"))), AfrStatus::NullPointer);
        assert_eq!(last(), "afr_score: frame is NULL");
        assert_eq!(call("f", || Ok(())), AfrStatus::Ok);
        assert_eq!(last(), "afr_score: frame is NULL");
        // Messages are per thread.
        let other = std::thread::spawn(last).join().unwrap();
        assert_eq!(other, "");
    }
}
