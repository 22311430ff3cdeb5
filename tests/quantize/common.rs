//! Models and images the quantization tests share.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use afr_runtime::detector::{Detector, DetectorOptions};

/// A fresh directory for this process's models and images.
fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("afr-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An untrained fp32 model of `preset` (`tiny`, `vit-b16`) with seeded random
/// backbones and the categories `bolt` and `wood`, exported once per process.
pub fn untrained(preset: &str) -> PathBuf {
    static MODELS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut models = MODELS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    models
        .entry(preset.to_string())
        .or_insert_with(|| {
            let path = work_dir().join(format!("{preset}.fp32.onnx"));
            let categories = ["bolt".to_string(), "wood".to_string()];
            let model = afr_toolchain::export::untrained(
                preset,
                "random:0",
                "random:1",
                &categories,
                &candle_core::Device::Cpu,
            )
            .unwrap_or_else(|e| panic!("exporting an untrained {preset}: {e}"));
            model.write(&path).unwrap();
            path
        })
        .clone()
}

/// Synthetic images of `size` px (normal and defective, with masks) under
/// one folder, generated once per size: the calibration and drift set.
pub fn synth_images(size: u32) -> PathBuf {
    static SETS: OnceLock<Mutex<HashMap<u32, PathBuf>>> = OnceLock::new();
    let mut sets = SETS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    sets.entry(size)
        .or_insert_with(|| {
            let dir = work_dir().join(format!("synth{size}"));
            let cfg = afr_toolchain::synth::SynthConfig {
                seed: 5,
                size,
                categories: Some(vec!["bolt".into(), "wood".into()]),
                train_good: 4,
                test_good: 2,
                test_bad_per_defect: 1,
            };
            afr_toolchain::synth::generate(&dir, &cfg, |_, _| {}).unwrap();
            dir
        })
        .clone()
}

/// A path in this process's scratch folder.
pub fn scratch(name: &str) -> PathBuf {
    work_dir().join(name)
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len()
}

/// Largest |a - b| of the patch maps and of the image scores (smoothing
/// off), both models run in tract on `images` against every category row.
pub fn max_diffs(a: &Path, b: &Path, images: &[PathBuf]) -> (f32, f32) {
    let options = DetectorOptions { smoothing: false, ..DetectorOptions::default() };
    let mut da = Detector::load_with(a, options).unwrap();
    let mut db = Detector::load_with(b, options).unwrap_or_else(|e| panic!("tract loads the quantized file: {e}"));
    let rows = da.info().categories.len();
    let grid = da.grid();
    assert_eq!(db.grid(), grid);
    let mut out = vec![0.0; grid.0 * grid.1];
    let (mut map, mut score) = (0f32, 0f32);
    for path in images {
        let image = afr_runtime::image_io::load_rgb8(path).unwrap();
        let (w, h) = (image.width() as usize, image.height() as usize);
        for row in 0..rows {
            let sa = da.score_to(image.as_raw(), w, h, row, &mut out, grid).unwrap().image;
            let sb = db.score_to(image.as_raw(), w, h, row, &mut out, grid).unwrap().image;
            score = score.max((sa - sb).abs());
            map = da.patch_map().iter().zip(db.patch_map()).fold(map, |m, (x, y)| m.max((x - y).abs()));
        }
    }
    (map, score)
}
