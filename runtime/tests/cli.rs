//! End to end runs of the `afr` binary: `score`, `eval` and `info` on the tiny
//! contract model, with good and bad images written here.

#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Output;

use afr_runtime::detector::Detector;
use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

#[path = "support/runner.rs"]
mod runner;

/// Runs `afr` (under the emulator when the tests are cross-built).
fn afr(args: &[&str]) -> Output {
    runner::command(env!("CARGO_BIN_EXE_afr")).args(args).output().expect("run afr")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A dark noisy frame, with a bright square at `spot` (x, y, side) if given.
fn frame(w: u32, h: u32, seed: u32, spot: Option<(u32, u32, u32)>) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let inside = spot.is_some_and(|(sx, sy, n)| x >= sx && x < sx + n && y >= sy && y < sy + n);
        let v = if inside { 240 } else { (20 + (x * 7 + y * 13 + seed * 31) % 30) as u8 };
        Rgb([v, v, v])
    })
}

#[test]
fn info_describes_the_model_and_refuses_others() {
    let out = afr(&["info", "--model", s(&fixture("model.onnx")), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["categories"], serde_json::json!(["a", "b", "object"]));
    assert_eq!(v["input_size"], 32);
    assert_eq!(v["parameters"], 30);
    // The prototypes, one row per stage, as stored (scripts/make_runtime_fixtures.py).
    let p = &v["prototypes"];
    assert_eq!((p["stages"].as_u64(), p["dim"].as_u64()), (Some(4), Some(3)));
    assert_eq!(p["normal"][0], serde_json::json!([0.6, 0.8, 0.0]));
    assert_eq!(p["abnormal"][3], serde_json::json!([0.0, 3.0, 4.0]));
    let cos: Vec<f64> = p["cosine"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).collect();
    for (c, want) in cos.iter().zip([0.64, 1.0, 0.0, 0.8]) {
        assert!((c - want).abs() < 1e-6, "{cos:?}");
    }
    assert_eq!(v["precision"], "fp32");
    assert_eq!(v["file_bytes"], std::fs::metadata(fixture("model.onnx")).unwrap().len());
    let out = afr(&["info", "--model", s(&fixture("model.onnx"))]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("categories (3): a, b, object"), "{stdout}");
    assert!(stdout.contains("prototypes:      4 stages x 3"), "{stdout}");
    assert!(stdout.contains("cos(normal, abnormal) per stage: 0.6400, 1.0000, 0.0000, 0.8000"), "{stdout}");
    assert!(stdout.contains("abnormal stage 1: 0.0000 0.8000 0.6000"), "{stdout}");
    // A file without prototypes says so.
    let out = afr(&["info", "--model", s(&fixture("nan.onnx"))]);
    assert!(text(&out.stdout).contains("prototypes:      not stored"), "{}", text(&out.stdout));
    for bad in ["not_ours.onnx", "future_version.onnx", "nope.onnx"] {
        let out = afr(&["info", "--model", s(&fixture(bad))]);
        assert!(!out.status.success(), "{bad}");
        assert!(text(&out.stderr).contains(bad), "{bad}: {}", text(&out.stderr));
    }
}

#[test]
fn score_writes_scores_heatmaps_and_maps_and_reports_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    let rgb = frame(40, 30, 1, Some((5, 5, 10)));
    rgb.save(imgs.join("rgb.png")).unwrap();
    GrayImage::from_fn(24, 24, |x, _| Luma([(x * 10) as u8])).save(imgs.join("sub/gray.png")).unwrap();
    RgbaImage::from_fn(20, 20, |x, y| Rgba([x as u8 * 9, y as u8 * 9, 50, 7])).save(imgs.join("sub/rgba.png")).unwrap();
    ImageBuffer::<Rgb<u16>, Vec<u16>>::from_fn(16, 16, |x, y| Rgb([x as u16 * 4000, y as u16 * 4000, 30000]))
        .save(imgs.join("deep16.png"))
        .unwrap();
    rgb.save(imgs.join("photo.jpg")).unwrap();
    let png = std::fs::read(imgs.join("rgb.png")).unwrap();
    std::fs::write(imgs.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(imgs.join("text.png"), b"not an image").unwrap();
    // Over the decoder's 16384-pixel limit (small on disk: one row).
    RgbImage::new(20_000, 1).save(imgs.join("wide.png")).unwrap();
    std::fs::write(imgs.join("notes.txt"), b"ignored: not an image extension").unwrap();
    let out_dir = dir.path().join("out");
    let out = afr(&[
        "score",
        "--model",
        s(&fixture("model.onnx")),
        "--category",
        "a",
        s(&imgs),
        "--out",
        s(&out_dir),
        "--json",
        "--raw-maps",
        "--threshold",
        "0.5",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "bad images must fail the run at the end: {err}");
    assert!(err.contains("truncated.png") && err.contains("text.png") && err.contains("wide.png"), "{err}");
    // The good ones are all there.
    let csv = std::fs::read_to_string(out_dir.join("scores.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(csv.lines().next(), Some("path,category,score,verdict"));
    assert_eq!(rows.len(), 5, "{csv}");
    // The binary's score equals the library's, and the verdict follows the threshold.
    let mut det = Detector::load(&fixture("model.onnx")).unwrap();
    let mut map = vec![0f32; 40 * 30];
    let want = det.score(rgb.as_raw(), 40, 30, 0, &mut map).unwrap();
    let row = rows.iter().find(|r| r[0].ends_with("rgb.png")).unwrap();
    assert_eq!(row[1], "a");
    assert_eq!(row[2].parse::<f32>().unwrap(), want.image);
    for r in &rows {
        let score: f32 = r[2].parse().unwrap();
        assert_eq!(r[3], if score >= 0.5 { "anomalous" } else { "normal" });
    }
    // Heatmaps at image size; raw maps as .npy of the library's map.
    for (name, w, h) in [("rgb", 40, 30), ("gray", 24, 24), ("rgba", 20, 20), ("deep16", 16, 16), ("photo", 40, 30)] {
        let heat = image::open(out_dir.join("heatmaps").join(format!("{name}.png"))).unwrap();
        assert_eq!((heat.width(), heat.height()), (w, h), "{name}");
        let npy = std::fs::read(out_dir.join("maps").join(format!("{name}.npy"))).unwrap();
        let header = u16::from_le_bytes([npy[8], npy[9]]) as usize + 10;
        assert_eq!(npy.len() - header, (w * h * 4) as usize, "{name}");
    }
    let npy = std::fs::read(out_dir.join("maps/rgb.npy")).unwrap();
    let header = u16::from_le_bytes([npy[8], npy[9]]) as usize + 10;
    let raw: Vec<f32> = npy[header..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(raw, map);
    // JSON on stdout and in the folder, with the failures named.
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 5);
    assert_eq!(v["failed"].as_array().unwrap().len(), 3);
    let saved: Value = serde_json::from_slice(&std::fs::read(out_dir.join("scores.json")).unwrap()).unwrap();
    assert_eq!(saved, v);
}

#[test]
fn score_globs_categories_and_options() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        frame(33, 33, i, None).save(dir.path().join(format!("cam_{i}.png"))).unwrap();
    }
    frame(33, 33, 9, None).save(dir.path().join("other.png")).unwrap();
    let out_dir = dir.path().join("out");
    let pattern = dir.path().join("cam_?.png");
    let out = afr(&["score", "--model", s(&fixture("model.onnx")), s(&pattern), "--out", s(&out_dir), "--no-heatmaps"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(out_dir.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(!csv.contains("other.png"));
    // No threshold: empty verdicts; default category `object`.
    assert!(csv.lines().skip(1).all(|l| l.ends_with(',') && l.contains(",object,")), "{csv}");
    assert!(!out_dir.join("heatmaps").exists());
    // A category the model has no row for is scored with its `object` row, with a warning,
    // and refused under --strict-categories (naming the ones it knows).
    let model = fixture("model.onnx");
    let zipper = ["--model", s(&model), "--category", "zipper", s(&pattern), "--out", s(&out_dir)];
    let out = afr(&[&["score", "--json"], &zipper[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no row for category `zipper`; scored with the generic `object` row"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["category"].as_str(), v["scored_as"].as_str()), (Some("zipper"), Some("object")));
    let out = afr(&[&["score", "--strict-categories"], &zipper[..]].concat());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("model.onnx") && err.contains("zipper") && err.contains("(a, b, object)"), "{err}");
    let b = ["score", "--strict-categories", "--json", "--model", s(&model), "--category", "b", s(&pattern), "--out"];
    let out = afr(&[&b[..], &[s(&out_dir)]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("warning"), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scored_as"], "b");
    // Nothing matches: an error naming the pattern.
    let none = dir.path().join("*.bmp");
    let out = afr(&["score", "--model", s(&fixture("model.onnx")), s(&none), "--out", s(&out_dir)]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("*.bmp"), "{}", text(&out.stderr));
    // A model whose output is NaN: every image fails, naming the model.
    let out = afr(&["score", "--model", s(&fixture("nan.onnx")), s(&pattern), "--out", s(&out_dir)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("non-finite"), "{}", text(&out.stderr));
    // A truncated model file.
    let cut = dir.path().join("cut.onnx");
    let bytes = std::fs::read(fixture("model.onnx")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let out = afr(&["score", "--model", s(&cut), s(&pattern), "--out", s(&out_dir)]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cut.onnx"), "{}", text(&out.stderr));
}

#[test]
fn eval_reports_the_seven_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    // `a`: masks for every anomaly; `widget` (not in the model: scored as `object`): none.
    for (cat, masks) in [("a", true), ("widget", false)] {
        for sub in ["good", "bad", "masks"] {
            std::fs::create_dir_all(root.join(cat).join(sub)).unwrap();
        }
        for i in 0..4 {
            frame(48, 40, i, None).save(root.join(cat).join(format!("good/n{i}.png"))).unwrap();
            let spot = (4 + i * 6, 6 + i * 3, 16);
            frame(48, 40, i, Some(spot)).save(root.join(cat).join(format!("bad/d{i}.png"))).unwrap();
            if masks {
                GrayImage::from_fn(48, 40, |x, y| {
                    let inside = x >= spot.0 && x < spot.0 + spot.2 && y >= spot.1 && y < spot.1 + spot.2;
                    Luma([if inside { 255 } else { 0 }])
                })
                .save(root.join(cat).join(format!("masks/d{i}.png")))
                .unwrap();
            }
        }
    }
    std::fs::remove_dir(root.join("widget/masks")).unwrap();
    let model = fixture("model.onnx");
    let eval = ["eval", "--model", s(&model), "--data", s(&root), "--format", "folder"];
    let json = dir.path().join("report.json");
    let out = afr(&[&eval[..], &["--json", s(&json)]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(md.lines().next().unwrap().starts_with("| category | image AUROC"), "{md}");
    assert_eq!(md.lines().count(), 7, "{md}");
    assert!(md.ends_with("\nScored with the generic `object` row (not in the model's table): widget.\n"), "{md}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning:") && stderr.contains("no row for category `widget`"), "{stderr}");
    assert!(!stderr.contains("category `a`"), "{stderr}");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let a = &v["categories"]["a"];
    let widget = &v["categories"]["widget"];
    // Which row of the model's table scored each category.
    assert_eq!((a["scored_as"].as_str(), widget["scored_as"].as_str()), (Some("a"), Some("object")));
    // A bright square is what this model calls anomalous: the images separate perfectly.
    assert_eq!(a["image_auroc"], 1.0);
    assert_eq!(widget["image_auroc"], 1.0);
    assert_eq!(a["image_ap"], 1.0);
    for m in ["pixel_auroc", "pixel_ap", "pixel_max_f1", "aupro"] {
        let x = a[m].as_f64().unwrap_or_else(|| panic!("{m} missing: {a}"));
        assert!(x > 0.5 && x <= 1.0, "{m} = {x}");
        assert!(widget[m].is_null(), "{m} must be undefined without masks");
    }
    assert_eq!(v["mean"]["pixel_auroc"], a["pixel_auroc"]);
    // Under --strict-categories a category without a row is refused before anything is
    // scored or written.
    let strict = dir.path().join("strict.json");
    let out = afr(&[&eval[..], &["--strict-categories", "--json", s(&strict)]].concat());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("model.onnx: no row for widget") && err.contains("--categories-from"), "{err}");
    assert!(!strict.exists());
    // Unknown format and unknown category are errors naming them.
    let out = afr(&["eval", "--model", s(&fixture("model.onnx")), "--data", s(&root), "--format", "coco"]);
    assert!(!out.status.success());
    let out = afr(&[
        "eval",
        "--model",
        s(&fixture("model.onnx")),
        "--data",
        s(&root),
        "--format",
        "folder",
        "--categories",
        "nut",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nut"), "{}", text(&out.stderr));
    // A mask of another size than its image: the error names both files.
    GrayImage::new(10, 10).save(root.join("a/masks/d0.png")).unwrap();
    let out = afr(&["eval", "--model", s(&fixture("model.onnx")), "--data", s(&root), "--format", "folder"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("d0.png"), "{}", text(&out.stderr));
}

#[test]
fn bench_compares_models_side_by_side_and_refuses_bad_ones() {
    let m = fixture("model.onnx");
    let out = afr(&[
        "bench",
        "--model",
        s(&m),
        "--model",
        s(&m),
        "--frame",
        "40x30",
        "--frames",
        "2",
        "--rounds",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["frame"], serde_json::json!([40, 30]));
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["ratio_to_first"], 1.0);
    for r in models {
        let (min, med, p90) =
            (r["min_ms"].as_f64().unwrap(), r["median_ms"].as_f64().unwrap(), r["p90_ms"].as_f64().unwrap());
        assert!(min > 0.0 && min <= med && med <= p90, "{r}");
        assert!(r["allocations_per_frame"].as_f64().unwrap() >= 0.0);
        assert_eq!(r["precision"], "fp32");
    }
    let out = afr(&["bench", "--model", s(&m), "--model", s(&fixture("not_ours.onnx")), "--frames", "1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not_ours.onnx"), "{}", text(&out.stderr));
    let out = afr(&["bench", "--model", s(&m), "--frame", "0x5"]);
    assert!(!out.status.success());
}
