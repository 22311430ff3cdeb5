//! Export parity (DESIGN.md section 4): a tiny run (one epoch on a synthetic
//! set, so every trainable tensor has left its initial value) exported to
//! ONNX and run in tract reproduces Candle's reference outputs to 1e-4 on
//! `image_score` and `anomaly_map`, with all modules on and with each
//! ablation switch.

use std::path::Path;

mod common;
use common::tiny_run;

use afr_quantize::onnx::Model;
use afr_runtime::model_info::ModelInfo;
use afr_toolchain::afr::{AfrConfig, SpMode};
use afr_toolchain::export::{export, ExportError, REFERENCE_SAMPLES};
use afr_toolchain::train::run::{load_tensors, RunConfig};
use candle_core::Device;
use tract_onnx::prelude::*;

const TOLERANCE: f32 = 1e-4;

struct Reference {
    images: Vec<f32>,
    categories: Vec<i64>,
    scores: Vec<f32>,
    maps: Vec<f32>,
}

fn read_reference(path: &Path) -> Reference {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    };
    let i64s = st
        .tensor("category")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Reference { images: f32s("image"), categories: i64s, scores: f32s("image_score"), maps: f32s("anomaly_map") }
}

/// Trains with `afr`, exports, replays the reference in tract; returns the
/// max abs differences (image score, anomaly map).
fn parity(label: &str, afr: AfrConfig) -> (f32, f32) {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = tiny_run(dir.path(), 1, afr);
    let (onnx, reference) = (dir.path().join("model.onnx"), dir.path().join("reference.safetensors"));
    let summary = export(&run, None, &onnx, Some(&reference), &Device::Cpu).unwrap();
    assert_eq!(summary.categories, ["fabric", "washer", "object"]);

    let model = Model::read(&onnx).unwrap();
    assert_eq!(model.metadata("afr.categories"), Some("fabric,washer,object"));
    assert_eq!(model.metadata("afr.input_size"), Some("64"));
    assert_eq!(model.metadata("afr.precision"), Some("fp32"));
    let checkpoint = afr_toolchain::train::run::RunConfig::read(&run).unwrap().checkpoint;
    let sha = afr_toolchain::train::run::sha256_file(&run.join(checkpoint)).unwrap();
    assert_eq!(model.metadata("afr.source_sha256"), Some(sha.as_str()));

    let plan = tract_onnx::onnx().model_for_path(&onnx).unwrap().into_optimized().unwrap().into_runnable().unwrap();
    let r = read_reference(&reference);
    let (s, g) = (64, 8);
    assert_eq!((r.images.len(), r.maps.len()), (REFERENCE_SAMPLES * 3 * s * s, REFERENCE_SAMPLES * g * g));
    // The maps must vary far beyond the tolerance, or agreeing to 1e-4 proves nothing.
    let (lo, hi) = r.maps.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 100.0 * TOLERANCE, "{label}: reference maps span only {lo}..{hi}");
    let (mut d_score, mut d_map) = (0f32, 0f32);
    for i in 0..REFERENCE_SAMPLES {
        let image = Tensor::from_shape(&[1, 3, s, s], &r.images[i * 3 * s * s..][..3 * s * s]).unwrap();
        let category = Tensor::from_shape(&[1], &[r.categories[i]]).unwrap();
        let out = plan.run(tvec!(image.into(), category.into())).unwrap();
        let score = out[0].to_plain_array_view::<f32>().unwrap();
        let map = out[1].to_plain_array_view::<f32>().unwrap();
        assert_eq!((score.shape(), map.shape()), (&[1][..], &[1, g, g][..]));
        d_score = d_score.max((score[[0]] - r.scores[i]).abs());
        for (a, b) in map.iter().zip(&r.maps[i * g * g..][..g * g]) {
            d_map = d_map.max((a - b).abs());
        }
    }
    println!("{label}: max |tract - candle| image_score {d_score:.3e}, anomaly_map {d_map:.3e}");
    assert!(d_score <= TOLERANCE && d_map <= TOLERANCE, "{label}: image_score {d_score}, anomaly_map {d_map}");
    (d_score, d_map)
}

#[test]
fn all_modules_on() {
    parity("all modules on", AfrConfig::default());
}

#[test]
fn sp_off() {
    parity("SP off", AfrConfig { sp: SpMode::Off, ..AfrConfig::default() });
}

#[test]
fn sp_visual_only() {
    parity("SP visual only", AfrConfig { sp: SpMode::VisualOnly, ..AfrConfig::default() });
}

#[test]
fn sp_learned_only() {
    parity("SP learned only", AfrConfig { sp: SpMode::LearnedOnly, ..AfrConfig::default() });
}

#[test]
fn mpfa_off() {
    parity("MPFA m=1", AfrConfig { mpfa_window: 1, ..AfrConfig::default() });
}

#[test]
fn mpfa_5() {
    parity("MPFA m=5", AfrConfig { mpfa_window: 5, ..AfrConfig::default() });
}

#[test]
fn cmfr_off() {
    parity("CMFR off", AfrConfig { cmfr: false, ..AfrConfig::default() });
}

#[test]
fn sp_in_stages_1_to_2() {
    parity("SP stages 1-2", AfrConfig { sp_stages: 2, ..AfrConfig::default() });
}

#[test]
fn sp_in_stages_1_to_4() {
    parity("SP stages 1-4", AfrConfig { sp_stages: 4, ..AfrConfig::default() });
}

/// The file keeps the normal and abnormal prototypes (DESIGN.md section 3) bit for bit as
/// Candle scores with them, one row per stage; the scoring direction the graph derives
/// from them is folded by tract at load, so no node of it runs per frame.
#[test]
fn the_file_keeps_the_prototypes_and_tract_folds_their_direction() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = tiny_run(dir.path(), 1, AfrConfig::default());
    let onnx = dir.path().join("model.onnx");
    export(&run, None, &onnx, None, &Device::Cpu).unwrap();

    let cfg = RunConfig::read(&run).unwrap();
    let (model, params) = afr_toolchain::train::model::build(&cfg, &cfg.categories, &Device::Cpu).unwrap();
    params.assign(&load_tensors(&run, &cfg.checkpoint, &cfg, &Device::Cpu).unwrap(), &run).unwrap();
    let (f_n, f_a, _) = model.text_features().unwrap();
    let (f_n, f_a) = (f_n.to_vec1::<f32>().unwrap(), f_a.to_vec1::<f32>().unwrap());
    let p = ModelInfo::load(&onnx).unwrap().prototypes.expect("the export keeps its prototypes");
    assert_eq!((p.stages, p.dim), (4, cfg.preset.clip.embed_dim));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for s in 0..4 {
        assert_eq!(bits(p.normal_row(s)), bits(&f_n), "stage {s} normal");
        assert_eq!(bits(p.abnormal_row(s)), bits(&f_a), "stage {s} abnormal");
    }
    assert!(p.cosines().iter().all(|c| *c < 0.9999), "the two prototypes differ: {:?}", p.cosines());

    // After tract's optimisation every node left of the text side is a constant or reads the
    // category (the stateless table's Gather and what follows it).
    let plan = tract_onnx::onnx().model_for_path(&onnx).unwrap().into_optimized().unwrap();
    let derived: Vec<String> = plan
        .nodes()
        .iter()
        .filter(|n| n.name.starts_with("text/") && !n.name.starts_with("text/Gather") && n.op().name() != "Const")
        .map(|n| format!("{} ({})", n.name, n.op().name()))
        .collect();
    assert!(derived.is_empty(), "prototype nodes left to run per frame: {derived:?}");
    let file = Model::read(&onnx).unwrap();
    let nodes = &file.proto.graph.as_ref().unwrap().node;
    let in_file = nodes.iter().filter(|n| n.name.starts_with("text/") && n.op_type != "Gather").count();
    assert!(in_file >= 8, "the derivation is in the file ({in_file} nodes), for tract to fold");
}

#[test]
fn bad_categories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = tiny_run(dir.path(), 1, AfrConfig::default());
    let out = dir.path().join("m.onnx");
    let err = export(&run, Some(&["a,b".to_string()]), &out, None, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ExportError::Categories(_)), "{err}");
    assert!(!out.exists());
    // Unseen categories get their own stateless row; `object` stays last.
    let s = export(&run, Some(&["bottle".to_string()]), &out, None, &Device::Cpu).unwrap();
    assert_eq!(s.categories, ["bottle", "object"]);
    // Within the runtime's limits: name length and row count.
    let long = "x".repeat(65);
    let err = export(&run, Some(&[long]), &out, None, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("longer than the runtime's 64 bytes"), "{err}");
    let many: Vec<String> = (0..128).map(|i| format!("c{i}")).collect();
    let err = export(&run, Some(&many), &out, None, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("129 rows"), "{err}");
    let err = export(&dir.path().join("nothing"), None, &out, None, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("nothing"), "{err}");
}
