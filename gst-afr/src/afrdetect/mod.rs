//! The `afrdetect` element: its public type and registration.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    /// Scores each RGB frame with an AFR-CLIP model (see the crate docs).
    pub struct AfrDetect(ObjectSubclass<imp::AfrDetect>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Name of the element messages posted per frame.
pub const MESSAGE_NAME: &str = "afrdetect";

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "afrdetect", gst::Rank::NONE, AfrDetect::static_type())
}
