//! examples/c/score.c compiled with the system C compiler against the
//! committed header and the static library, run on the fixture model: its
//! score and map equal `afr score`'s on the same image.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixture, frame_rgb};
use serde_json::Value;

const W: usize = 40;
const H: usize = 30;

/// target/<profile>, where cargo put this test, the libraries and `afr`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The `afr` binary of this build; built if this run did not build it
/// (`cargo test -p afr-runtime-c` alone).
fn afr_binary() -> PathBuf {
    let bin = profile_dir().join(format!("afr{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "afr-runtime", "--bin", "afr", "--manifest-path"]).arg(manifest);
        if profile_dir().file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        run(&mut build);
    }
    bin
}

fn write_ppm(path: &Path, rgb: &[u8]) {
    let mut bytes = format!("P6\n# test frame\n{W} {H}\n255\n").into_bytes();
    bytes.extend_from_slice(rgb);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn c_example_scores_as_afr_score_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // Building this test built the library's every crate type into deps/.
    let lib = profile_dir().join("deps/libafr.a");
    assert!(lib.exists(), "{} was not built", lib.display());
    let exe = dir.path().join("score");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    // The Makefile's flags, with warnings as errors.
    run(Command::new(cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I"])
        .arg(root.join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(root.join("../examples/c/score.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-Wl,-z,noexecstack"]));

    let rgb = frame_rgb(W, H);
    let (ppm, png) = (dir.path().join("frame.ppm"), dir.path().join("frame.png"));
    write_ppm(&ppm, &rgb);
    image::RgbImage::from_raw(W as u32, H as u32, rgb).unwrap().save(&png).unwrap();
    let model = fixture("model.onnx");
    let map_path = dir.path().join("map.f32");
    let out = run(Command::new(&exe).arg(&model).arg(&ppm).arg("b").arg(&map_path));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&c["category"], &c["scored_as"]), (&Value::from("b"), &Value::from("b")));

    let out_dir = dir.path().join("afr");
    let out = run(Command::new(afr_binary())
        .args(["score", "--category", "b", "--json", "--raw-maps", "--no-heatmaps", "--model"])
        .arg(&model)
        .arg(&png)
        .arg("--out")
        .arg(&out_dir));
    let afr: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = &afr["results"][0];
    for key in ["score", "map_max"] {
        let (got, expected) = (c[key].as_f64().unwrap(), want[key].as_f64().unwrap());
        println!("{key}: C example {got}, afr score {expected}");
        assert!((got - expected).abs() <= 1e-6, "{key}: C {got} vs afr {expected}");
    }
    // The map too, value for value.
    let npy = std::fs::read(out_dir.join("maps/frame.npy")).unwrap();
    let header = u16::from_le_bytes([npy[8], npy[9]]) as usize + 10;
    let floats =
        |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() };
    let (c_map, afr_map) = (floats(&std::fs::read(&map_path).unwrap()), floats(&npy[header..]));
    assert_eq!(c_map.len(), W * H);
    let worst = c_map.iter().zip(&afr_map).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("map: {} values, largest difference {worst}", c_map.len());
    assert!(worst <= 1e-6);

    // A missing model and a bad image: a one-line error each, exit code 1.
    let out = Command::new(&exe).arg(dir.path().join("none.onnx")).arg(&ppm).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot open the model: ") && err.contains("none.onnx: cannot read the model"));
    std::fs::write(&ppm, b"P6\n40 30\n255\nshort").unwrap();
    let out = Command::new(&exe).arg(&model).arg(&ppm).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("frame.ppm: truncated pixel data"));
}
