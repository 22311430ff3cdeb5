//! `afrdetect`'s implementation: a video filter that loads the model when
//! the pipeline starts, scores each frame in place and posts the scores.
//!
//! With `overlay=false` the element runs in passthrough (buffers are only
//! read, never copied); with `overlay=true` it blends the heatmap into the
//! frame.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};

use afr_runtime::detector::{Detector, Scores};
use afr_runtime::evaluate::{scoring_rows, ScoringRow};
use afr_runtime::heatmap;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use super::MESSAGE_NAME;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("afrdetect", gst::DebugColorFlags::empty(), Some("AFR-CLIP anomaly detector"))
});

const DEFAULT_CATEGORY: &str = "object";
const DEFAULT_THRESHOLD: f32 = 0.5;

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    category: String,
    threshold: f32,
    overlay: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { model: None, category: DEFAULT_CATEGORY.into(), threshold: DEFAULT_THRESHOLD, overlay: false }
    }
}

/// What a started element holds: the model and the per-frame buffers.
struct State {
    detector: Detector,
    row: usize,
    scored_as: String,
    /// Frames whose rows are padded, made tight (grown on a new size only).
    rgb: Vec<u8>,
    map: Vec<f32>,
    frames: u64,
}

#[derive(Default)]
pub struct AfrDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these plain values half-written.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for AfrDetect {
    const NAME: &'static str = "GstAfrDetect";
    type Type = super::AfrDetect;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for AfrDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("AFR ONNX model file (from afr-toolchain export or afr-quantize); required")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("category")
                    .nick("Category")
                    .blurb("What the camera looks at: a row of the model's table (afr info); one it lacks is scored with the generic object row")
                    .default_value(Some(DEFAULT_CATEGORY))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("threshold")
                    .nick("Threshold")
                    .blurb("Image score at or above which a frame is reported anomalous")
                    .minimum(f32::MIN)
                    .maximum(f32::MAX)
                    .default_value(DEFAULT_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("overlay")
                    .nick("Overlay")
                    .blurb("Draw the anomaly heatmap onto the frame (otherwise frames pass through untouched)")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        // GObject checked each value's type against its ParamSpec already.
        match pspec.name() {
            "model" => settings.model = value.get::<Option<String>>().ok().flatten().map(PathBuf::from),
            "category" => {
                settings.category =
                    value.get::<Option<String>>().ok().flatten().unwrap_or_else(|| DEFAULT_CATEGORY.into())
            }
            "threshold" => settings.threshold = value.get().unwrap_or(DEFAULT_THRESHOLD),
            "overlay" => {
                settings.overlay = value.get().unwrap_or(false);
                drop(settings);
                self.update_passthrough();
            }
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "model" => settings.model.as_ref().map(|p| p.display().to_string()).to_value(),
            "category" => settings.category.to_value(),
            "threshold" => settings.threshold.to_value(),
            "overlay" => settings.overlay.to_value(),
            _ => pspec.default_value().clone(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.update_passthrough();
    }
}

impl GstObjectImpl for AfrDetect {}

impl ElementImpl for AfrDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "AFR-CLIP anomaly detector",
                "Filter/Analyzer/Video",
                "Scores each frame for visual anomalies with an AFR-CLIP model; posts an element message \
                 per frame and can draw the anomaly heatmap",
                "afr-clip",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::Rgb).build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|direction| {
                    let name = if direction == gst::PadDirection::Src { "src" } else { "sink" };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
                        .expect("static pad template")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for AfrDetect {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let model = settings.model.ok_or_else(|| {
            gst::error_msg!(gst::ResourceError::NotFound, ("afrdetect: the `model` property is not set"))
        })?;
        let detector = Detector::load(&model).map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)))?;
        let rows = scoring_rows(detector.info(), std::slice::from_ref(&settings.category), false)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?;
        let Some(ScoringRow { row, scored_as, .. }) = rows.into_iter().next() else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ("{}: no scoring row", model.display())));
        };
        if scored_as != settings.category {
            let text = format!(
                "{}: no row for category `{}`; scored with the generic `object` row",
                model.display(),
                settings.category
            );
            gst::element_imp_warning!(self, gst::ResourceError::Settings, ("{}", text));
        }
        gst::info!(CAT, imp = self, "{}: {:?}, scored as `{scored_as}`", model.display(), detector.info().precision);
        *lock(&self.state) = Some(State { detector, row, scored_as, rgb: Vec::new(), map: Vec::new(), frames: 0 });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }
}

impl VideoFilterImpl for AfrDetect {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Some(state) = lock(&self.state).as_mut() {
            state
                .detector
                .prepare(in_info.width() as usize, in_info.height() as usize)
                .map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        }
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        self.score(state, frame)?;
        let (width, stride) = (frame.width() as usize, frame.plane_stride()[0] as usize);
        let pixels = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
        for (row, values) in pixels.chunks_mut(stride).zip(state.map.chunks_exact(width)) {
            heatmap::blend(&mut row[..width * 3], values);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn transform_frame_ip_passthrough(
        &self,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        self.score(state, frame)?;
        Ok(gst::FlowSuccess::Ok)
    }
}

impl AfrDetect {
    /// Overlay off: the element only reads buffers.
    fn update_passthrough(&self) {
        let overlay = lock(&self.settings).overlay;
        self.obj().set_passthrough(!overlay);
    }

    /// Scores `frame` into `state.map` and posts the scores.
    fn score(
        &self,
        state: &mut State,
        frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
    ) -> Result<(), gst::FlowError> {
        let (width, height) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let pixels = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        let rgb = if stride == width * 3 {
            &pixels[..width * height * 3]
        } else {
            state.rgb.resize(width * height * 3, 0);
            for (dst, src) in state.rgb.chunks_exact_mut(width * 3).zip(pixels.chunks(stride)) {
                dst.copy_from_slice(&src[..width * 3]);
            }
            &state.rgb[..]
        };
        state.map.resize(width * height, 0.0);
        let scores = state.detector.score(rgb, width, height, state.row, &mut state.map);
        let Scores { image, map_max } = scores.map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
            gst::FlowError::Error
        })?;
        let threshold = lock(&self.settings).threshold;
        let message = gst::Structure::builder(MESSAGE_NAME)
            .field("frame", state.frames)
            .field("timestamp", frame.buffer().pts())
            .field("score", image)
            .field("map-max", map_max)
            .field("anomalous", image >= threshold)
            .field("category", state.scored_as.as_str())
            .build();
        state.frames += 1;
        // Posting fails only without a bus (an element outside a pipeline).
        let _ = self.obj().post_message(gst::message::Element::builder(message).src(&*self.obj()).build());
        Ok(())
    }
}
