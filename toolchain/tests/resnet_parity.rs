//! The ResNet against torchvision and timm (fixtures made by
//! `scripts/make_fixtures.py`): the global-average-pooled feature.

mod common;

use afr_toolchain::resnet::{BlockKind, ResNet, ResNetConfig};
use afr_toolchain::weights::Weights;
use candle_core::{Device, Tensor};
use common::{fixtures, max_abs_diff, reference, scratch_dir};

fn tiny(block: BlockKind, layers: [usize; 4], stem_width: usize, planes: [usize; 4]) -> ResNetConfig {
    ResNetConfig { block, layers, stem_width, planes }
}

fn check(file: &str, cfg: ResNetConfig, key: &str) {
    let mut w = Weights::open(fixtures().join(file).to_str().unwrap(), &Device::Cpu).unwrap();
    let net = ResNet::load(&mut w, &cfg).unwrap();
    let r = reference("resnet_reference.safetensors");
    for (input, out) in [("input", "pooled"), ("input_odd", "pooled_odd")] {
        let d = max_abs_diff(&net.pooled(&r[input]).unwrap(), &r[&format!("{key}.{out}")]);
        assert!(d <= 1e-4, "{file} {input}: max abs diff {d}");
        eprintln!("{file} {input}: pooled max abs diff {d:.2e}");
    }
}

#[test]
fn basic_block_resnet_matches_torchvision() {
    check("resnet_tiny_basic.safetensors", tiny(BlockKind::Basic, [1; 4], 8, [8, 16, 32, 64]), "basic");
}

#[test]
fn bottleneck_resnet_matches_torchvision() {
    check(
        "resnet_tiny_bottleneck.safetensors",
        tiny(BlockKind::Bottleneck, [1, 2, 1, 1], 8, [4, 8, 16, 32]),
        "bottleneck",
    );
}

#[test]
fn timm_resnet_matches_timm() {
    // timm's plain stem is 64 wide whatever the stage widths.
    check("resnet_tiny_timm.safetensors", tiny(BlockKind::Basic, [1; 4], 64, [8, 16, 32, 64]), "timm");
}

#[test]
fn a_prefixed_state_dict_loads_the_same() {
    let src = reference("resnet_tiny_basic.safetensors");
    let prefixed: std::collections::HashMap<String, Tensor> =
        src.into_iter().map(|(k, v)| (format!("model.{k}"), v)).collect();
    let path = scratch_dir("resnet-prefix").join("prefixed.safetensors");
    candle_core::safetensors::save(&prefixed, &path).unwrap();
    let cfg = tiny(BlockKind::Basic, [1; 4], 8, [8, 16, 32, 64]);
    let mut w = Weights::open(path.to_str().unwrap(), &Device::Cpu).unwrap();
    let net = ResNet::load(&mut w, &cfg).unwrap();
    let r = reference("resnet_reference.safetensors");
    assert!(max_abs_diff(&net.pooled(&r["input"]).unwrap(), &r["basic.pooled"]) <= 1e-4);
}

#[test]
fn full_size_presets_build_from_random_weights() {
    for cfg in [ResNetConfig::resnet18(), ResNetConfig::resnet50()] {
        let mut w = Weights::random(0, &Device::Cpu);
        let net = ResNet::load(&mut w, &cfg).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
        assert_eq!(net.pooled(&x).unwrap().dims(), [1, cfg.out_dim()]);
        // torchvision counts 11,689,512 parameters in ResNet-18, fc included.
        let (_, params) = w.loaded();
        if cfg.block == BlockKind::Basic {
            // Loaded here: no fc, plus the 2 x 4,800 BatchNorm running statistics.
            assert_eq!(params + 512 * 1000 + 1000, 11_689_512 + 2 * 4_800);
        }
    }
}
