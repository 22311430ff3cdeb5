//! The training losses against the peers' PyTorch formulas (fixtures made by
//! `scripts/make_train_fixtures.py`): loss values and gradients with respect
//! to the inputs, in float32 and float64.
//!
//! Difference measure: |ours - torch| / max(1, |torch|), i.e. absolute below 1
//! and relative above (BCE gradients reach 1e11 at p = 0 or 1, where only a
//! relative comparison means anything).

mod common;

use afr_toolchain::train::loss::{bce_loss, dice_loss, focal_loss, stage_loss, FOCAL_GAMMA};
use candle_core::{Tensor, Var};
use common::{fixtures, reference, values_f64};
use std::collections::HashMap;

/// f64 runs the same formula as PyTorch in double precision: any difference
/// beyond rounding would be a formula error.
const TOL_F64: f64 = 1e-12;
/// f32: the brief's 1e-6; float32 rounding differs only in summation order.
const TOL_F32: f64 = 1e-6;

fn manifest_cases(loss: &str) -> Vec<String> {
    let path = fixtures().join("train/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["losses"][loss]
        .as_array()
        .unwrap_or_else(|| panic!("manifest has no cases for {loss}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn max_scaled_diff(ours: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(ours.dims(), want.dims(), "shapes differ");
    let (a, b) = (values_f64(ours), values_f64(want));
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            assert!(x.is_finite(), "non-finite value {x} (torch {y})");
            (x - y).abs() / y.abs().max(1.0)
        })
        .fold(0.0, f64::max)
}

type LossFn = dyn Fn(&Tensor, &Tensor) -> afr_toolchain::train::loss::Result<Tensor>;

/// Runs every fixture case of one loss; returns the max (value, gradient)
/// difference per dtype.
fn check(loss: &str, input: &str, target: &str, f: &LossFn) -> HashMap<&'static str, (f64, f64)> {
    let r = reference("train/loss_reference.safetensors");
    let cases = manifest_cases(loss);
    assert!(cases.len() >= 3, "{loss}: only {} cases", cases.len());
    let mut worst = HashMap::new();
    for case in &cases {
        for (dn, tol) in [("f32", TOL_F32), ("f64", TOL_F64)] {
            let k = |f: &str| format!("{loss}.{case}.{dn}.{f}");
            let x = Var::from_tensor(&r[&k(input)]).unwrap();
            let t = &r[&k(target)];
            let value = f(x.as_tensor(), t).unwrap();
            assert_eq!(value.rank(), 0, "{loss} returns a scalar");
            let grads = value.backward().unwrap();
            let grad = grads.get(x.as_tensor()).expect("a gradient for the input");
            let dv = max_scaled_diff(&value, &r[&k("loss")]);
            let dg = max_scaled_diff(grad, &r[&k("grad")]);
            eprintln!("{loss} {case} {dn}: value diff {dv:.2e}, grad diff {dg:.2e}");
            assert!(dv <= tol, "{loss} {case} {dn}: value differs by {dv:e} (tol {tol:e})");
            assert!(dg <= tol, "{loss} {case} {dn}: gradient differs by {dg:e} (tol {tol:e})");
            let w = worst.entry(dn).or_insert((0f64, 0f64));
            *w = (w.0.max(dv), w.1.max(dg));
        }
    }
    for (dn, (dv, dg)) in &worst {
        eprintln!("{loss} {dn}: max value diff {dv:.2e}, max grad diff {dg:.2e}");
    }
    worst
}

#[test]
fn focal_loss_matches_anomalyclip() {
    check("focal", "probs", "mask", &|p, m| focal_loss(p, m, FOCAL_GAMMA));
}

#[test]
fn dice_loss_matches_anomalyclip() {
    check("dice", "pred", "target", &|p, t| dice_loss(p, t));
}

#[test]
fn bce_loss_matches_torch_binary_cross_entropy() {
    check("bce", "score", "label", &|s, y| bce_loss(s, y));
}

#[test]
fn stage_loss_matches_anomalyclip_training_sum() {
    check("stage", "p", "mask", &|p, m| stage_loss(p, m));
}

#[test]
fn fixtures_cover_the_edge_cases() {
    // The cases the brief asks for must be there, and must be what they say.
    let r = reference("train/loss_reference.safetensors");
    let focal = manifest_cases("focal");
    for needed in ["empty_mask", "extremes", "confident"] {
        assert!(focal.iter().any(|c| c == needed), "no {needed} case");
    }
    let empty = &r["stage.empty_mask.f32.mask"];
    assert_eq!(empty.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let s = r["bce.extremes.f32.score"].to_vec1::<f32>().unwrap();
    assert!(s.contains(&0.0) && s.contains(&1.0), "BCE extremes lack exact 0 / 1");
}

#[test]
fn bce_value_is_unchanged_by_the_gradient_carrier() {
    // At p = 0 with y = 1 the value is PyTorch's clamped 100, not inf / NaN.
    let dev = candle_core::Device::Cpu;
    let s = Tensor::new(&[0f32, 1.0], &dev).unwrap();
    let y = Tensor::new(&[1f32, 1.0], &dev).unwrap();
    let v = bce_loss(&s, &y).unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(v, 50.0);
}
