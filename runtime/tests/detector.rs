//! The detector on the tiny contract models of `scripts/make_runtime_fixtures.py`:
//! outputs against numpy, and every bad input of DESIGN.md section 5 that
//! concerns scoring.

use std::path::{Path, PathBuf};

use afr_runtime::detector::{Detector, DetectorError, DetectorOptions};
use afr_runtime::model_info::{ModelError, ModelInfo};
use afr_runtime::postprocess::Upsampler;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn metadata_is_read() {
    let info = ModelInfo::load(&fixture("model.onnx")).unwrap();
    let want = expected();
    assert_eq!(info.input_size, 32);
    let names: Vec<&str> = info.categories.iter().map(|c| c.as_str()).collect();
    assert_eq!(names, ["a", "b", "object"]);
    assert_eq!(info.precision, "fp32");
    assert_eq!(info.parameters, want["parameters"].as_u64().unwrap());
    assert!((info.smoothing_sigma - want["smoothing_sigma"].as_f64().unwrap() as f32).abs() < 1e-7);
    assert_eq!(info.file_bytes, std::fs::metadata(fixture("model.onnx")).unwrap().len());
    assert_eq!(info.category_index("b"), Some(1));
    assert_eq!(info.category_index("zipper"), None);
    assert_eq!(info.category_or_default("zipper"), Some(2));
}

#[test]
fn outputs_equal_numpy() {
    let want = expected();
    let mut det =
        Detector::load_with(&fixture("model.onnx"), DetectorOptions { smoothing: false, ..DetectorOptions::default() })
            .unwrap();
    assert_eq!(det.grid(), (4, 4));
    let mut worst = 0f32;
    for case in want["cases"].as_array().unwrap() {
        let rgb: Vec<u8> = case["rgb"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        let category = case["category"].as_u64().unwrap() as usize;
        let grid = floats(&case["grid"]);
        // At the input size, preprocessing is the identity up to normalisation.
        let mut map = vec![0f32; 32 * 32];
        let scores = det.score(&rgb, 32, 32, category, &mut map).unwrap();
        worst = worst.max(max_diff(det.patch_map(), &grid));
        worst = worst.max((scores.image - case["score"].as_f64().unwrap() as f32).abs());
        assert_eq!(scores.map_max, map.iter().copied().fold(f32::MIN, f32::max));
        // The map at another size: numpy's bilinear (align_corners=False).
        let (w, h) =
            (case["upsampled_width"].as_u64().unwrap() as usize, case["upsampled_height"].as_u64().unwrap() as usize);
        let mut small = vec![0f32; w * h];
        det.score_to(&rgb, 32, 32, category, &mut small, (w, h)).unwrap();
        worst = worst.max(max_diff(&small, &floats(&case["upsampled"])));
    }
    println!("max abs difference to numpy: {worst:e}");
    assert!(worst < 1e-5, "max abs difference to numpy {worst}");
}

#[test]
fn smoothing_uses_the_models_sigma_scaled_to_the_output() {
    let want = expected();
    let case = &want["cases"][0];
    let rgb: Vec<u8> = case["rgb"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    let mut det = Detector::load(&fixture("model.onnx")).unwrap();
    let (w, h) = (64, 48);
    let mut map = vec![0f32; w * h];
    let mut grown = vec![0u8; w * h * 3];
    // Nearest-neighbour enlargement of the 32x32 frame (any frame will do).
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x * 32 / w, y * 32 / h);
            grown[(y * w + x) * 3..][..3].copy_from_slice(&rgb[(sy * 32 + sx) * 3..][..3]);
        }
    }
    det.score(&grown, w, h, 0, &mut map).unwrap();
    let sigma = want["smoothing_sigma"].as_f64().unwrap() as f32 * (w + h) as f32 / 64.0;
    assert_eq!(det.output_sigma(w, h), sigma);
    let up = Upsampler::new((4, 4), (w, h), sigma);
    let mut reference = vec![0f32; w * h];
    let mut scratch = vec![0f32; up.scratch_len()];
    up.run(det.patch_map(), &mut reference, &mut scratch);
    assert_eq!(map, reference);
    det.set_smoothing(false);
    let mut rough = vec![0f32; w * h];
    det.score(&grown, w, h, 0, &mut rough).unwrap();
    assert!(max_diff(&rough, &map) > 1e-4, "smoothing changed nothing");
}

#[test]
fn models_that_are_not_ours_are_refused_naming_the_file() {
    let err = Detector::load(&fixture("not_ours.onnx")).unwrap_err();
    assert!(matches!(err, DetectorError::Model(ModelError::NotOurs { .. })), "{err}");
    assert!(err.to_string().contains("not_ours.onnx"), "{err}");
    let err = Detector::load(&fixture("future_version.onnx")).unwrap_err();
    assert!(matches!(err, DetectorError::Model(ModelError::UnknownVersion { .. })), "{err}");
    assert!(err.to_string().contains("future_version.onnx") && err.to_string().contains("999"), "{err}");
    let err = Detector::load(&fixture("many_categories.onnx")).unwrap_err();
    assert!(err.to_string().contains("afr.categories") && err.to_string().contains("128"), "{err}");
    let err = Detector::load(&fixture("missing.onnx")).unwrap_err();
    assert!(matches!(err, DetectorError::Model(ModelError::Read { .. })), "{err}");
}

#[test]
fn truncated_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("model.onnx")).unwrap();
    for (name, content) in [
        ("half.onnx", bytes[..bytes.len() / 2].to_vec()),
        ("cut.onnx", bytes[..bytes.len() - 7].to_vec()),
        ("empty.onnx", Vec::new()),
        ("text.onnx", b"this is not a model\n".to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let err = Detector::load(&path).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(matches!(err, DetectorError::Model(_)), "{name}: {err}");
        // The same bytes from memory: the same refusal, under the given name.
        let err = Detector::load_bytes(&content, Path::new("flash"), DetectorOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with("flash: "), "{name}: {err}");
        assert!(matches!(err, DetectorError::Model(_)), "{name}: {err}");
    }
}

#[test]
fn a_model_in_memory_scores_as_the_file_does() {
    let bytes = std::fs::read(fixture("model.onnx")).unwrap();
    let mut from_file = Detector::load(&fixture("model.onnx")).unwrap();
    let mut from_bytes = Detector::load_bytes(&bytes, Path::new("flash"), DetectorOptions::default()).unwrap();
    assert_eq!(from_bytes.info().file_bytes, bytes.len() as u64);
    assert_eq!(from_bytes.info().categories, from_file.info().categories);
    let rgb: Vec<u8> = (0..24 * 20 * 3).map(|i| (i * 37 % 251) as u8).collect();
    let (mut a, mut b) = (vec![0f32; 24 * 20], vec![0f32; 24 * 20]);
    let want = from_file.score(&rgb, 24, 20, 1, &mut a).unwrap();
    assert_eq!(from_bytes.score(&rgb, 24, 20, 1, &mut b).unwrap(), want);
    assert_eq!(a, b);
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let mut det = Detector::load(&fixture("model.onnx")).unwrap();
    let rgb = vec![10u8; 20 * 10 * 3];
    let mut map = vec![0f32; 20 * 10];
    assert!(matches!(det.score(&rgb[1..], 20, 10, 0, &mut map), Err(DetectorError::BufferSize { what: "image", .. })));
    assert!(matches!(det.score(&rgb, 20, 10, 0, &mut map[1..]), Err(DetectorError::BufferSize { what: "map", .. })));
    assert!(matches!(det.score(&[], 0, 10, 0, &mut []), Err(DetectorError::BadSize { .. })));
    let err = det.score(&[], 100_000, 1, 0, &mut []).unwrap_err();
    assert!(matches!(err, DetectorError::BadSize { .. }), "{err}");
    // Huge sizes whose products overflow are refused before any multiplication.
    assert!(det.score(&[], usize::MAX, usize::MAX, 0, &mut []).is_err());
    let err = det.score(&rgb, 20, 10, 3, &mut map).unwrap_err();
    assert!(matches!(err, DetectorError::UnknownCategory { index: 3, count: 3 }), "{err}");
    // After the errors the detector still works.
    let s = det.score(&rgb, 20, 10, 2, &mut map).unwrap();
    assert!(s.image.is_finite() && s.map_max.is_finite());
}

#[test]
fn non_finite_outputs_are_errors() {
    let mut det = Detector::load(&fixture("nan.onnx")).unwrap();
    let rgb = vec![10u8; 8 * 8 * 3];
    let mut map = vec![0f32; 64];
    let err = det.score(&rgb, 8, 8, 0, &mut map).unwrap_err();
    assert!(matches!(err, DetectorError::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("nan.onnx"), "{err}");
}

#[cfg(not(feature = "multithread"))]
#[test]
fn threads_need_the_multithread_feature() {
    let err = Detector::load_with(&fixture("model.onnx"), DetectorOptions { threads: 4, ..DetectorOptions::default() })
        .unwrap_err();
    assert!(matches!(err, DetectorError::Threads { threads: 4 }), "{err}");
}

#[cfg(feature = "multithread")]
#[test]
fn threads_give_the_same_result() {
    let rgb: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 37 % 251) as u8).collect();
    let mut one = Detector::load(&fixture("model.onnx")).unwrap();
    let mut four =
        Detector::load_with(&fixture("model.onnx"), DetectorOptions { threads: 4, ..DetectorOptions::default() })
            .unwrap();
    let (mut a, mut b) = (vec![0f32; 1200], vec![0f32; 1200]);
    assert_eq!(one.score(&rgb, 40, 30, 1, &mut a).unwrap(), four.score(&rgb, 40, 30, 1, &mut b).unwrap());
    assert_eq!(a, b);
}

#[test]
fn a_detector_can_move_to_a_camera_thread() {
    fn send<T: Send>(_: &T) {}
    let det = Detector::load(&fixture("model.onnx")).unwrap();
    send(&det);
    let handle = std::thread::spawn(move || {
        let mut det = det;
        let mut map = vec![0f32; 16];
        det.score(&[128u8; 48], 4, 4, 0, &mut map).map(|s| s.image)
    });
    assert!(handle.join().unwrap().unwrap().is_finite());
}

/// A graph that never reads `category` (an export without CMFR): tract keeps
/// the unused input alive between runs, and frames after the first must
/// still score.
#[test]
fn a_model_that_ignores_the_category_scores_every_frame() {
    use prost::Message;
    let mut proto = tract_onnx::pb::ModelProto::decode(&*std::fs::read(fixture("model.onnx")).unwrap()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    graph.initializer.push(tract_onnx::pb::TensorProto {
        name: "row0".into(),
        dims: vec![1],
        data_type: tract_onnx::pb::tensor_proto::DataType::Int64 as i32,
        int64_data: vec![0],
        ..Default::default()
    });
    let gather = graph.node.iter_mut().find(|n| n.op_type == "Gather").unwrap();
    gather.input[1] = "row0".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_category.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let mut d = Detector::load_with(&path, DetectorOptions { smoothing: false, ..DetectorOptions::default() }).unwrap();
    let frame = vec![128u8; 16 * 16 * 3];
    let mut map = vec![0.0; 16 * 16];
    let first = d.score(&frame, 16, 16, 1, &mut map).unwrap();
    for row in [0, 1, 2] {
        assert_eq!(d.score(&frame, 16, 16, row, &mut map).unwrap(), first, "row {row}");
    }
}
