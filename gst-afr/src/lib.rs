//! GStreamer plugin `afr` with the element `afrdetect`: scores every video
//! frame with an AFR-CLIP model, posts the score as an element message and
//! optionally draws the anomaly heatmap onto the frame.
//!
//! ```sh
//! cargo build --release -p gst-afr --features gstreamer
//! GST_PLUGIN_PATH=target/release gst-launch-1.0 -m videotestsrc num-buffers=20 ! \
//!     videoconvert ! afrdetect model=MODEL.onnx overlay=true ! fakesink
//! ```
//!
//! Without the `gstreamer` feature the crate is empty, so that the workspace
//! builds and tests on machines without GStreamer's development packages.

#[cfg(feature = "gstreamer")]
mod afrdetect;
#[cfg(feature = "gstreamer")]
pub use afrdetect::AfrDetect;

#[cfg(feature = "gstreamer")]
fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    afrdetect::register(plugin)
}

#[cfg(feature = "gstreamer")]
gst::plugin_define!(
    afr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    "afr-clip",
    "afr-clip",
    "afr-clip"
);
