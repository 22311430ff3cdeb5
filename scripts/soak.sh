#!/usr/bin/env bash
# Soak measurement (a measurement, not a test): the embedded loop over
# 10,000 frames of the tiny preset's model, printing resident memory after
# frame 100 and after the last frame. Release build, run under nice.
#
#     scripts/soak.sh [FRAMES]
set -euo pipefail
frames="${1:-10000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The export only writes the model: the dev build is enough for it.
nice -n 10 cargo run -q -p afr-toolchain --bin afr-toolchain -- export --preset tiny --clip random:0 \
    --resnet random:0 --categories object --out "$work/tiny.onnx"
nice -n 10 cargo build --release --example embedded_loop
nice -n 10 "${CARGO_TARGET_DIR:-target}/release/examples/embedded_loop" "$work/tiny.onnx" object "$frames"
