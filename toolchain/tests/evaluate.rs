//! `afr-toolchain evaluate`, the Candle reference evaluation of a run: it gives the same
//! seven metrics as the runtime's evaluation of the run's ONNX export in tract (one
//! preprocessing, one set of metrics, maps equal to 1e-4), and its CLI prints the table,
//! says which rows the run trained on, writes the JSON report and names a bad run.

mod common;

use std::process::Command;

use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::detector::Detector;
use afr_runtime::metrics::Metrics;
use afr_runtime::report::Report;
use afr_toolchain::afr::AfrConfig;
use candle_core::Device;
use common::tiny_run;

#[test]
fn candle_and_tract_evaluations_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path(), 2, AfrConfig::default());
    let candle = afr_toolchain::evaluate::evaluate(&run, &data, Format::Mvtec, None, &Device::Cpu, |_, _| {}).unwrap();

    let onnx = dir.path().join("model.onnx");
    afr_toolchain::export::export(&run, None, &onnx, None, &Device::Cpu).unwrap();
    let mut detector = Detector::load(&onnx).unwrap();
    let dataset = Dataset::open(&data, Format::Mvtec, Split::Test, None).unwrap();
    let tract = afr_runtime::evaluate::evaluate(&mut detector, &dataset, |_, _| {}).unwrap();

    assert_eq!(candle.categories.keys().collect::<Vec<_>>(), ["fabric", "washer"]);
    assert_eq!(tract.keys().collect::<Vec<_>>(), ["fabric", "washer"]);
    for (category, ours) in &candle.categories {
        let theirs = &tract[category];
        for ((name, a), b) in Metrics::NAMES.iter().zip(ours.values()).zip(theirs.values()) {
            let (a, b) = (a.unwrap_or_else(|| panic!("{category} {name} missing")), b.unwrap());
            assert!((0.0..=1.0).contains(&a), "{category} {name} = {a}");
            // The two maps differ by at most 1e-4 (export parity), so a ranking metric can
            // move only through the few pixel pairs scored closer than that (measured:
            // 1e-6). A different resize, mask threshold or smoothing moves it by far more.
            println!("{category} {name}: candle {a:.6}, tract {b:.6}");
            assert!((a - b).abs() <= 1e-4, "{category} {name}: candle {a} vs tract {b}");
        }
    }
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
    assert!(report.categories["washer"].values().iter().all(Option::is_some));

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
