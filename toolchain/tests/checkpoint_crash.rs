//! A run is never lost: the real binary is stopped (aborted, as a kill -9
//! stops it) before every file-system step of a checkpoint save, or that step
//! fails as on a full disk; then `train --resume` must give the run an
//! uninterrupted training gives: the same tensors, and a log with every epoch
//! once and the same losses.
//! Runs saved before states were numbered still load and train on.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use afr_toolchain::train::run::{self, RunConfig};
use candle_core::Device;

const BIN: &str = env!("CARGO_BIN_EXE_afr-toolchain");
const EPOCHS: &str = "2";

/// `fault`: (AFR_CRASH_AT or AFR_FAIL_AT, "SAVE:STEP").
fn train(data: &Path, out: &Path, fault: Option<(&str, &str)>) -> Output {
    let mut c = Command::new(BIN);
    c.args(["train", "--preset", "tiny", "--clip", "random:0", "--resnet", "random:1", "--epochs", EPOCHS]);
    c.args(["--batch-size", "4"]).arg("--data").arg(data).arg("--out").arg(out);
    c.env_remove("AFR_CRASH_AT").env_remove("AFR_FAIL_AT");
    if let Some((var, at)) = fault {
        c.env(var, at);
    }
    c.output().unwrap()
}

fn resume(out: &Path) -> Output {
    Command::new(BIN)
        .args(["train", "--resume", "--out"])
        .arg(out)
        .env_remove("AFR_FAIL_AT")
        .env_remove("AFR_CRASH_AT")
        .output()
        .unwrap()
}

/// (epoch, loss) of every line of log.jsonl.
fn log(run: &Path) -> Vec<(f64, f64)> {
    afr_toolchain::train::trainer::read_log(run).iter().map(|l| (l["epoch"], l["loss"])).collect()
}

/// The run's files are its config, its two tensor files and its log, nothing else.
fn assert_tidy(run: &Path) {
    let cfg = RunConfig::read(run).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut want = vec![cfg.checkpoint.clone(), "config.json".into(), "log.jsonl".into(), cfg.optimizer.clone()];
    want.sort();
    assert_eq!(names, want, "{}", run.display());
}

fn assert_same_run(reference: &Path, run: &Path, what: &str) {
    let (a, b) = (log(reference), log(run));
    assert_eq!(a.len(), b.len(), "{what}: log {b:?}, uninterrupted {a:?}");
    for ((ea, la), (eb, lb)) in a.iter().zip(&b) {
        assert_eq!(ea, eb, "{what}: epochs {b:?}");
        assert!((la - lb).abs() <= 1e-6, "{what}: losses {b:?}, uninterrupted {a:?}");
    }
    let dev = Device::Cpu;
    let (ca, cb) = (RunConfig::read(reference).unwrap(), RunConfig::read(run).unwrap());
    assert_eq!(ca.progress.epoch, cb.progress.epoch, "{what}");
    let ta = run::load_tensors(reference, &ca.checkpoint, &ca, &dev).unwrap();
    let tb = run::load_tensors(run, &cb.checkpoint, &cb, &dev).unwrap();
    for (name, t) in &ta {
        let d = (t - &tb[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= 1e-6, "{what}: {name} differs by {d}");
    }
    assert_tidy(run);
}

#[test]
fn a_crash_at_any_step_of_a_save_resumes_to_the_uninterrupted_run() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the binary stops at AFR_CRASH_AT / AFR_FAIL_AT in debug builds only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = common::tiny_synth(dir.path(), 1);
    let reference = dir.path().join("reference");
    let out = train(&data, &reference, None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(log(&reference).iter().map(|e| e.0).collect::<Vec<_>>(), [1.0, 2.0]);
    assert_tidy(&reference);

    // Save 1 sets the run up, save 2 ends epoch 1, save 3 ends epoch 2 (the last). The steps
    // are the same in every save; in save 2 a crash before the commit leaves a run that
    // retrains epoch 1, one after it a run that continues with epoch 2.
    let save = 2;
    let mut crashes = 0;
    for fault in ["AFR_CRASH_AT", "AFR_FAIL_AT"] {
        for step in 1.. {
            let what = format!("{fault} step {step} of save {save}");
            let run_dir = dir.path().join(format!("{fault}-{step}"));
            let out = train(&data, &run_dir, Some((fault, &format!("{save}:{step}"))));
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                assert!(step > 8, "{what}: a save has more steps than that");
                break;
            }
            if fault == "AFR_CRASH_AT" {
                assert_eq!(out.status.code(), None, "{what}: {stderr}");
            } else {
                let last = stderr.lines().last().unwrap_or_default();
                assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
                assert!(last.starts_with("error: ") && last.contains("No space left on device"), "{what}: {last}");
                assert!(last.contains(run_dir.to_str().unwrap()), "{what}: the message names no file: {last}");
            }
            crashes += 1;
            let out = resume(&run_dir);
            assert!(out.status.success(), "{what}: resume failed: {}", String::from_utf8_lossy(&out.stderr));
            assert_same_run(&reference, &run_dir, &what);
            std::fs::remove_dir_all(&run_dir).unwrap();
        }
    }
    eprintln!("{crashes} crashes and failed steps, every one resumed to the uninterrupted run");
}

#[test]
fn a_run_saved_in_the_old_layout_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::tiny_synth(dir.path(), 1);
    let reference = dir.path().join("reference");
    assert!(train(&data, &reference, None).status.success());

    // One epoch, then rewritten as runs were saved before: fixed file names, no log in config.json.
    let old = dir.path().join("old");
    let mut c = Command::new(BIN);
    c.args(["train", "--preset", "tiny", "--clip", "random:0", "--resnet", "random:1", "--epochs", "1"]);
    c.arg("--data").arg(&data).arg("--out").arg(&old);
    assert!(c.env_remove("AFR_CRASH_AT").output().unwrap().status.success());
    let cfg = RunConfig::read(&old).unwrap();
    std::fs::rename(old.join(&cfg.checkpoint), old.join("checkpoint.safetensors")).unwrap();
    std::fs::rename(old.join(&cfg.optimizer), old.join("optimizer.safetensors")).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(old.join("config.json")).unwrap()).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("state");
    obj.remove("log");
    obj.insert("checkpoint".into(), "checkpoint.safetensors".into());
    obj.insert("optimizer".into(), "optimizer.safetensors".into());
    std::fs::write(old.join("config.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    assert_eq!(RunConfig::read(&old).unwrap().log.len(), 1, "the log is read from log.jsonl");

    let out = Command::new(BIN)
        .args(["train", "--resume", "--epochs", EPOCHS, "--out"])
        .arg(&old)
        .env_remove("AFR_CRASH_AT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_run(&reference, &old, "old layout");
}
