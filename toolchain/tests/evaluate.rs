//! `afr-toolchain evaluate`, the Candle reference evaluation of a run: on the paper's
//! cross-dataset protocol (trained on some categories, evaluated on unseen ones of another
//! dataset) it gives the same seven metrics as the runtime's evaluation of the run's ONNX
//! export made with `--categories-from` (one preprocessing, one set of metrics, a stateless
//! row per unseen category in both, maps equal to 1e-4); its CLI prints the table, says
//! which rows the run trained on, writes the JSON report and names a bad run.

mod common;

use std::path::Path;
use std::process::Command;

use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::detector::Detector;
use afr_runtime::metrics::Metrics;
use afr_runtime::report::{CategoryReport, Report};
use afr_toolchain::afr::AfrConfig;
use candle_core::Device;
use common::tiny_run;

fn export_cli(args: &[&std::ffi::OsStr]) {
    let out = Command::new(env!("CARGO_BIN_EXE_afr-toolchain")).arg("export").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn tract_eval(model: &Path, data: &Path, strict: bool) -> std::collections::BTreeMap<String, CategoryReport> {
    let mut detector = Detector::load(model).unwrap();
    let dataset = Dataset::open(data, Format::Mvtec, Split::Test, None).unwrap();
    afr_runtime::evaluate::evaluate(&mut detector, &dataset, strict, |_, _| {}).unwrap()
}

/// Largest |a - b| over the seven metrics of every category; both must define every one.
fn max_metric_diff(candle: &Report, tract: &std::collections::BTreeMap<String, CategoryReport>, print: bool) -> f64 {
    let mut worst = 0f64;
    for (category, ours) in &candle.categories {
        let theirs = &tract[category].metrics;
        for ((name, a), b) in Metrics::NAMES.iter().zip(ours.metrics.values()).zip(theirs.values()) {
            let (a, b) = (a.unwrap_or_else(|| panic!("{category} {name} missing")), b.unwrap());
            assert!((0.0..=1.0).contains(&a), "{category} {name} = {a}");
            if print {
                println!("{category} {name}: candle {a:.6}, tract {b:.6}");
            }
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn candle_and_tract_agree_on_unseen_categories() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = tiny_run(dir.path(), 2, AfrConfig::default()); // trained on fabric and washer
    let unseen = common::unseen_synth(dir.path());
    let candle =
        afr_toolchain::evaluate::evaluate(&run, &unseen, Format::Mvtec, None, &Device::Cpu, |_, _| {}).unwrap();
    assert_eq!(candle.categories.keys().collect::<Vec<_>>(), ["bolt", "wood"]);

    let onnx = dir.path().join("model.onnx");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    export_cli(&[
        os("--run"),
        run.as_os_str(),
        os("--out"),
        onnx.as_os_str(),
        os("--categories-from"),
        unseen.as_os_str(),
    ]);
    let info = afr_runtime::model_info::ModelInfo::load(&onnx).unwrap();
    let table: Vec<&str> = info.categories.iter().map(|c| c.as_str()).collect();
    assert_eq!(table, ["fabric", "washer", "bolt", "wood", "object"]);
    // Strict: every unseen category has its own row.
    let tract = tract_eval(&onnx, &unseen, true);
    assert!(tract.iter().all(|(c, r)| &r.scored_as == c), "{tract:?}");
    // The two maps differ by at most 1e-4 (export parity), so a ranking metric can move
    // only through the few pixel pairs scored closer than that (measured: 1e-6). A
    // different resize, mask threshold, smoothing or prompt moves it by far more.
    let d = max_metric_diff(&candle, &tract, true);
    println!("unseen categories, --categories-from: max |candle - tract| over the seven metrics {d:.2e}");
    assert!(d <= 1e-4, "candle and tract disagree by {d}");

    // Without --categories-from the unseen categories fall back to the generic `object`
    // row, which is another prompt: the disagreement this protocol exists to catch.
    let generic = dir.path().join("generic.onnx");
    export_cli(&[os("--run"), run.as_os_str(), os("--out"), generic.as_os_str()]);
    let fallback = tract_eval(&generic, &unseen, false);
    assert!(fallback.values().all(|r| r.scored_as == "object"), "{fallback:?}");
    let d = max_metric_diff(&candle, &fallback, false);
    println!("unseen categories scored with `object`: max |candle - tract| {d:.2e}");
    assert!(d > 1e-4, "the `object` row scored like the categories' own rows ({d})");
}

#[test]
fn the_cli_prints_the_table_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path(), 2, AfrConfig::default());
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_afr-toolchain"))
        .args(["evaluate", "--categories", "washer", "--json"])
        .arg(&json)
        .arg("--run")
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| category | image AUROC |"), "{stdout}");
    assert!(stdout.contains("| washer |") && !stdout.contains("| fabric |"), "{stdout}");
    assert!(stdout.contains("Trained on: washer (not zero-shot)."), "{stdout}");
    let report = Report::read_json(&json).unwrap();
    assert_eq!(report.categories.keys().collect::<Vec<_>>(), ["washer"]);
    assert!(report.categories["washer"].metrics.values().iter().all(Option::is_some));

    // A directory that is not a run is named, and nothing is written.
    let json2 = dir.path().join("report2.json");
    let out = Command::new(env!("CARGO_BIN_EXE_afr-toolchain"))
        .args(["evaluate", "--json"])
        .arg(&json2)
        .arg("--run")
        .arg(&data)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&data.display().to_string()) && stderr.contains("config.json"), "{stderr}");
    assert!(!json2.exists());
}
