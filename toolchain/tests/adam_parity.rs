//! Adam against `torch.optim.Adam` (fixtures made by
//! `scripts/make_train_fixtures.py`): 5 steps with lr = 0.001 / (step + 1),
//! betas (0.9, 0.999) and (0.5, 0.999), f32 and f64, with some parameters
//! getting no gradient on some steps; and a save / restore through a
//! safetensors file mid-way must continue bit for bit like the run that was
//! never interrupted.

mod common;

use std::collections::HashMap;

use afr_toolchain::train::adam::{Adam, AdamConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use common::{fixtures, reference, scratch_dir, values_f64};

const TOL: f64 = 1e-6;

struct Run {
    name: String,
    betas: (f64, f64),
}

struct Manifest {
    steps: usize,
    /// (parameter, step) pairs with no gradient, per run.
    no_grad: usize,
    params: Vec<String>,
    runs: Vec<Run>,
}

fn manifest() -> Manifest {
    let path = fixtures().join("train/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let a = &v["adam"];
    let mut params: Vec<String> = a["params"].as_object().unwrap().keys().cloned().collect();
    params.sort();
    let runs = a["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Run {
            name: r["run"].as_str().unwrap().to_string(),
            betas: (r["betas"][0].as_f64().unwrap(), r["betas"][1].as_f64().unwrap()),
        })
        .collect();
    let no_grad = a["no_grad_steps"].as_object().unwrap().values().map(|s| s.as_array().unwrap().len()).sum();
    Manifest { steps: a["steps"].as_u64().unwrap() as usize, no_grad, params, runs }
}

fn lr_at(step: usize) -> f64 {
    0.001 / (step as f64 + 1.0)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    assert_eq!(a.dtype(), b.dtype());
    let (a, b) = (values_f64(a), values_f64(b));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The exact bits of a tensor, for bit-identity checks.
fn bits(t: &Tensor) -> Vec<u64> {
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => t.to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits() as u64).collect(),
        DType::F64 => t.to_vec1::<f64>().unwrap().iter().map(|x| x.to_bits()).collect(),
        d => panic!("unexpected dtype {d:?}"),
    }
}

fn vars_from(r: &HashMap<String, Tensor>, prefix: &str, names: &[String]) -> Vec<(String, Var)> {
    names.iter().map(|n| (n.clone(), Var::from_tensor(&r[&format!("{prefix}.{n}")]).unwrap())).collect()
}

/// Gradients of step `step` as the fixture gives them; a missing key means
/// the parameter had `grad = None` in torch.
fn grads_at(r: &HashMap<String, Tensor>, run: &str, step: usize, vars: &[(String, Var)]) -> GradStore {
    let mut g = GradStore::default();
    for (n, v) in vars {
        if let Some(t) = r.get(&format!("{run}.grad.{step}.{n}")) {
            g.insert(v.as_tensor(), t.clone());
        }
    }
    g
}

fn optimizer(vars: &[(String, Var)], betas: (f64, f64)) -> Adam {
    Adam::new(vars.to_vec(), AdamConfig { lr: lr_at(0), betas, eps: 1e-8 }).unwrap()
}

#[test]
fn adam_matches_torch_optim_adam() {
    let m = manifest();
    let r = reference("train/adam_reference.safetensors");
    assert_eq!(m.runs.len(), 4);
    let mut skipped = 0;
    for run in &m.runs {
        let vars = vars_from(&r, &format!("{}.init", run.name), &m.params);
        let mut opt = optimizer(&vars, run.betas);
        let (mut worst_param, mut worst_state) = (0f64, 0f64);
        for step in 0..m.steps {
            opt.set_lr(lr_at(step)).unwrap();
            let grads = grads_at(&r, &run.name, step, &vars);
            skipped += vars.len() - grads.get_ids().count();
            opt.step(&grads).unwrap();
            let state = opt.export_state().unwrap();
            for (n, v) in &vars {
                let want = &r[&format!("{}.after.{step}.{n}", run.name)];
                let d = max_abs_diff(v.as_tensor(), want);
                assert!(d <= TOL, "{} step {step} `{n}`: parameter differs by {d:e}", run.name);
                worst_param = worst_param.max(d);
                let sk = format!("{}.state.{step}.{n}.step", run.name);
                match r.get(&sk) {
                    None => {
                        assert!(!state.contains_key(&format!("{n}.step")), "{sk}: torch has no state yet");
                        assert_eq!(opt.step_count(n), Some(0));
                    }
                    Some(want_step) => {
                        let want_step = want_step.to_scalar::<f64>().unwrap();
                        let ours = state[&format!("{n}.step")].to_scalar::<i64>().unwrap();
                        assert_eq!(ours as f64, want_step, "{sk}");
                        for f in ["exp_avg", "exp_avg_sq"] {
                            let want = &r[&format!("{}.state.{step}.{n}.{f}", run.name)];
                            let d = max_abs_diff(&state[&format!("{n}.{f}")], want);
                            assert!(d <= TOL, "{} step {step} `{n}.{f}` differs by {d:e}", run.name);
                            worst_state = worst_state.max(d);
                        }
                    }
                }
            }
        }
        eprintln!("adam {}: max abs diff parameters {worst_param:.2e}, moments {worst_state:.2e}", run.name);
    }
    // The fixture does exercise skipping, and every skip was seen.
    assert!(m.no_grad > 0);
    assert_eq!(skipped, m.no_grad * m.runs.len());
}

/// Runs steps `from..to` on `opt` with the fixture's gradients.
fn run_steps(opt: &mut Adam, r: &HashMap<String, Tensor>, run: &str, vars: &[(String, Var)], from: usize, to: usize) {
    for step in from..to {
        opt.set_lr(lr_at(step)).unwrap();
        opt.step(&grads_at(r, run, step, vars)).unwrap();
    }
}

#[test]
fn resuming_from_saved_state_is_bit_identical() {
    let m = manifest();
    let r = reference("train/adam_reference.safetensors");
    let dir = scratch_dir("adam-resume");
    for run in &m.runs {
        let straight = vars_from(&r, &format!("{}.init", run.name), &m.params);
        let mut opt = optimizer(&straight, run.betas);
        run_steps(&mut opt, &r, &run.name, &straight, 0, m.steps);

        for split in 1..m.steps {
            // First leg, then save parameters and optimizer state as the
            // trainer does, to safetensors files.
            let first = vars_from(&r, &format!("{}.init", run.name), &m.params);
            let mut opt1 = optimizer(&first, run.betas);
            run_steps(&mut opt1, &r, &run.name, &first, 0, split);
            let params: HashMap<String, Tensor> =
                first.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            let (pfile, sfile) = (dir.join("params.safetensors"), dir.join("optim.safetensors"));
            candle_core::safetensors::save(&params, &pfile).unwrap();
            candle_core::safetensors::save(&opt1.export_state().unwrap(), &sfile).unwrap();
            drop(opt1);

            // Second leg: everything fresh, from the files only.
            let loaded = candle_core::safetensors::load(&pfile, &Device::Cpu).unwrap();
            let state = candle_core::safetensors::load(&sfile, &Device::Cpu).unwrap();
            let second: Vec<(String, Var)> =
                m.params.iter().map(|n| (n.clone(), Var::from_tensor(&loaded[n]).unwrap())).collect();
            let mut opt2 = optimizer(&second, run.betas);
            opt2.import_state(&state).unwrap();
            run_steps(&mut opt2, &r, &run.name, &second, split, m.steps);

            let s1 = opt.export_state().unwrap();
            let s2 = opt2.export_state().unwrap();
            assert_eq!(s1.len(), s2.len());
            for ((n, a), (_, b)) in straight.iter().zip(&second) {
                assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{} split {split} `{n}`", run.name);
            }
            for (k, a) in &s1 {
                let b = &s2[k];
                if k.ends_with(".step") {
                    assert_eq!(a.to_scalar::<i64>().unwrap(), b.to_scalar::<i64>().unwrap(), "{k}");
                } else {
                    assert_eq!(bits(a), bits(b), "{} split {split} state `{k}`", run.name);
                }
            }
        }
    }
}

#[test]
fn restarting_without_the_state_would_differ() {
    // Guards the test above: if state were not needed, bit-identity would
    // prove nothing.
    let m = manifest();
    let r = reference("train/adam_reference.safetensors");
    let run = &m.runs[0];
    let straight = vars_from(&r, &format!("{}.init", run.name), &m.params);
    let mut opt = optimizer(&straight, run.betas);
    run_steps(&mut opt, &r, &run.name, &straight, 0, m.steps);

    let resumed = vars_from(&r, &format!("{}.init", run.name), &m.params);
    let mut first = optimizer(&resumed, run.betas);
    run_steps(&mut first, &r, &run.name, &resumed, 0, 2);
    let mut fresh = optimizer(&resumed, run.betas);
    run_steps(&mut fresh, &r, &run.name, &resumed, 2, m.steps);
    let d: f64 = straight
        .iter()
        .zip(&resumed)
        .map(|((_, a), (_, b))| max_abs_diff(a.as_tensor(), b.as_tensor()))
        .fold(0.0, f64::max);
    assert!(d > 1e-5, "fresh moments gave the same parameters (diff {d:e})");
}
