//! The `afr-quantize` binary end to end on the runtime's tiny contract
//! model: a good run (Markdown, JSON, report file), and bad input refused
//! with a non-zero exit, a message naming the file, and no output written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

fn quantize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_afr-quantize")).args(args).output().expect("run afr-quantize")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fp16_of_the_contract_model_writes_the_model_and_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.fp16.onnx");
    let json = dir.path().join("report.json");
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "fp16",
        "--output",
        s(&out),
        "--report",
        s(&json),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(md.starts_with("# fp16 quantization"), "{md}");
    assert!(md.contains("seeded random"), "no calibration folder: {md}");
    let info = afr_runtime::model_info::ModelInfo::load(&out).unwrap();
    assert_eq!(info.precision, "fp16");
    assert_eq!(info.categories.len(), 3);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["precision"], "fp16");
    assert_eq!(report["drift"]["images"], afr_quantize::drift::RANDOM_IMAGES);
    // The model has no MatMul or Conv: nothing to round, so no drift at all.
    assert_eq!(report["drift"]["max_abs_map"], 0.0);
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "fp16",
        "--output",
        s(&out),
        "--json",
        "--no-drift",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["drift"].is_null());
    assert_eq!(v["layers"][0]["choice"], "fp32 (kept)", "the category table");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging files left: {leftovers:?}");
}

#[test]
fn bad_input_exits_non_zero_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(fixture("model.onnx")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let missing = dir.path().join("missing.onnx");
    let not_ours = fixture("not_ours.onnx");
    for (input, says) in [(&not_ours, "not an AFR model"), (&missing, "no such file"), (&truncated, "")] {
        let o = quantize(&["--input", s(input), "--precision", "fp16", "--output", s(&out)]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(s(input)) && e.contains(says), "{e}");
        assert!(!out.exists());
    }
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "fp16",
        "--output",
        s(&dir.path().join("no/such/dir/out.onnx")),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let o = quantize(&["--input", s(&fixture("model.onnx")), "--precision", "fp32", "--output", s(&out)]);
    assert!(!o.status.success() && stderr(&o).contains("fp16 or int8"), "{}", stderr(&o));
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "fp16",
        "--output",
        s(&out),
        "--max-calibration-images",
        "0",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("positive"), "{}", stderr(&o));
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "int8",
        "--output",
        s(&out),
        "--int8-activations",
        "bogus",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("calibrated"), "{}", stderr(&o));
    // Calibrated ranges need a calibration folder.
    let o = quantize(&[
        "--input",
        s(&fixture("model.onnx")),
        "--precision",
        "int8",
        "--output",
        s(&out),
        "--int8-activations",
        "calibrated",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("needs calibration images"), "{}", stderr(&o));
    assert!(!out.exists());
}
