//! `videotestsrc num-buffers=20 ! videoconvert ! afrdetect ! fakesink` built
//! in Rust: 20 frames give 20 element messages whose scores equal the
//! detector's on the same frames, the overlay draws, and a bad model stops
//! the pipeline with an error naming the file.

#![cfg(feature = "gstreamer")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};

use afr_runtime::detector::Detector;
use gst::prelude::*;
use gst_video::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

const W: usize = 64;
const H: usize = 48;

struct Run {
    messages: Vec<gst::Structure>,
    /// Each frame as fakesink got it: tight RGB8.
    frames: Vec<Vec<u8>>,
    error: Option<String>,
}

fn run(pattern: &str, element: &str) -> Run {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        gst::init().unwrap();
        gstafr::plugin_register_static().unwrap();
    });
    let description = format!(
        "videotestsrc num-buffers=20 pattern={pattern} ! video/x-raw,width={W},height={H} ! videoconvert ! \
         {element} ! fakesink name=sink"
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = pipeline.by_name("sink").unwrap();
    let seen = frames.clone();
    sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buffer) = info.buffer() {
            let caps = pad.current_caps().unwrap();
            let video = gst_video::VideoInfo::from_caps(&caps).unwrap();
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &video).unwrap();
            let stride = frame.plane_stride()[0] as usize;
            let tight: Vec<u8> =
                frame.plane_data(0).unwrap().chunks(stride).take(H).flat_map(|row| row[..W * 3].to_vec()).collect();
            seen.lock().unwrap().push(tight);
        }
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().unwrap();
    let mut messages = Vec::new();
    let mut error = None;
    // A failing start shows up as an error message on the bus.
    let _ = pipeline.set_state(gst::State::Playing);
    {
        for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
            match message.view() {
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "afrdetect") {
                        messages.push(s.to_owned());
                    }
                }
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => {
                    error = Some(e.error().to_string());
                    break;
                }
                _ => {}
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    Run { messages, frames, error }
}

#[test]
fn twenty_frames_give_twenty_scores_equal_to_the_detectors() {
    let model = fixture("model.onnx");
    let run = run("smpte", &format!("afrdetect model=\"{}\" category=b threshold=0.4", model.display()));
    assert_eq!(run.error, None);
    assert_eq!(run.messages.len(), 20);
    assert_eq!(run.frames.len(), 20);
    let mut detector = Detector::load(&model).unwrap();
    let mut map = vec![0f32; W * H];
    for (i, (message, frame)) in run.messages.iter().zip(&run.frames).enumerate() {
        assert_eq!(message.get::<u64>("frame").unwrap(), i as u64);
        assert_eq!(message.get::<&str>("category").unwrap(), "b");
        let score = message.get::<f32>("score").unwrap();
        let want = detector.score(frame, W, H, 1, &mut map).unwrap();
        assert_eq!(score, want.image, "frame {i}");
        assert_eq!(message.get::<f32>("map-max").unwrap(), want.map_max);
        assert_eq!(message.get::<bool>("anomalous").unwrap(), score >= 0.4);
        assert!(message.get::<Option<gst::ClockTime>>("timestamp").unwrap().is_some());
    }
}

#[test]
fn overlay_draws_the_heatmap() {
    let model = fixture("model.onnx");
    let plain = run("black", &format!("afrdetect model=\"{}\"", model.display()));
    assert_eq!(plain.messages.len(), 20);
    assert!(plain.frames.iter().all(|f| f.iter().all(|&v| v == 0)), "passthrough leaves frames untouched");
    let drawn = run("black", &format!("afrdetect model=\"{}\" overlay=true", model.display()));
    assert_eq!(drawn.messages.len(), 20);
    // Black blended 50% with jet colours: every pixel takes half the colour of its map value.
    let mut detector = Detector::load(&model).unwrap();
    let mut map = vec![0f32; W * H];
    detector.score(&plain.frames[0], W, H, 2, &mut map).unwrap();
    let mut want = plain.frames[0].clone();
    afr_runtime::heatmap::blend(&mut want, &map);
    assert_eq!(drawn.frames[0], want);
    assert!(want.iter().any(|&v| v != 0));
}

#[test]
fn a_bad_model_stops_the_pipeline_naming_the_file() {
    let missing = run("smpte", "afrdetect model=/nonexistent/model.onnx");
    let error = missing.error.expect("an error message");
    assert!(error.contains("/nonexistent/model.onnx: cannot read the model"), "{error}");
    assert!(missing.messages.is_empty());
    let error = run("smpte", "afrdetect").error.expect("an error message");
    assert!(error.contains("`model` property is not set"), "{error}");
}
