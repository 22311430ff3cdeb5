//! The catalogue of bad inputs (DESIGN.md section 5), run against the real
//! `afr-toolchain` binary: weight files, presets, datasets, flags, run
//! directories and outputs. Every case must exit non-zero without a panic,
//! print one line naming the file (or flag) and the problem, and leave every
//! file already there (a trained run, a report) byte-identical. The README's
//! troubleshooting section lists the same messages.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::Tensor;
use common::{fixtures, reference};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_afr-toolchain");

/// One bad input: the arguments (`{root}` stands for the fixture directory) and
/// what the message must contain.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
}

/// The directory every case reads from and writes into, made once.
fn root() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        make_fixtures(dir.path());
        dir
    })
    .path()
}

fn make_fixtures(root: &Path) {
    let data = common::synth_set(root, "data", 1, 64, &["fabric", "washer"], 1);
    let run = root.join("run");
    let out = bin(&["train", "--preset", "tiny", "--clip", "random:0", "--resnet", "random:1", "--epochs", "1"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "training the fixture run: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(root.join("report.json"), "{\"an\": \"earlier report\"}\n").unwrap();
    std::fs::write(root.join("plain.txt"), "not a directory\n").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();

    // Weight files.
    std::fs::write(root.join("empty.safetensors"), b"").unwrap();
    let clip = std::fs::read(fixtures().join("clip_tiny_openai.safetensors")).unwrap();
    std::fs::write(root.join("truncated.safetensors"), &clip[..clip.len() / 2]).unwrap();
    let mut deeper = reference("clip_tiny_openai.safetensors");
    let layer7: Vec<(String, Tensor)> = deeper
        .iter()
        .filter(|(k, _)| k.starts_with("visual.transformer.resblocks.7."))
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    for extra in 8..12 {
        for (k, t) in &layer7 {
            deeper.insert(k.replace(".resblocks.7.", &format!(".resblocks.{extra}.")), t.clone());
        }
    }
    candle_core::safetensors::save(&deeper, root.join("clip_12_layers.safetensors")).unwrap();
    let mut resnet = reference("resnet_tiny_basic.safetensors");
    let block: Vec<(String, Tensor)> =
        resnet.iter().filter(|(k, _)| k.starts_with("layer1.0.")).map(|(k, t)| (k.clone(), t.clone())).collect();
    for (k, t) in block {
        resnet.insert(k.replace("layer1.0.", "layer1.1."), t);
    }
    candle_core::safetensors::save(&resnet, root.join("resnet_2_blocks.safetensors")).unwrap();

    // Presets.
    let mut preset: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("preset_clip_tiny.json")).unwrap()).unwrap();
    std::fs::write(root.join("preset_vocab.json"), preset.to_string()).unwrap();
    preset["clip"]["vision"]["heads"] = json!(5);
    std::fs::write(root.join("preset_heads.json"), preset.to_string()).unwrap();

    // Datasets: VisA and meta.json indexes with missing columns and paths leaving the root.
    let image = "fabric/test/good/000.png";
    assert!(data.join(image).is_file(), "the synthetic set changed its layout");
    let visa = |name: &str, csv: &str| {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("split_csv")).unwrap();
        std::fs::write(dir.join("split_csv/1cls.csv"), csv).unwrap();
    };
    visa("visa_no_label", &format!("object,split,image,mask\nfabric,test,../data/{image},\n"));
    visa("visa_dotdot", &format!("object,split,label,image,mask\nfabric,test,normal,../data/{image},\n"));
    let absolute = data.join(image);
    visa("visa_absolute", &format!("object,split,label,image,mask\nfabric,test,normal,{},\n", absolute.display()));
    let meta = |name: &str, value: Value| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), value.to_string()).unwrap();
    };
    let entry = |img: &str, mask: &str, anomaly: Value| json!({"img_path": img, "mask_path": mask, "cls_name": "fabric", "specie_name": "", "anomaly": anomaly});
    meta("meta_no_img", json!({"test": {"fabric": [{"mask_path": "", "cls_name": "fabric", "anomaly": 0}]}}));
    meta("meta_no_anomaly", json!({"test": {"fabric": [{"img_path": image, "mask_path": ""}]}}));
    meta("meta_dotdot", json!({"test": {"fabric": [entry(&format!("../data/{image}"), "", json!(0))]}}));
    meta("meta_absolute", json!({"test": {"fabric": [entry(absolute.to_str().unwrap(), "", json!(0))]}}));
    std::fs::create_dir_all(root.join("meta_broken")).unwrap();
    std::fs::write(root.join("meta_broken/meta.json"), "{\"test\": {\"fabric\": [").unwrap();

    // Run directories: copies of the run with one thing broken.
    let bad_run = |name: &str, edit: &dyn Fn(&Path, &mut Value)| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&run).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        edit(&dir, &mut cfg);
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    };
    bad_run("run_batch0", &|_, c| c["train"]["batch_size"] = json!(0));
    bad_run("run_window2", &|_, c| c["afr"]["mpfa_window"] = json!(2));
    bad_run("run_lr", &|_, c| c["train"]["lr"] = json!(-1.0));
    bad_run("run_escape", &|_, c| c["checkpoint"] = json!("../run/checkpoint.1.safetensors"));
    bad_run("run_heads", &|_, c| c["preset"]["clip"]["text"]["heads"] = json!(3));
    bad_run("run_mix", &|_, c| c["progress"]["epoch"] = json!(7));
    bad_run("run_no_optimizer", &|d, c| {
        std::fs::remove_file(d.join(c["optimizer"].as_str().unwrap())).unwrap();
    });
    bad_run("run_cut_checkpoint", &|d, c| {
        let path = d.join(c["checkpoint"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    });
    bad_run("run_not_json", &|_, _| {});
    let cut = std::fs::read_to_string(root.join("run_not_json/config.json")).unwrap();
    std::fs::write(root.join("run_not_json/config.json"), &cut[..cut.len() / 2]).unwrap();
}

fn bin(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("AFR_CRASH_AT").env_remove("AFR_FAIL_AT");
    c
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

macro_rules! train {
    ($($arg:expr),* $(,)?) => {
        &["train", "--preset", "tiny", "--clip", "random:0", "--resnet", "random:1", $($arg),*]
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Flags.
    Case { name: "even MPFA window", args: train!["--data", "{root}/data", "--out", "{root}/new", "--mpfa-window", "2"], expect: &["--mpfa-window must be odd", "got 2"] },
    Case { name: "zero MPFA window", args: train!["--data", "{root}/data", "--out", "{root}/new", "--mpfa-window", "0"], expect: &["--mpfa-window must be odd", "got 0"] },
    Case { name: "negative learning rate", args: train!["--data", "{root}/data", "--out", "{root}/new", "--lr", "-1"], expect: &["--lr is -1", "must be a number > 0"] },
    Case { name: "zero learning rate", args: train!["--data", "{root}/data", "--out", "{root}/new", "--lr", "0"], expect: &["--lr is 0", "> 0"] },
    Case { name: "zero temperature", args: train!["--data", "{root}/data", "--out", "{root}/new", "--tau", "0"], expect: &["--tau must be a positive number", "got 0"] },
    Case { name: "negative temperature", args: train!["--data", "{root}/data", "--out", "{root}/new", "--tau", "-0.5"], expect: &["--tau", "got -0.5"] },
    Case { name: "zero batch size", args: train!["--data", "{root}/data", "--out", "{root}/new", "--batch-size", "0"], expect: &["--batch-size is 0", "at least 1"] },
    Case { name: "zero epochs", args: train!["--data", "{root}/data", "--out", "{root}/new", "--epochs", "0"], expect: &["--epochs is 0", "at least 1"] },
    Case { name: "one beta", args: train!["--data", "{root}/data", "--out", "{root}/new", "--betas", "0.9"], expect: &["--betas takes two values"] },
    Case { name: "beta above one", args: train!["--data", "{root}/data", "--out", "{root}/new", "--betas", "1.5,0.9"], expect: &["--betas are 1.5,0.9", "[0, 1)"] },
    Case { name: "five SP stages", args: train!["--data", "{root}/data", "--out", "{root}/new", "--sp-stages", "5"], expect: &["--sp-stages must be 1, 2, 3 or 4"] },
    Case { name: "no prompt tokens", args: train!["--data", "{root}/data", "--out", "{root}/new", "--prompt-tokens", "0"], expect: &["--prompt-tokens must be at least 1"] },
    Case { name: "empty category list", args: train!["--data", "{root}/data", "--out", "{root}/new", "--categories", ""], expect: &["--categories", "empty name"] },
    Case { name: "unknown category", args: train!["--data", "{root}/data", "--out", "{root}/new", "--categories", "tyre"], expect: &["unknown categories tyre", "known: fabric, washer"] },
    Case { name: "epochs not a number", args: train!["--data", "{root}/data", "--out", "{root}/new", "--epochs", "many"], expect: &["'many'", "--epochs"] },
    Case { name: "unknown format", args: train!["--data", "{root}/data", "--out", "{root}/new", "--format", "coco"], expect: &["coco", "--format"] },
    Case { name: "unknown preset", args: &["train", "--preset", "vit-h14", "--clip", "random:0", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["unknown preset `vit-h14`"] },
    Case { name: "bad random weight spec", args: &["train", "--preset", "tiny", "--clip", "random:x", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["random:x", "random:SEED"] },
    // Outputs.
    Case { name: "--out names a file", args: train!["--data", "{root}/data", "--out", "{root}/plain.txt"], expect: &["plain.txt: is a file", "--out names the run's directory"] },
    Case { name: "--out holds a run", args: train!["--data", "{root}/data", "--out", "{root}/run"], expect: &["run already holds a run", "--resume"] },
    Case { name: "export into a missing directory", args: &["export", "--run", "{root}/run", "--out", "{root}/no/such/dir/model.onnx"], expect: &["no/such/dir/model.onnx"] },
    Case { name: "evaluate report into a directory", args: &["evaluate", "--run", "{root}/run", "--data", "{root}/data", "--json", "{root}/empty"], expect: &["empty"] },
    Case { name: "export with an empty category", args: &["export", "--run", "{root}/run", "--out", "{root}/model.onnx", "--categories", ""], expect: &["categor"] },
    // Weight files and presets.
    Case { name: "missing weight file", args: &["train", "--preset", "tiny", "--clip", "{root}/no_such.safetensors", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["no_such.safetensors", "No such file"] },
    Case { name: "empty weight file", args: &["train", "--preset", "tiny", "--clip", "{root}/empty.safetensors", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["empty.safetensors", "not a valid safetensors file"] },
    Case { name: "truncated weight file", args: &["inspect", "--preset", "tiny", "--clip", "{root}/truncated.safetensors"], expect: &["truncated.safetensors", "not a valid safetensors file"] },
    Case { name: "weights of another preset", args: &["train", "--preset", "tiny", "--clip", "{fixtures}/clip_tiny_openai.safetensors", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["clip_tiny_openai.safetensors", "has shape", "the preset expects"] },
    Case { name: "more CLIP layers than the preset", args: &["train", "--preset", "{fixtures}/preset_clip_tiny.json", "--clip", "{root}/clip_12_layers.safetensors", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["clip_12_layers.safetensors", "not used by the preset", "the file has 12 layers in visual.transformer.resblocks, the preset 8"] },
    Case { name: "more ResNet blocks than the preset", args: &["train", "--preset", "tiny", "--clip", "random:0", "--resnet", "{root}/resnet_2_blocks.safetensors", "--data", "{root}/data", "--out", "{root}/new"], expect: &["resnet_2_blocks.safetensors", "the file has 2 layers in layer1, the preset 1"] },
    Case { name: "vocabulary smaller than the tokenizer's", args: &["train", "--preset", "{root}/preset_vocab.json", "--clip", "{fixtures}/clip_tiny_openai.safetensors", "--resnet", "{fixtures}/resnet_tiny_basic.safetensors", "--data", "{root}/data", "--out", "{root}/new"], expect: &["clip_tiny_openai.safetensors", "vocabulary has 1000 tokens", "ids go up to 49407"] },
    Case { name: "heads that do not divide the width", args: &["train", "--preset", "{root}/preset_heads.json", "--clip", "random:0", "--resnet", "random:1", "--data", "{root}/data", "--out", "{root}/new"], expect: &["preset_heads.json", "vision width 32 is not divisible by 5 heads"] },
    // Datasets.
    Case { name: "missing dataset", args: train!["--data", "{root}/no_data", "--out", "{root}/new"], expect: &["no_data", "dataset root not found"] },
    Case { name: "dataset without categories", args: train!["--data", "{root}/empty", "--out", "{root}/new"], expect: &["empty", "no categories found"] },
    Case { name: "VisA CSV without a label column", args: train!["--data", "{root}/visa_no_label", "--format", "visa", "--out", "{root}/new"], expect: &["split_csv/1cls.csv:1", "no column \"label\""] },
    Case { name: "VisA CSV leaving the root", args: train!["--data", "{root}/visa_dotdot", "--format", "visa", "--out", "{root}/new"], expect: &["split_csv/1cls.csv:2", "contains `..`"] },
    Case { name: "VisA CSV with an absolute path", args: train!["--data", "{root}/visa_absolute", "--format", "visa", "--out", "{root}/new"], expect: &["split_csv/1cls.csv:2", "is absolute"] },
    Case { name: "meta.json entry without img_path", args: train!["--data", "{root}/meta_no_img", "--format", "meta-json", "--out", "{root}/new"], expect: &["meta.json", "test.fabric[0] has no img_path"] },
    Case { name: "meta.json entry without anomaly", args: train!["--data", "{root}/meta_no_anomaly", "--format", "meta-json", "--out", "{root}/new"], expect: &["meta.json", "test.fabric[0].anomaly is not 0 or 1"] },
    Case { name: "meta.json leaving the root", args: train!["--data", "{root}/meta_dotdot", "--format", "meta-json", "--out", "{root}/new"], expect: &["meta.json", "img_path", "contains `..`"] },
    Case { name: "meta.json with an absolute path", args: train!["--data", "{root}/meta_absolute", "--format", "meta-json", "--out", "{root}/new"], expect: &["meta.json", "img_path", "is absolute"] },
    Case { name: "truncated meta.json", args: train!["--data", "{root}/meta_broken", "--format", "meta-json", "--out", "{root}/new"], expect: &["meta_broken/meta.json", "EOF"] },
    Case { name: "evaluate on a missing dataset", args: &["evaluate", "--run", "{root}/run", "--data", "{root}/no_data", "--json", "{root}/report.json"], expect: &["no_data", "dataset root not found"] },
    // Run directories.
    Case { name: "resume without a run", args: &["train", "--resume", "--out", "{root}/no_run"], expect: &["no_run", "no run to resume"] },
    Case { name: "resume a run of batch size 0", args: &["train", "--resume", "--out", "{root}/run_batch0"], expect: &["run_batch0/config.json", "train.batch_size is 0"] },
    Case { name: "resume a run of an even MPFA window", args: &["train", "--resume", "--out", "{root}/run_window2"], expect: &["run_window2/config.json", "--mpfa-window must be odd"] },
    Case { name: "evaluate a run of a negative lr", args: &["evaluate", "--run", "{root}/run_lr", "--data", "{root}/data", "--json", "{root}/report.json"], expect: &["run_lr/config.json", "train.lr is -1"] },
    Case { name: "a run naming a file outside it", args: &["export", "--run", "{root}/run_escape", "--out", "{root}/model.onnx"], expect: &["run_escape/config.json", "checkpoint is \"../run/", "inside the run directory"] },
    Case { name: "a run whose preset has bad heads", args: &["export", "--run", "{root}/run_heads", "--out", "{root}/model.onnx"], expect: &["run_heads/config.json", "text width 64 is not divisible by 3 heads"] },
    Case { name: "a run mixing two states", args: &["train", "--resume", "--out", "{root}/run_mix", "--epochs", "9"], expect: &["run_mix/checkpoint.", "written at progress"] },
    Case { name: "a run without its optimizer state", args: &["train", "--resume", "--out", "{root}/run_no_optimizer", "--epochs", "2"], expect: &["run_no_optimizer/optimizer.", "No such file"] },
    Case { name: "a truncated checkpoint", args: &["evaluate", "--run", "{root}/run_cut_checkpoint", "--data", "{root}/data"], expect: &["run_cut_checkpoint/checkpoint.", "not a valid safetensors file"] },
    Case { name: "a run config that is not JSON", args: &["export", "--run", "{root}/run_not_json", "--out", "{root}/model.onnx"], expect: &["run_not_json/config.json", "not a run configuration"] },
    Case { name: "shortening a finished run", args: &["train", "--resume", "--out", "{root}/run", "--epochs", "0"], expect: &["run/config.json", "--epochs 0 would end it"] },
    Case { name: "evaluate a directory that is no run", args: &["evaluate", "--run", "{root}/empty", "--data", "{root}/data"], expect: &["empty/config.json", "No such file"] },
];

fn expand(arg: &str) -> String {
    arg.replace("{root}", root().to_str().unwrap()).replace("{fixtures}", fixtures().to_str().unwrap())
}

#[test]
fn every_bad_input_is_one_line_naming_the_problem_and_nothing_is_lost() {
    assert!(CASES.len() >= 30, "the catalogue shrank to {}", CASES.len());
    let before = snapshot(root());
    let mut failures = Vec::new();
    for case in CASES {
        let args: Vec<String> = case.args.iter().map(|a| expand(a)).collect();
        let out = bin(&[]).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let code = out.status.code();
        let mut problems = Vec::new();
        if out.status.success() || code.is_none() || code == Some(101) {
            problems.push(format!("exit {:?}", out.status));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if lines.len() != 1 {
            problems.push(format!("{} lines", lines.len()));
        }
        for want in case.expect {
            if !stderr.contains(&expand(want)) {
                problems.push(format!("no {want:?}"));
            }
        }
        let after = snapshot(root());
        if after != before {
            let changed: Vec<&PathBuf> =
                after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
            problems.push(format!("files changed: {changed:?}"));
            // Put things back so the next case starts from the same state.
            for path in after.keys().filter(|k| !before.contains_key(*k)) {
                let _ = std::fs::remove_file(path);
            }
            for (path, bytes) in &before {
                std::fs::write(path, bytes).unwrap();
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} -- stderr: {stderr}", case.name, problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    eprintln!("{} bad inputs, all refused cleanly", CASES.len());
}
