//! afr-quantize's cases of the bad-input catalogue; the list and the checks
//! live in runtime/tests/bad_inputs.rs, one file for both binaries.

#[path = "../../runtime/tests/bad_inputs.rs"]
mod bad_inputs;
