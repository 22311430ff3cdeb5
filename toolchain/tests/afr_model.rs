//! The assembled AFR-CLIP model on the tiny preset with seeded random
//! backbones: shapes, probabilities, every ablation switch changing the
//! output, gradients reaching the SP prompts through the frozen ViT and
//! every tensor from the image term alone, and the head overfitting a batch.

use afr_toolchain::afr::prompts::{PromptSet, TextTables};
use afr_toolchain::afr::{AfrClip, AfrConfig, ParamStore, SpMode};
use afr_toolchain::clip::{tokenizer::Tokenizer, Clip};
use afr_toolchain::nn::bilinear_upsample;
use afr_toolchain::preset::Preset;
use afr_toolchain::resnet::ResNet;
use afr_toolchain::train::adam::{Adam, AdamConfig};
use afr_toolchain::train::loss::{bce_loss, stage_loss};
use afr_toolchain::weights::Weights;
use candle_core::backprop::GradStore;
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    values(&(a - b).unwrap()).iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Every switch of the paper's ablations (Tables 3-6), and Table 3's rows as
/// combinations of them, against the full model with the same parameters: the
/// map always changes; the image score (the class token) changes unless only
/// MPFA changed, which pools the patches alone.
#[test]
fn every_ablation_switch_changes_the_output() {
    let (px, cats) = input();
    let base = build(&AfrConfig::default()).0.forward(&px, &cats).unwrap();
    let no_cmfr = AfrConfig { cmfr: false, ..Default::default() };
    let variants = [
        ("Table 3 row 1: no CMFR, SP or MPFA", AfrConfig { sp: SpMode::Off, mpfa_window: 1, ..no_cmfr.clone() }, true),
        ("Table 3 row 2: SP and MPFA without CMFR", no_cmfr.clone(), true),
        ("Table 3 row 3: CMFR alone", AfrConfig { sp: SpMode::Off, mpfa_window: 1, ..Default::default() }, true),
        ("Table 3 row 4: CMFR and SP (no MPFA)", AfrConfig { mpfa_window: 1, ..Default::default() }, false),
        ("Table 3 row 5: CMFR and MPFA (no SP)", AfrConfig { sp: SpMode::Off, ..Default::default() }, true),
        ("Table 4: SP in stages 1-2", AfrConfig { sp_stages: 2, ..Default::default() }, true),
        ("Table 4: SP in stages 1-3", AfrConfig { sp_stages: 3, ..Default::default() }, true),
        ("Table 4: SP in stages 1-4", AfrConfig { sp_stages: 4, ..Default::default() }, true),
        ("Table 5: P_v only", AfrConfig { sp: SpMode::VisualOnly, ..Default::default() }, true),
        ("Table 5: P_l only", AfrConfig { sp: SpMode::LearnedOnly, ..Default::default() }, true),
        ("Table 6: MPFA 1x1", AfrConfig { mpfa_window: 1, ..Default::default() }, false),
        ("Table 6: MPFA 5x5", AfrConfig { mpfa_window: 5, ..Default::default() }, false),
    ];
    for (name, cfg, moves_score) in variants {
        let out = build(&cfg).0.forward(&px, &cats).unwrap();
        let d = max_abs_diff(&out.anomaly_map, &base.anomaly_map);
        let ds = max_abs_diff(&out.image_score, &base.image_score);
        println!("{name}: max change of the map {d:.2e}, of the image score {ds:.2e}");
        assert!(d > 1e-6, "{name}: the map did not change ({d})");
        if moves_score {
            assert!(ds > 1e-6, "{name}: the image score did not change ({ds})");
        } else {
            assert_eq!(ds, 0.0, "{name}: MPFA changed the class token's score");
        }
    }
}

/// Table 4's switch acts where it should: carrying SP one stage further
/// (N -> N + 1) leaves stages 1..=N exactly as they were (their taps come
/// before the prompts would have been dropped) and changes stage N + 1.
#[test]
fn sp_stages_change_only_the_stages_they_add() {
    let (px, cats) = input();
    let outs: Vec<_> = (1..=4)
        .map(|n| build(&AfrConfig { sp_stages: n, ..Default::default() }).0.forward(&px, &cats).unwrap())
        .collect();
    for n in 1..4 {
        let (a, b) = (&outs[n - 1], &outs[n]);
        for s in 0..4 {
            let d = max_abs_diff(&a.stage_maps[s], &b.stage_maps[s]);
            println!("SP stages 1-{n} vs 1-{}: stage {} map differs by {d:.2e}", n + 1, s + 1);
            if s < n {
                assert!(d <= 1e-6, "stage {} changed ({d}) though SP reached it in both", s + 1);
            } else if s == n {
                assert!(d > 1e-4, "stage {} did not change ({d}) when SP was carried into it", s + 1);
            }
        }
    }
}

/// Every trainable tensor has a non-zero gradient in `grads`; `source` ends the messages.
fn assert_every_tensor_has_a_gradient(params: &ParamStore, grads: &GradStore, source: &str) {
    for (name, var) in params.vars() {
        let g = grads.get(var).unwrap_or_else(|| panic!("{name}: no gradient{source}"));
        let gmax = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gmax > 0.0, "{name}: zero gradient{source}");
    }
}

#[test]
fn sp_prompts_receive_gradients_through_the_frozen_vit() {
    let (model, params) = build(&AfrConfig::default());
    let (px, cats) = input();
    let out = model.forward(&px, &cats).unwrap();
    let loss = (out.anomaly_map.sum_all().unwrap() + out.image_score.sum_all().unwrap()).unwrap();
    assert_every_tensor_has_a_gradient(&params, &loss.backward().unwrap(), "");
}

/// The image score is the class token's `P_a`: its BCE alone must reach
/// every trainable tensor on that path (the four adapters, the text linear,
/// CMFR, SP), or the image term could never be learned.
#[test]
fn the_image_term_alone_reaches_every_trainable_tensor() {
    let (model, params) = build(&AfrConfig::default());
    let (px, cats) = input();
    let out = model.forward(&px, &cats).unwrap();
    let labels = Tensor::new(&[0f32, 1.], &Device::Cpu).unwrap();
    let grads = bce_loss(&out.image_score, &labels).unwrap().backward().unwrap();
    assert_every_tensor_has_a_gradient(&params, &grads, " from the image term");
}

/// Overfitting one batch: with the backbones frozen and random, the head
/// alone must still be able to order two images by their labels and one
/// image's patches by a mask, i.e. no sign, axis or detached path stops
/// the image score or the map from following the losses.
#[test]
fn the_head_overfits_one_batch() {
    let dev = Device::Cpu;
    let (model, params) = build(&AfrConfig::default());
    let (px, cats) = input();
    let labels = Tensor::new(&[0f32, 1.], &dev).unwrap();
    // The second image is anomalous in its top-left quarter.
    let mut m = vec![0f32; 2 * 64 * 64];
    for y in 0..32 {
        for x in 0..32 {
            m[64 * 64 + y * 64 + x] = 1.0;
        }
    }
    let masks = Tensor::from_vec(m, (2, 64, 64), &dev).unwrap();
    let loss_of = |out: &afr_toolchain::afr::AfrOutput| {
        let mut pixel = stage_loss(&bilinear_upsample(&out.stage_maps[0], 64, 64).unwrap(), &masks).unwrap();
        for map in &out.stage_maps[1..] {
            pixel = (pixel + stage_loss(&bilinear_upsample(map, 64, 64).unwrap(), &masks).unwrap()).unwrap();
        }
        (bce_loss(&out.image_score, &labels).unwrap() + pixel).unwrap()
    };
    let first = loss_of(&model.forward(&px, &cats).unwrap()).to_scalar::<f32>().unwrap();
    let mut adam = Adam::new(params.named_vars(), AdamConfig { lr: 1e-2, ..AdamConfig::default() }).unwrap();
    for _ in 0..STEPS {
        let loss = loss_of(&model.forward(&px, &cats).unwrap());
        adam.step(&loss.backward().unwrap()).unwrap();
    }
    let out = model.forward(&px, &cats).unwrap();
    let last = loss_of(&out).to_scalar::<f32>().unwrap();
    let score = values(&out.image_score);
    let map = values(&out.anomaly_map.get(1).unwrap());
    // Mean of the 4x4 top-left patch cells against the rest of the 8x8 grid.
    let (mut inside, mut outside) = (0f32, 0f32);
    for (i, p) in map.iter().enumerate() {
        if i / 8 < 4 && i % 8 < 4 {
            inside += p / 16.0
        } else {
            outside += p / 48.0
        }
    }
    eprintln!("loss {first} -> {last}; scores {score:?}; map inside {inside} outside {outside}");
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(score[1] > score[0] + 0.5, "image scores {score:?}");
    assert!(inside > outside + 0.3, "map inside {inside}, outside {outside}");
}

const STEPS: usize = 40;
