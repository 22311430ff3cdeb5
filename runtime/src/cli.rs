//! Command-line parsing shared by the binaries (`afr`, `afr-quantize`,
//! `afr-toolchain`): a usage error is one line, as every other error is,
//! so that logs and scripts see the problem on the line that says `error`.

use clap::error::ErrorKind;
use clap::Parser;

/// Parses the process's arguments; `--help` and `--version` print as clap
/// does, a usage error prints its first line (`error: ...`) with a pointer
/// to `--help` and exits with clap's usage code (2).
pub fn parse_args<T: Parser>(program: &str) -> T {
    T::try_parse().unwrap_or_else(|e| {
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {}
        }
        let rendered = e.render().to_string();
        let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: invalid arguments");
        eprintln!("{program}: {first} (see {program} --help)");
        std::process::exit(e.exit_code())
    })
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already quotes (several errors embed their source).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// The limits on untrusted input, for the binaries' `--help`.
pub const LIMITS_HELP: &str = "Limits on untrusted input (refused with a message naming the file): images at most \
16384 pixels a side and 40 megapixels, read from the header before any pixel is decoded, and at most 512 MiB of \
decoder memory; `afr bench --frame` within the same sizes; model files at most 2 GiB, afr.input_size at most 4096, \
afr.smoothing_sigma at most afr.input_size / 8, at most 128 categories of at most 64 bytes, each with a row in the \
model's category table; weights checked against afr.weights_sha256 when the file has it (--skip-weights-check to \
skip).";

#[cfg(test)]
mod tests {
    use super::LIMITS_HELP;
    use crate::image_io::{MAX_ALLOC_BYTES, MAX_DIMENSION, MAX_PIXELS};
    use crate::model_info::{MAX_CATEGORIES, MAX_CATEGORY_LEN, MAX_INPUT_SIZE, MAX_MODEL_BYTES, MAX_SIGMA_FRACTION};

    #[test]
    fn the_stated_limits_are_the_enforced_ones() {
        let stated = [
            format!("{MAX_DIMENSION} pixels a side"),
            format!("{} megapixels", MAX_PIXELS / 1_000_000),
            format!("{} MiB", MAX_ALLOC_BYTES >> 20),
            format!("{} GiB", MAX_MODEL_BYTES >> 30),
            format!("afr.input_size at most {MAX_INPUT_SIZE}"),
            format!("afr.input_size / {}", (1.0 / MAX_SIGMA_FRACTION) as u32),
            format!("{MAX_CATEGORIES} categories of at most {MAX_CATEGORY_LEN} bytes"),
        ];
        for s in stated {
            assert!(LIMITS_HELP.contains(&s), "{s}");
        }
    }
}
