//! `afr-toolchain inspect` end to end: what it prints and how it fails.

mod common;

use std::process::Command;

use common::fixtures;

fn inspect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_afr-toolchain"))
        .arg("inspect")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn inspect_reports_sources_and_parameter_counts() {
    let f = fixtures();
    let preset = f.join("preset_clip_tiny.json");
    let clip = f.join("clip_tiny_openai.safetensors");
    let resnet = f.join("resnet_tiny_basic.safetensors");
    let out = inspect(&[
        "--preset",
        preset.to_str().unwrap(),
        "--clip",
        clip.to_str().unwrap(),
        "--resnet",
        resnet.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clip"]["naming"], "OpenAi");
    assert_eq!(v["clip"]["source"], clip.to_str().unwrap());
    // 194,848: the sum over the fixture file's tensors but logit_scale (read off its header).
    assert_eq!(v["clip"]["parameters"], 194_848);
    assert_eq!(v["clip"]["unused_tensors"], serde_json::json!(["logit_scale"]));
    assert_eq!(v["resnet"]["out_dim"], 64);
    assert_eq!(v["taps"], serde_json::json!([2, 4, 6, 8]));
}

#[test]
fn inspect_fails_clearly_on_a_preset_mismatch() {
    let clip = fixtures().join("clip_tiny");
    let out = inspect(&["--preset", "tiny", "--clip", clip.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json") && err.contains("hidden_size"), "{err}");
}
