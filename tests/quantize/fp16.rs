//! fp16 against fp32 (DESIGN.md section 4: maps within 5e-3 max abs): the
//! tiny preset and vit-b16 at 224, run in tract through the runtime's
//! detector; the contract kept (metadata, text tables, inputs and outputs);
//! the file about half the size; bad input refused naming the file.

use std::path::{Path, PathBuf};

use afr_quantize::onnx::pb::tensor_proto::DataType;
use afr_quantize::onnx::Model;
use afr_quantize::{quantize_file, Fp16Compute, KeepFp32, Options, Precision, QuantizeError, Report};

use crate::common::{file_size, max_diffs, scratch, synth_images, untrained};

/// DESIGN.md section 4.
const FP16_TOLERANCE: f32 = 5e-3;

fn fp16_options(calibration: Option<PathBuf>, images: usize) -> Options {
    Options { calibration, max_calibration_images: images, ..Options::new(Precision::Fp16) }
}

fn quantize(input: &Path, name: &str, opts: &Options) -> (PathBuf, Report) {
    let output = scratch(name);
    let report = quantize_file(input, &output, opts, &mut |_, _, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
    (output, report)
}

/// Images under `dir`, the first `n` in path order.
fn some_images(dir: &Path, n: usize) -> Vec<PathBuf> {
    afr_quantize::images::calibration_images(dir, 1000).unwrap().into_iter().take(n).collect()
}

/// What every fp16 file must keep of its source: metadata (but
/// `afr.precision`, and `afr.weights_sha256`, which must verify for the new
/// weights), inputs and outputs, the text tables bit for bit.
fn assert_contract_kept(fp32: &Path, fp16: &Path) {
    let a = Model::read(fp32).unwrap();
    let b = Model::read(fp16).unwrap();
    assert_eq!(b.metadata("afr.precision"), Some("fp16"));
    let others = |m: &Model| -> Vec<(String, String)> {
        m.proto
            .metadata_props
            .iter()
            .filter(|e| e.key != "afr.precision" && e.key != afr_runtime::weights_sha256::KEY)
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    };
    assert_eq!(others(&a), others(&b), "metadata carried over");
    assert!(b.metadata(afr_runtime::weights_sha256::KEY).is_some());
    afr_runtime::weights_sha256::verify(fp16, &b.proto).unwrap();
    let (ga, gb) = (a.proto.graph.as_ref().unwrap(), b.proto.graph.as_ref().unwrap());
    assert_eq!(ga.input, gb.input);
    assert_eq!(ga.output, gb.output);
    let tables = |g: &afr_quantize::onnx::pb::GraphProto| {
        let mut t: Vec<_> = g.initializer.iter().filter(|t| t.name.starts_with("text/")).cloned().collect();
        t.sort_by(|x, y| x.name.cmp(&y.name));
        t
    };
    let ta = tables(ga);
    let names: Vec<&str> = ta.iter().map(|t| t.name.as_str()).collect();
    for table in ["text/normal_prototype", "text/abnormal_prototype", "text/stateless_table"] {
        assert!(names.contains(&table), "the export keeps {table}: {names:?}");
    }
    assert_eq!(ta, tables(gb), "text tables bit-identical");
}

fn check_fp16(preset: &str, size: u32, drift_images: usize) {
    let fp32 = untrained(preset);
    let images = synth_images(size);
    let (fp16, report) =
        quantize(&fp32, &format!("{preset}.fp16.onnx"), &fp16_options(Some(images.clone()), drift_images));
    let drift = report.drift.as_ref().expect("drift measured");
    assert_eq!(drift.images, drift_images);
    assert_eq!(drift.categories, ["bolt", "object"]);
    assert!(drift.max_abs_map <= FP16_TOLERANCE && drift.max_abs_score <= FP16_TOLERANCE, "{preset}: {drift:?}");
    assert!(drift.max_abs_map > 0.0, "{preset}: the weights were rounded, the maps must move a little");
    // Independently of the report: every category row, two other images.
    let others: Vec<PathBuf> = some_images(&images, 1000).into_iter().rev().take(2).collect();
    let (map, score) = max_diffs(&fp32, &fp16, &others);
    assert!(map <= FP16_TOLERANCE && score <= FP16_TOLERANCE, "{preset}: map {map:e}, score {score:e}");
    eprintln!("{preset} fp16: report drift {drift:?}; all rows on 2 more images: map {map:e}, score {score:e}");
    assert_contract_kept(&fp32, &fp16);
    let ratio = file_size(&fp16) as f64 / file_size(&fp32) as f64;
    assert_eq!(report.bytes_after, file_size(&fp16));
    assert_eq!(report.bytes_before, file_size(&fp32));
    eprintln!("{preset} fp16: {} -> {} bytes ({ratio:.3})", report.bytes_before, report.bytes_after);
    assert!((0.45..0.6).contains(&ratio), "{preset}: fp16 file is {ratio:.3} of fp32");
    assert!(report.layers.iter().any(|l| l.choice == "fp16 storage"));
    assert!(report
        .layers
        .iter()
        .filter(|l| l.node.starts_with("stage") && l.node.contains("/cmfr/"))
        .all(|l| l.choice == "fp32 (kept)"));
}

#[test]
fn tiny_fp16_stays_within_tolerance_and_keeps_the_contract() {
    check_fp16("tiny", 64, 6);
}

#[test]
fn vit_b16_fp16_at_224_stays_within_tolerance_and_halves_the_file() {
    check_fp16("vit-b16", 224, 3);
}

#[test]
fn f16_matmuls_stay_within_tolerance() {
    let fp32 = untrained("tiny");
    let opts = Options { fp16_compute: Fp16Compute::Matmul, ..fp16_options(Some(synth_images(64)), 4) };
    let (fp16, report) = quantize(&fp32, "tiny.fp16-matmul.onnx", &opts);
    let drift = report.drift.unwrap();
    assert!(drift.max_abs_map <= FP16_TOLERANCE && drift.max_abs_score <= FP16_TOLERANCE, "{drift:?}");
    let m = Model::read(&fp16).unwrap();
    let casts_to_f16 = m
        .proto
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| {
            n.op_type == "Cast" && n.attribute.iter().any(|a| a.name == "to" && a.i == DataType::Float16 as i64)
        })
        .count();
    let f16_layers = report.layers.iter().filter(|l| l.choice == "fp16 compute").count();
    assert!(f16_layers > 0);
    assert_eq!(casts_to_f16, f16_layers, "one activation cast per f16 MatMul");
    assert_contract_kept(&fp32, &fp16);
}

#[test]
fn kept_patterns_keep_their_weights_f32() {
    let fp32 = untrained("tiny");
    let opts = Options { keep_fp32: KeepFp32::new(["vision/block1/*"]), drift: false, ..Options::new(Precision::Fp16) };
    let (fp16, report) = quantize(&fp32, "tiny.fp16-keep.onnx", &opts);
    assert!(report.drift.is_none());
    let m = Model::read(&fp16).unwrap();
    let g = m.proto.graph.unwrap();
    let dtype = |name: &str| g.initializer.iter().find(|t| t.name == name).map(|t| t.data_type);
    assert_eq!(dtype("vision/block1/fc/weight_t"), Some(DataType::Float as i32));
    assert_eq!(dtype("vision/block2/fc/weight_t"), None, "replaced by its f16 copy");
    assert_eq!(dtype("vision/block2/fc/weight_t_f16"), Some(DataType::Float16 as i32));
    let kept: Vec<_> = report.layers.iter().filter(|l| l.reason.contains("vision/block1/*")).collect();
    assert_eq!(kept.len(), 4, "qkv, out, fc, proj: {kept:?}");
    assert!(kept.iter().all(|l| l.choice == "fp32 (kept)" && l.weight_bytes_after == l.weight_bytes_before));
}

#[test]
fn without_images_drift_is_measured_on_seeded_random_images() {
    let (_, report) = quantize(&untrained("tiny"), "tiny.fp16-random.onnx", &Options::new(Precision::Fp16));
    let drift = report.drift.as_ref().unwrap();
    assert_eq!(drift.images, afr_quantize::drift::RANDOM_IMAGES);
    assert!(drift.source.contains("random"), "{}", drift.source);
    assert!(drift.max_abs_map <= FP16_TOLERANCE, "{drift:?}");
    let md = report.to_markdown();
    assert!(md.contains("seeded random"), "{md}");
}

/// `quantize_file` on `input` fails naming `names` and writes nothing.
fn assert_refused(input: &Path, output: &str, opts: &Options, names: &Path, says: &str) {
    let out = scratch(output);
    let e: QuantizeError = quantize_file(input, &out, opts, &mut |_, _, _| {}).expect_err("must be refused");
    let msg = e.to_string();
    assert!(msg.contains(&names.display().to_string()) && msg.contains(says), "{msg}");
    assert!(!out.exists(), "{output} was written");
}

#[test]
fn bad_input_is_refused_naming_the_file() {
    let opts = Options { drift: false, ..Options::new(Precision::Fp16) };
    let missing = scratch("no-such-model.onnx");
    assert_refused(&missing, "out-missing.onnx", &opts, &missing, "no such file");

    let truncated = scratch("truncated.onnx");
    let bytes = std::fs::read(untrained("tiny")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&truncated, "out-truncated.onnx", &opts, &truncated, "");

    let foreign = scratch("foreign.onnx");
    let mut m = Model::read(&untrained("tiny")).unwrap();
    m.proto.metadata_props.clear();
    m.write(&foreign).unwrap();
    assert_refused(&foreign, "out-foreign.onnx", &opts, &foreign, "not an AFR model");

    let (fp16, _) = quantize(&untrained("tiny"), "tiny.fp16-again.onnx", &opts);
    assert_refused(&fp16, "out-again.onnx", &opts, &fp16, "already quantized");

    let tiny = untrained("tiny");
    let e = quantize_file(&tiny, &tiny, &opts, &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(e.contains("overwrite"), "{e}");
    assert_eq!(std::fs::read(&tiny).unwrap(), bytes, "the input is untouched");

    let no_images = scratch("empty-calibration");
    std::fs::create_dir_all(&no_images).unwrap();
    let with_empty = Options { calibration: Some(no_images.clone()), ..opts.clone() };
    assert_refused(&tiny, "out-empty.onnx", &with_empty, &no_images, "no images");
}
