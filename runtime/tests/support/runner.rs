//! Starts a binary under test; through `AFR_TEST_RUNNER` (a command line)
//! when it is set, so a cross-built binary runs under its emulator
//! (scripts/aarch64-check.sh runs the tests under qemu-aarch64).

use std::process::Command;

pub fn command(bin: &str) -> Command {
    let runner = std::env::var("AFR_TEST_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    match runner.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(runner).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}
