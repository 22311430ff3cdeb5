//! Training on a small synthetic set with the tiny preset: only trainable
//! tensors change, the frozen backbones stay bit-identical, and a run stopped
//! mid-epoch and resumed equals an uninterrupted one.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use afr_toolchain::afr::AfrConfig;
use afr_toolchain::train::run::{self, RunConfig};
use afr_toolchain::train::trainer::{self, Observer, Outcome, TrainOptions};
use candle_core::{Device, Tensor};
use common::{tiny_options, tiny_synth};

fn synth(dir: &Path) -> PathBuf {
    tiny_synth(dir, 2)
}

fn options(data: &Path, epochs: usize) -> TrainOptions {
    tiny_options(data, epochs, AfrConfig::default())
}

fn losses(run_dir: &Path) -> Vec<f64> {
    trainer::read_log(run_dir).iter().map(|l| l["loss"]).collect()
}

/// A synthetic set and two run directories to compare: (guard, data, whole, parts).
fn two_runs() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    (dir, data, whole, parts)
}

/// Both runs logged `epochs` epochs with losses within 1e-6.
fn assert_same_losses(a: &Path, b: &Path, epochs: usize) {
    let (a, b) = (losses(a), losses(b));
    assert_eq!((a.len(), b.len()), (epochs, epochs));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-6, "epoch losses differ: {a:?} vs {b:?}");
    }
}

/// Raises the stop flag after `after` batches, as Ctrl-C does.
struct StopAfter<'a> {
    after: usize,
    seen: usize,
    stop: &'a AtomicBool,
}

impl Observer for StopAfter<'_> {
    fn batch(&mut self, _: usize, _: f64) {
        self.seen += 1;
        if self.seen == self.after {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let (_dir, data, whole, parts) = two_runs();
    let dev = Device::Cpu;
    let never = AtomicBool::new(false);
    assert_eq!(
        trainer::start(&options(&data, 3), &whole, &dev, &never, &mut ()).unwrap(),
        Outcome::Finished { epochs: 3 }
    );
    // 12 images in batches of 4: stop in the middle of epoch 2.
    let stop = AtomicBool::new(false);
    let mut obs = StopAfter { after: 5, seen: 0, stop: &stop };
    let first = trainer::start(&options(&data, 3), &parts, &dev, &stop, &mut obs).unwrap();
    assert_eq!(first, Outcome::Interrupted { epoch: 1, batch: 2 });
    let again = trainer::resume(&parts, None, &dev, &AtomicBool::new(false), &mut ()).unwrap();
    assert_eq!(again, Outcome::Finished { epochs: 3 });

    assert_same_losses(&whole, &parts, 3);
    let cfg = RunConfig::read(&whole).unwrap();
    let ta = run::load_tensors(&whole, &cfg.checkpoint, &cfg, &dev).unwrap();
    let cfg_b = RunConfig::read(&parts).unwrap();
    let tb = run::load_tensors(&parts, &cfg_b.checkpoint, &cfg_b, &dev).unwrap();
    for (name, t) in &ta {
        let d = (t - &tb[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= 1e-6, "{name} differs by {d}");
    }
}

#[test]
fn a_finished_run_extended_with_resume_equals_a_longer_one() {
    let (_dir, data, whole, parts) = two_runs();
    let dev = Device::Cpu;
    let never = AtomicBool::new(false);
    trainer::start(&options(&data, 2), &whole, &dev, &never, &mut ()).unwrap();
    trainer::start(&options(&data, 1), &parts, &dev, &never, &mut ()).unwrap();
    // A finished run resumed as it is has nothing left to do.
    assert_eq!(trainer::resume(&parts, None, &dev, &never, &mut ()).unwrap(), Outcome::Finished { epochs: 1 });
    // It cannot be shortened below what it trained.
    let err = trainer::resume(&parts, Some(0), &dev, &never, &mut ()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("--epochs 0"), "{err}");
    assert_eq!(trainer::resume(&parts, Some(2), &dev, &never, &mut ()).unwrap(), Outcome::Finished { epochs: 2 });
    assert_eq!(RunConfig::read(&parts).unwrap().train.epochs, 2);
    assert_same_losses(&whole, &parts, 2);
}

#[test]
fn a_step_changes_every_trainable_tensor_and_no_frozen_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let dev = Device::Cpu;
    let out = dir.path().join("run");
    trainer::start(&options(&data, 1), &out, &dev, &AtomicBool::new(false), &mut ()).unwrap();
    let cfg = RunConfig::read(&out).unwrap();
    // The same build from the run's config gives the initial state.
    let (model, params) = afr_toolchain::train::model::build(&cfg, &cfg.categories, &dev).unwrap();
    let initial = params.tensors();
    let px = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let frozen_before = (model.vision().hidden_states(&px, None).unwrap(), model.resnet().pooled(&px).unwrap());
    let trained = run::load_tensors(&out, &cfg.checkpoint, &cfg, &dev).unwrap();
    assert_eq!(trained.len(), initial.len());
    for (name, t0) in &initial {
        let d = (t0 - &trained[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d > 0.0, "{name} did not change in training");
    }
    // Loading the trained values and running a step touches only the ParamStore's variables.
    params.assign(&trained, &out).unwrap();
    let frozen_after = (model.vision().hidden_states(&px, None).unwrap(), model.resnet().pooled(&px).unwrap());
    for (a, b) in frozen_before.0.iter().zip(&frozen_after.0) {
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    assert_eq!(
        frozen_before.1.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        frozen_after.1.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn a_run_directory_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let out = dir.path().join("run");
    trainer::start(&options(&data, 1), &out, &Device::Cpu, &AtomicBool::new(false), &mut ()).unwrap();
    let checkpoint = out.join(RunConfig::read(&out).unwrap().checkpoint);
    let before = std::fs::read(&checkpoint).unwrap();
    let err = trainer::start(&options(&data, 1), &out, &Device::Cpu, &AtomicBool::new(false), &mut ()).unwrap_err();
    assert!(err.to_string().contains("already holds a run"), "{err}");
    assert_eq!(before, std::fs::read(&checkpoint).unwrap());
}
