//! The CLIP encoders against Hugging Face `transformers` (fixtures made by
//! `scripts/make_fixtures.py`): every hidden state, the image and text
//! embeddings, at the native and at an interpolated patch grid, from both
//! weight namings. Run with `--nocapture` to see the measured differences.

mod common;

use afr_toolchain::clip::{Clip, Naming};
use afr_toolchain::preset::Preset;
use afr_toolchain::weights::Weights;
use candle_core::{DType, Device, Tensor};
use common::{fixtures, max_abs_diff, reference};

const TOL: f32 = 1e-4;

fn load(spec: &str) -> Clip {
    let preset = Preset::resolve(fixtures().join("preset_clip_tiny.json").to_str().unwrap()).unwrap();
    let w = Weights::open(fixtures().join(spec).to_str().unwrap(), &Device::Cpu).unwrap();
    Clip::load(&w, &preset.clip).unwrap()
}

fn check_vision(clip: &Clip, grid: &str) {
    let r = reference("clip_tiny_reference.safetensors");
    let pixels = &r[&format!("vision.{grid}.pixels")];
    let states = clip.vision.hidden_states(pixels, None).unwrap();
    assert_eq!(states.len(), 9);
    let mut worst = 0f32;
    for (i, s) in states.iter().enumerate() {
        let d = max_abs_diff(s, &r[&format!("vision.{grid}.hidden.{i}")]);
        assert!(d <= TOL, "{grid} hidden state {i}: max abs diff {d}");
        worst = worst.max(d);
    }
    let e = max_abs_diff(&clip.vision.image_embeds(pixels).unwrap(), &r[&format!("vision.{grid}.image_embeds")]);
    assert!(e <= TOL, "{grid} image embeds: max abs diff {e}");
    eprintln!("{:?} vision {grid}: hidden states max abs diff {worst:.2e}, image embeds {e:.2e}", clip.naming);
}

fn check_text(clip: &Clip) {
    let r = reference("clip_tiny_reference.safetensors");
    let ids = r["text.ids"].to_dtype(DType::U32).unwrap();
    let h = max_abs_diff(&clip.text.last_hidden(&ids).unwrap(), &r["text.last_hidden"]);
    let e = max_abs_diff(&clip.text.text_embeds(&ids).unwrap(), &r["text.embeds"]);
    assert!(h <= TOL && e <= TOL, "text: last hidden {h}, embeds {e}");
    eprintln!("{:?} text: last hidden max abs diff {h:.2e}, text embeds {e:.2e}", clip.naming);
}

#[test]
fn hugging_face_weights_match_transformers_at_the_native_grid() {
    let clip = load("clip_tiny");
    assert_eq!(clip.naming, Naming::HuggingFace);
    check_vision(&clip, "native");
}

#[test]
fn hugging_face_weights_match_transformers_at_an_interpolated_grid() {
    check_vision(&load("clip_tiny"), "interp");
}

#[test]
fn hugging_face_text_encoder_matches_transformers() {
    check_text(&load("clip_tiny"));
}

#[test]
fn openai_weights_match_transformers() {
    let clip = load("clip_tiny_openai.safetensors");
    assert_eq!(clip.naming, Naming::OpenAi);
    check_vision(&clip, "native");
    check_vision(&clip, "interp");
    check_text(&clip);
}

#[test]
fn both_namings_give_identical_outputs() {
    let (hf, oa) = (load("clip_tiny"), load("clip_tiny_openai.safetensors"));
    let r = reference("clip_tiny_reference.safetensors");
    for grid in ["native", "interp"] {
        let px = &r[&format!("vision.{grid}.pixels")];
        let a = hf.vision.hidden_states(px, None).unwrap();
        let b = oa.vision.hidden_states(px, None).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(max_abs_diff(x, y), 0.0);
        }
        let (x, y) = (hf.vision.image_embeds(px).unwrap(), oa.vision.image_embeds(px).unwrap());
        assert_eq!(max_abs_diff(&x, &y), 0.0);
    }
    let ids = r["text.ids"].to_dtype(DType::U32).unwrap();
    let (x, y) = (hf.text.text_embeds(&ids).unwrap(), oa.text.text_embeds(&ids).unwrap());
    assert_eq!(max_abs_diff(&x, &y), 0.0);
}

#[test]
fn prompt_tokens_are_appended_replaced_and_dropped() {
    use afr_toolchain::clip::Prompts;
    let clip = load("clip_tiny");
    let r = reference("clip_tiny_reference.safetensors");
    let px = &r["vision.native.pixels"];
    let plain = clip.vision.hidden_states(px, None).unwrap();
    let tokens = Tensor::randn(0f32, 1.0, (2, 5, 32), &Device::Cpu).unwrap();
    let prompts = Prompts { tokens: &tokens, layers: 2..=2 };
    let prompted = clip.vision.hidden_states(px, Some(&prompts)).unwrap();
    // Layer 1 runs on the plain tokens; from layer 2 on the prompts change the
    // real tokens through attention; returned states never hold the prompts.
    assert_eq!(max_abs_diff(&plain[1], &prompted[1]), 0.0);
    assert!(prompted.iter().all(|s| s.dims() == [2, 17, 32]));
    assert!(max_abs_diff(&plain[2], &prompted[2]) > 1e-3);
    // Replacing (layers 2..=3) differs from appending once (layer 2 only).
    let longer = Prompts { tokens: &tokens, layers: 2..=3 };
    let twice = clip.vision.hidden_states(px, Some(&longer)).unwrap();
    assert_eq!(max_abs_diff(&twice[2], &prompted[2]), 0.0);
    assert!(max_abs_diff(&twice[3], &prompted[3]) > 1e-4);
}

#[test]
fn seeded_random_weights_build_every_preset_shape_deterministically() {
    let preset = Preset::resolve("tiny").unwrap();
    let load = || Clip::load(&Weights::open("random:3", &Device::Cpu).unwrap(), &preset.clip).unwrap();
    let (a, b) = (load(), load());
    let px = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
    let (x, y) = (a.vision.image_embeds(&px).unwrap(), b.vision.image_embeds(&px).unwrap());
    assert_eq!(x.dims(), [1, 32]);
    assert_eq!(max_abs_diff(&x, &y), 0.0);
    let ids = Tensor::new(&[[49406u32, 320, 1125, 49407, 0]], &Device::Cpu).unwrap();
    let t = a.text.text_embeds(&ids).unwrap();
    assert!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
}
