//! Bad weight files are errors that name the file, the tensor and the shapes,
//! never panics (DESIGN.md section 5).

mod common;

use std::collections::HashMap;

use afr_toolchain::clip::Clip;
use afr_toolchain::preset::Preset;
use afr_toolchain::resnet::ResNet;
use afr_toolchain::weights::{WeightError, Weights};
use candle_core::{Device, Tensor};
use common::{fixtures, reference, scratch_dir};

fn fixture_preset() -> Preset {
    Preset::resolve(fixtures().join("preset_clip_tiny.json").to_str().unwrap()).unwrap()
}

fn load_clip(path: &std::path::Path, preset: &Preset) -> Result<Clip, WeightError> {
    let w = Weights::open(path.to_str().unwrap(), &Device::Cpu)?;
    Clip::load(&w, &preset.clip)
}

fn save(dir: &str, tensors: HashMap<String, Tensor>) -> std::path::PathBuf {
    let path = scratch_dir(dir).join("weights.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

#[test]
fn a_missing_tensor_is_named() {
    let mut t = reference("clip_tiny_openai.safetensors");
    t.remove("visual.transformer.resblocks.5.mlp.c_fc.bias");
    let path = save("missing-tensor", t);
    let err = load_clip(&path, &fixture_preset()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WeightError::Missing { .. }), "{msg}");
    assert!(msg.contains("visual.transformer.resblocks.5.mlp.c_fc.bias"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn a_wrong_shape_names_both_shapes() {
    let mut t = reference("clip_tiny_openai.safetensors");
    t.insert("visual.ln_post.weight".into(), Tensor::ones(31, candle_core::DType::F32, &Device::Cpu).unwrap());
    let path = save("wrong-shape", t);
    let msg = load_clip(&path, &fixture_preset()).unwrap_err().to_string();
    assert!(msg.contains("visual.ln_post.weight") && msg.contains("[31]") && msg.contains("[32]"), "{msg}");
}

#[test]
fn a_truncated_file_is_an_error_naming_it() {
    let bytes = std::fs::read(fixtures().join("clip_tiny_openai.safetensors")).unwrap();
    let path = scratch_dir("truncated").join("cut.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Weights::open(path.to_str().unwrap(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, WeightError::Format { .. }), "{err}");
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    // A few bytes of garbage, and an empty file, too.
    for (name, data) in
        [("garbage.safetensors", b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk".to_vec()), ("empty.safetensors", vec![])]
    {
        let p = scratch_dir("truncated").join(name);
        std::fs::write(&p, data).unwrap();
        assert!(matches!(Weights::open(p.to_str().unwrap(), &Device::Cpu), Err(WeightError::Format { .. })));
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = Weights::open("no/such/model.safetensors", &Device::Cpu).unwrap_err();
    assert!(matches!(err, WeightError::Io { .. }) && err.to_string().contains("no/such/model.safetensors"));
}

#[test]
fn weights_of_another_preset_are_refused() {
    let tiny = Preset::resolve("tiny").unwrap();
    // Hugging Face: config.json beside the weights disagrees with the preset.
    let msg = load_clip(&fixtures().join("clip_tiny"), &tiny).unwrap_err().to_string();
    assert!(msg.contains("config.json") && msg.contains("hidden_size is 32") && msg.contains("64"), "{msg}");
    // OpenAI naming has no config: the first tensor's shape gives it away.
    let msg = load_clip(&fixtures().join("clip_tiny_openai.safetensors"), &tiny).unwrap_err().to_string();
    assert!(msg.contains("visual.conv1.weight") && msg.contains("do the weights match the preset"), "{msg}");
}

#[test]
fn a_file_that_is_not_clip_or_resnet_is_refused() {
    let resnet = fixtures().join("resnet_tiny_basic.safetensors");
    let msg = load_clip(&resnet, &fixture_preset()).unwrap_err().to_string();
    assert!(msg.contains("neither a Hugging Face CLIPModel"), "{msg}");
    let mut w = Weights::open(fixtures().join("clip_tiny_openai.safetensors").to_str().unwrap(), &Device::Cpu).unwrap();
    let msg = ResNet::load(&mut w, &fixture_preset().resnet).unwrap_err().to_string();
    assert!(msg.contains("conv1.weight"), "{msg}");
}
