//! Helpers shared by the toolchain's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// `tests/fixtures/` at the workspace root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Every tensor of a fixture safetensors file.
pub fn reference(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(name);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(candle_core::DType::F32).unwrap();
    let b = b.to_dtype(candle_core::DType::F32).unwrap();
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Every element as f64, in row-major order.
pub fn values_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// A fresh empty directory under the system temp dir, unique to this test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("afr-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A synthetic MVTec-layout set of `categories` at `size` px under `dir/name`: `test_good`
/// normal images and one per defect type in each category's test split.
pub fn synth_set(
    dir: &std::path::Path,
    name: &str,
    seed: u64,
    size: u32,
    categories: &[&str],
    test_good: usize,
) -> PathBuf {
    let data = dir.join(name);
    let cfg = afr_toolchain::synth::SynthConfig {
        seed,
        size,
        categories: Some(categories.iter().map(|c| c.to_string()).collect()),
        train_good: 0,
        test_good,
        test_bad_per_defect: 1,
    };
    afr_toolchain::synth::generate(&data, &cfg, |_, _| {}).unwrap();
    data
}

/// A small synthetic MVTec-layout set (fabric and washer, 32 px) under `dir/data`.
pub fn tiny_synth(dir: &std::path::Path, test_good: usize) -> PathBuf {
    synth_set(dir, "data", 1, 32, &["fabric", "washer"], test_good)
}

/// Another synthetic set (wood and bolt, 32 px) under `dir/unseen`: categories a run
/// trained on `tiny_synth` never saw.
pub fn unseen_synth(dir: &std::path::Path) -> PathBuf {
    synth_set(dir, "unseen", 2, 32, &["wood", "bolt"], 2)
}

/// Training options for the tiny preset with random backbones on `data`.
pub fn tiny_options(
    data: &std::path::Path,
    epochs: usize,
    afr: afr_toolchain::afr::AfrConfig,
) -> afr_toolchain::train::trainer::TrainOptions {
    afr_toolchain::train::trainer::TrainOptions {
        preset: "tiny".into(),
        clip: "random:0".into(),
        resnet: "random:1".into(),
        data: data.to_path_buf(),
        format: afr_runtime::dataset::Format::Mvtec,
        categories: None,
        prompts: None,
        afr,
        epochs,
        batch_size: 4,
        lr: 1e-3,
        betas: (0.9, 0.999),
        seed: 3,
    }
}

/// One epoch of the tiny preset on `tiny_synth(dir, test_good)`, so that every trainable
/// tensor has left its initial value; returns (data, run directory).
pub fn tiny_run(dir: &std::path::Path, test_good: usize, afr: afr_toolchain::afr::AfrConfig) -> (PathBuf, PathBuf) {
    use afr_toolchain::train::trainer::{self, Outcome};
    let data = tiny_synth(dir, test_good);
    let run = dir.join("run");
    let never = std::sync::atomic::AtomicBool::new(false);
    let outcome = trainer::start(&tiny_options(&data, 1, afr), &run, &Device::Cpu, &never, &mut ()).unwrap();
    assert_eq!(outcome, Outcome::Finished { epochs: 1 });
    (data, run)
}
