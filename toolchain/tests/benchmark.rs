//! `afr-toolchain benchmark` end to end on synthetic data with the tiny preset: trained on
//! two categories, tested zero-shot on two others; the paper's table layout for fp32, fp16
//! and int8; a second run reuses the training; an existing run can be benchmarked with the
//! paper's figures beside ours; bad settings are refused before anything is trained.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn benchmark(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_afr-toolchain"));
    cmd.arg("benchmark").args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn benchmark_writes_the_paper_tables_and_reuses_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let train = common::tiny_synth(dir.path(), 2); // fabric, washer
    let test = common::unseen_synth(dir.path()); // wood, bolt
    let out = dir.path().join("bench");
    let json = dir.path().join("bench.json");
    let tiny = ["--preset", "tiny", "--clip", "random:0", "--resnet", "random:1", "--epochs", "1"];
    let paths = [("--data", train.as_path()), ("--test-data", test.as_path()), ("--out", out.as_path())];

    let first = benchmark(&tiny, &[&paths[..], &[("--json", json.as_path())]].concat());
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "{stderr}");
    println!("{stdout}");
    assert!(stderr.contains("benchmark: training tiny for 1 epochs"), "{stderr}");
    assert!(stderr.contains("exporting with a row for each of the 2 test categories"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("benchmark.md")).unwrap(), stdout);
    for table in ["## Image level: (AUROC, max-F1)", "## Pixel level: (AUROC, max-F1, AUPRO)"] {
        let at = stdout.find(table).unwrap_or_else(|| panic!("{table} missing: {stdout}"));
        let rows: Vec<&str> = stdout[at..].lines().skip(2).take(5).collect();
        assert_eq!(rows[0], "| category | fp32 | fp16 | int8 |", "{table}");
        assert!(rows[2].starts_with("| bolt | (") && rows[3].starts_with("| wood | ("), "{rows:?}");
        assert!(rows[4].starts_with("| **mean** | (") && !rows[4].contains("not produced"), "{rows:?}");
    }
    assert!(stdout.contains("not all of one of the paper's datasets"), "{stdout}");
    for file in ["model.onnx", "model.fp16.onnx", "model.int8.onnx", "benchmark.json", "run/config.json"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report, serde_json::from_slice::<Value>(&std::fs::read(out.join("benchmark.json")).unwrap()).unwrap());
    let labels: Vec<&str> =
        report["columns"].as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["fp32", "fp16", "int8"]);
    for column in report["columns"].as_array().unwrap() {
        let categories = &column["evaluation"]["categories"];
        for c in ["bolt", "wood"] {
            assert_eq!(categories[c]["scored_as"], c, "{column}");
            assert!(categories[c]["pixel_auroc"].as_f64().is_some(), "{column}");
        }
    }
    assert_eq!(report["test"]["categories"], serde_json::json!(["bolt", "wood"]));
    assert_eq!(report["trained_on"]["categories"], serde_json::json!(["fabric", "washer"]));
    assert!(report["paper"].is_null());

    // The same command again reuses the finished run.
    let again = benchmark(&[&tiny[..], &["--precisions", "none"]].concat(), &paths);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("reusing the run in"), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("| category | fp32 |\n"), "{}", text(&again.stdout));

    // An existing run, named as the paper's MVTec AD: its Table 1 and 2 figures beside the means.
    let other = dir.path().join("other");
    let run = out.join("run");
    let named = benchmark(
        &["--paper", "mvtec", "--precisions", "none"],
        &[("--run", run.as_path()), ("--test-data", test.as_path()), ("--out", other.as_path())],
    );
    let stdout = text(&named.stdout);
    assert!(named.status.success(), "{}", text(&named.stderr));
    assert!(!other.join("run").exists());
    assert!(stdout.contains("| category | fp32 | AFR-CLIP, paper (Table 1) |"), "{stdout}");
    assert!(stdout.contains(" (93.4, 92.3) |\n"), "{stdout}");
    assert!(stdout.contains(" (92.3, 47.9, -) |\n"), "{stdout}");
    assert!(stdout.contains("This run used the `tiny` preset"), "{stdout}");

    // Refused before training: another seed in the same --out, a dataset the paper lacks.
    let seeded = benchmark(&[&tiny[..], &["--seed", "5"]].concat(), &paths);
    assert!(!seeded.status.success());
    assert!(text(&seeded.stderr).contains("holds a run with other settings (--seed: the run has 0, asked 5)"));
    let unknown = benchmark(&[&tiny[..], &["--paper", "kolektor"]].concat(), &paths);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("--paper kolektor: the paper has no such dataset (known: "));
}
