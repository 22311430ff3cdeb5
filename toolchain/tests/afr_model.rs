//! The assembled AFR-CLIP model on the tiny preset with seeded random
//! backbones: shapes, probabilities, every ablation switch changing the
//! output, and gradients reaching the SP prompts through the frozen ViT.

use afr_toolchain::afr::prompts::{PromptSet, TextTables};
use afr_toolchain::afr::{AfrClip, AfrConfig, ParamStore, SpMode};
use afr_toolchain::clip::{tokenizer::Tokenizer, Clip};
use afr_toolchain::preset::Preset;
use afr_toolchain::resnet::ResNet;
use afr_toolchain::weights::Weights;
use candle_core::{Device, Tensor};

fn build(cfg: &AfrConfig) -> (AfrClip, ParamStore) {
    let dev = Device::Cpu;
    let preset = Preset::resolve("tiny").unwrap();
    let clip = Clip::load(&Weights::random(0, &dev), &preset.clip).unwrap();
    let mut rw = Weights::random(1, &dev);
    let resnet = ResNet::load(&mut rw, &preset.resnet).unwrap();
    let cats = vec!["bottle".to_string(), "metal_nut".to_string()];
    let mut prompts = PromptSet::builtin();
    prompts.templates.truncate(2);
    let tables = TextTables::encode(&clip.text, &Tokenizer::openai(), &prompts, &cats, &dev).unwrap();
    let mut params = ParamStore::new(7, &dev);
    let model = AfrClip::new(&preset, cfg, clip.vision, resnet, tables, &mut params, &dev).unwrap();
    (model, params)
}

fn input() -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let px = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev).unwrap();
    (px, Tensor::new(&[0u32, 2], &dev).unwrap())
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn forward_gives_probabilities_of_the_right_shape() {
    let (model, params) = build(&AfrConfig::default());
    assert_eq!(model.tables().categories, ["bottle", "metal_nut", "object"]);
    let (px, cats) = input();
    let out = model.forward(&px, &cats).unwrap();
    assert_eq!(out.image_score.dims(), [2]);
    assert_eq!(out.anomaly_map.dims(), [2, 8, 8]);
    assert_eq!(out.stage_maps.len(), 4);
    assert!(values(&out.anomaly_map).iter().chain(&values(&out.image_score)).all(|p| (0.0..=1.0).contains(p)));
    // K=5 SP linears (64 -> 64) + P_l, 5 adapters (32x32), CMFR (2E->E, E->E, E->E).
    let sp = 5 * (64 * 64 + 64) + 5 * 64;
    let adapters = 5 * (32 * 32 + 32);
    let cmfr = (64 * 32 + 32) + 2 * (32 * 32 + 32);
    assert_eq!(params.num_params(), sp + adapters + cmfr);
}

#[test]
fn every_ablation_switch_changes_the_output() {
    let (px, cats) = input();
    let base = build(&AfrConfig::default()).0.forward(&px, &cats).unwrap();
    let variants = [
        ("no SP", AfrConfig { sp: SpMode::Off, ..Default::default() }),
        ("P_v only", AfrConfig { sp: SpMode::VisualOnly, ..Default::default() }),
        ("P_l only", AfrConfig { sp: SpMode::LearnedOnly, ..Default::default() }),
        ("no MPFA", AfrConfig { mpfa_window: 1, ..Default::default() }),
        ("MPFA 5x5", AfrConfig { mpfa_window: 5, ..Default::default() }),
        ("no CMFR", AfrConfig { cmfr: false, ..Default::default() }),
    ];
    for (name, cfg) in variants {
        let out = build(&cfg).0.forward(&px, &cats).unwrap();
        let d = values(&(out.anomaly_map - &base.anomaly_map).unwrap()).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(d > 1e-6, "{name}: the map did not change (max diff {d})");
    }
}

#[test]
fn sp_prompts_receive_gradients_through_the_frozen_vit() {
    let (model, params) = build(&AfrConfig::default());
    let (px, cats) = input();
    let out = model.forward(&px, &cats).unwrap();
    let loss = (out.anomaly_map.sum_all().unwrap() + out.image_score.sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in params.vars() {
        let g = grads.get(var).unwrap_or_else(|| panic!("{name}: no gradient"));
        let gmax = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gmax > 0.0, "{name}: zero gradient");
    }
}
