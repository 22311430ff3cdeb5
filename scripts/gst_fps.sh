#!/usr/bin/env bash
# Frame rate of the GStreamer element afrdetect on this machine, beside
# `afr bench` on the same model and frame size.
#
#     scripts/gst_fps.sh MODEL.onnx [FRAMES] [WIDTHxHEIGHT]
#
# Builds `afr` and the plugin first (release). The pipeline is run with one
# frame and with FRAMES + 1; the difference of the two wall times leaves the
# frames alone (model loading and pipeline start-up cancel out).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
frames=${2:-50}
size=${3:-640x480}
width=${size%x*}
height=${size#*x}

# PROFILE=debug measures the dev build the tests use instead.
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
# One build of the whole workspace with the plugin: `afr` and the plugin share
# tract's build (separate `-p` builds would resolve features apart).
cargo build $flag --locked --workspace --features gst-afr/gstreamer

# The plugin alone in its folder: GStreamer would otherwise scan all of target/.
plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
cp "target/$profile/libgstafr.so" "$plugins/"

pipeline() {
  local start end
  start=$(date +%s.%N)
  GST_PLUGIN_PATH="$plugins" gst-launch-1.0 -q videotestsrc num-buffers="$1" \
    ! "video/x-raw,width=$width,height=$height" ! videoconvert ! afrdetect model="$model" ! fakesink >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}

one=$(pipeline 1)
many=$(pipeline $((frames + 1)))
awk -v n="$frames" -v one="$one" -v many="$many" -v size="$size" \
  'BEGIN { printf "afrdetect: %d frames of %s in %.3f s: %.2f frames/s\n", n, size, many - one, n / (many - one) }'
"target/$profile/afr" bench --model "$model" --frame "$size"
