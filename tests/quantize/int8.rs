//! int8 against fp32 (DESIGN.md section 4: maps within 3e-2 max abs, the
//! vit-b16 file at most 0.3 x fp32): the tiny preset and vit-b16 at 224, run
//! in tract through the runtime's detector, with activations quantized per
//! frame (the default, with or without calibration images) and with
//! calibrated ranges on request; the text tables kept bit for bit.

use std::path::PathBuf;

use afr_quantize::calibrate::{Calibration, RangeMethod};
use afr_quantize::images::calibration_images;
use afr_quantize::int8::{self, ActivationMode, Int8Options};
use afr_quantize::onnx::Model;
use afr_quantize::{KeepFp32, LayerChoice};

use crate::common::{file_size, max_diffs, scratch, synth_images, untrained};

/// DESIGN.md section 4.
const INT8_TOLERANCE: f32 = 3e-2;

fn convert(
    model: &Model,
    name: &str,
    calibration: Option<&Calibration>,
    activations: ActivationMode,
) -> (PathBuf, Vec<LayerChoice>) {
    let options = Int8Options { activations, range: RangeMethod::MinMax };
    let (mut q, choices) = int8::convert_with(model, calibration, &KeepFp32::default(), &options)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    q.set_metadata("afr.precision", "int8");
    let path = scratch(name);
    q.write(&path).unwrap();
    (path, choices)
}

fn text_tables(m: &Model) -> Vec<afr_quantize::onnx::pb::TensorProto> {
    let mut t: Vec<_> =
        m.proto.graph.as_ref().unwrap().initializer.iter().filter(|t| t.name.starts_with("text/")).cloned().collect();
    t.sort_by(|x, y| x.name.cmp(&y.name));
    t
}

/// The block linears' choices: all int8 compute, of the kinds `allowed`.
fn assert_blocks(choices: &[LayerChoice], allowed: &[&str], label: &str) {
    let blocks: Vec<_> = choices.iter().filter(|c| c.node.starts_with("vision/block") && c.op == "MatMul").collect();
    assert!(blocks.len() >= 4 * 8, "{label}: {} block linears", blocks.len());
    for c in blocks {
        assert!(allowed.contains(&c.choice.as_str()), "{label}: {} is {} ({})", c.node, c.choice, c.reason);
        assert!(c.weight_bytes_after * 3 < c.weight_bytes_before, "{label}: {c:?}");
    }
    let heads =
        |c: &&LayerChoice| c.op != "Initializer" && (c.node.starts_with("stage") || c.node.starts_with("vision/embed"));
    for c in choices.iter().filter(heads) {
        assert!(
            c.choice.starts_with("fp32"),
            "{label}: {} is {}: the heads and patch embedding stay float",
            c.node,
            c.choice
        );
    }
}

fn check_int8(preset: &str, size: u32) {
    let fp32 = untrained(preset);
    let model = Model::read(&fp32).unwrap();
    let all = calibration_images(&synth_images(size), 1000).unwrap();
    // Calibrate on some images, measure the drift on others.
    let calib: Vec<PathBuf> = all.iter().step_by(2).take(4).cloned().collect();
    let eval: Vec<PathBuf> = all.iter().skip(1).step_by(2).take(3).cloned().collect();
    let mut steps = Vec::new();
    let calibration = Calibration::collect(&model, &calib, &mut |done, total| steps.push((done, total))).unwrap();
    assert_eq!(steps, (1..=calib.len()).map(|d| (d, calib.len())).collect::<Vec<_>>(), "progress after each image");
    assert_eq!(calibration.images(), calib.len());

    let variants = [
        ("dynamic", None, ActivationMode::Auto, &["int8 dynamic"][..]),
        ("auto", Some(&calibration), ActivationMode::Auto, &["int8 dynamic"][..]),
        ("calibrated", Some(&calibration), ActivationMode::Calibrated, &["int8 calibrated"][..]),
    ];
    for (label, cal, mode, allowed) in variants {
        let (path, choices) = convert(&model, &format!("{preset}.int8-{label}.onnx"), cal, mode);
        assert_blocks(&choices, allowed, label);
        let (map, score) = max_diffs(&fp32, &path, &eval);
        let ratio = file_size(&path) as f64 / file_size(&fp32) as f64;
        eprintln!(
            "{preset} int8 {label}: map {map:e}, score {score:e} on {} images x every row; file {ratio:.3} of fp32",
            eval.len()
        );
        assert!(map <= INT8_TOLERANCE && score <= INT8_TOLERANCE, "{preset} {label}: map {map:e}, score {score:e}");
        assert!(map > 0.0, "{preset} {label}: int8 must move the maps a little");
        let q = Model::read(&path).unwrap();
        assert_eq!(text_tables(&q), text_tables(&model), "{label}: text tables bit-identical");
        let names: Vec<String> = text_tables(&model).into_iter().map(|t| t.name).collect();
        assert!(names.iter().any(|n| n == "text/normal_prototype"), "{names:?}");
        assert_eq!(q.metadata("afr.input_size"), model.metadata("afr.input_size"));
        if preset == "vit-b16" {
            assert!(ratio <= 0.3, "vit-b16 {label}: int8 file is {ratio:.3} of fp32");
        }
    }
}

#[test]
fn tiny_int8_stays_within_tolerance() {
    check_int8("tiny", 64);
}

#[test]
fn vit_b16_int8_at_224_stays_within_tolerance_under_0_3_of_the_size() {
    check_int8("vit-b16", 224);
}

#[test]
fn an_unreadable_calibration_image_is_named() {
    let model = Model::read(&untrained("tiny")).unwrap();
    let bad = scratch("not-an-image.png");
    std::fs::write(&bad, b"definitely not a png").unwrap();
    let e = Calibration::collect(&model, std::slice::from_ref(&bad), &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("not-an-image.png"), "{e}");
    let e = Calibration::collect(&model, &[], &mut |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("no calibration images"), "{e}");
}
