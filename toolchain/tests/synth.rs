//! The synthetic MVTec-layout generator: determinism, masks, layout, refusal to overwrite.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::image_io;
use afr_toolchain::synth::{self, generate, SynthConfig, SynthError, MARKER};

fn tiny(seed: u64) -> SynthConfig {
    SynthConfig { seed, size: 32, categories: None, train_good: 1, test_good: 2, test_bad_per_defect: 1 }
}

/// Every file under `root` (relative path -> bytes).
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn same_seed_gives_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), &tiny(7), |_, _| {}).unwrap();
    generate(b.path(), &tiny(7), |_, _| {}).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() > 20, "{} files", fa.len());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{} differs between two runs", name.display());
    }
    assert!(!fa.keys().any(|k| k.to_string_lossy().ends_with(".tmp")));
}

#[test]
fn different_seeds_differ_and_normal_images_vary() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), &tiny(1), |_, _| {}).unwrap();
    generate(b.path(), &tiny(2), |_, _| {}).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    for cat in synth::category_names() {
        let key = PathBuf::from(format!("{cat}/test/good/000.png"));
        assert_ne!(fa[&key], fb[&key], "{cat}: seeds 1 and 2 gave the same image");
        let other = PathBuf::from(format!("{cat}/test/good/001.png"));
        assert_ne!(fa[&key], fa[&other], "{cat}: two normal images are identical");
        let train = PathBuf::from(format!("{cat}/train/good/000.png"));
        assert_ne!(fa[&key], fa[&train], "{cat}: train and test image 000 are identical");
    }
}

#[test]
fn images_do_not_depend_on_the_other_categories() {
    let (all, one) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(all.path(), &tiny(3), |_, _| {}).unwrap();
    let cfg = SynthConfig { categories: Some(vec!["wood".into()]), ..tiny(3) };
    let summary = generate(one.path(), &cfg, |_, _| {}).unwrap();
    assert_eq!(summary.categories, vec!["wood".to_string()]);
    let (fa, fo) = (files(all.path()), files(one.path()));
    for (name, bytes) in fo.iter().filter(|(n, _)| n.starts_with("wood")) {
        assert!(bytes == &fa[name], "{} differs", name.display());
    }
}

#[test]
fn output_opens_with_the_mvtec_reader_and_masks_are_exact_sets() {
    let dir = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let summary = generate(dir.path(), &tiny(11), |done, total| calls.push((done, total))).unwrap();
    let defects: usize = synth::category_names().iter().map(|c| synth::defects_of(c).unwrap().len()).sum();
    assert_eq!(summary.masks, defects);
    assert_eq!(summary.images, 5 * 3 + defects);
    assert_eq!(calls.len(), summary.images);
    assert_eq!(calls.last(), Some(&(summary.images, summary.images)));
    assert!(calls.windows(2).all(|w| w[1].0 == w[0].0 + 1));

    let test = Dataset::open(dir.path(), Format::Mvtec, Split::Test, None).unwrap();
    assert_eq!(test.categories(), {
        let mut c: Vec<String> = synth::category_names().iter().map(|s| s.to_string()).collect();
        c.sort();
        c
    });
    assert_eq!(test.samples.len(), 5 * 2 + defects);
    for s in &test.samples {
        let (img, mask) = image_io::load_pair(&s.image, s.mask.as_deref()).unwrap();
        assert_eq!(img.dimensions(), (32, 32));
        if s.anomalous {
            let mask = mask.unwrap_or_else(|| panic!("{}: defective image without mask", s.image.display()));
            // Written as 0/255, and non-empty.
            let raw = image::open(s.mask.as_ref().unwrap()).unwrap().to_luma8();
            assert!(raw.pixels().all(|p| p[0] == 0 || p[0] == 255));
            let on = mask.pixels().filter(|p| p[0] > 0).count();
            assert!(on > 0, "{}: empty mask", s.image.display());
            assert!(on < 32 * 32 / 2, "{}: mask covers {on} of 1024 pixels", s.image.display());
            assert!(synth::defects_of(&s.category).unwrap().contains(&s.defect.as_str()));
        } else {
            assert!(mask.is_none() && s.defect == "good");
        }
    }
    // Good images have no mask file at all.
    for cat in synth::category_names() {
        assert!(!dir.path().join(cat).join("ground_truth").join("good").exists());
    }
    let train = Dataset::open(dir.path(), Format::Mvtec, Split::Train, None).unwrap();
    assert_eq!(train.samples.len(), 5);
    assert!(train.samples.iter().all(|s| !s.anomalous));
}

#[test]
fn render_gives_masks_for_defects_only() {
    // Down to the smallest size, every defect finds room and leaves a mark.
    for size in [synth::MIN_SIZE, 48] {
        for cat in synth::category_names() {
            let (good, none) = synth::render(cat, None, size, 5).unwrap();
            assert!(none.is_none());
            assert_eq!(good.dimensions(), (size, size));
            for defect in synth::defects_of(cat).unwrap() {
                for seed in 0..3 {
                    let (img, mask) = synth::render(cat, Some(defect), size, seed).unwrap();
                    let mask = mask.unwrap();
                    assert_eq!(mask.dimensions(), img.dimensions());
                    assert!(mask.pixels().any(|p| p[0] == 255), "{cat}/{defect}: empty mask");
                }
            }
        }
    }
    assert!(synth::render("fabric", Some("bent"), 32, 0).is_err());
    assert!(matches!(synth::render("tyre", None, 32, 0), Err(SynthError::UnknownCategory { .. })));
}

#[test]
fn refuses_foreign_directories_and_regenerates_its_own() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("thesis.tex"), b"precious").unwrap();
    let e = generate(dir.path(), &tiny(0), |_, _| {}).unwrap_err();
    assert!(matches!(e, SynthError::NotEmpty { .. }), "{e:?}");
    assert!(e.to_string().contains(MARKER));
    assert_eq!(fs::read(dir.path().join("thesis.tex")).unwrap(), b"precious");

    // A previous synth output is regenerated, without stale files from a larger run.
    let out = dir.path().join("synth");
    let big = SynthConfig { test_good: 3, ..tiny(0) };
    generate(&out, &big, |_, _| {}).unwrap();
    assert!(out.join("bolt/test/good/002.png").exists());
    generate(&out, &tiny(0), |_, _| {}).unwrap();
    assert!(!out.join("bolt/test/good/002.png").exists());
    let marker = fs::read_to_string(out.join(MARKER)).unwrap();
    assert!(marker.contains("\"complete\": true"), "{marker}");

    let file = dir.path().join("a_file");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(generate(&file, &tiny(0), |_, _| {}), Err(SynthError::NotADirectory { .. })));
}

#[test]
fn bad_configurations_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let e = generate(&out, &SynthConfig { size: 4, ..tiny(0) }, |_, _| {}).unwrap_err();
    assert!(matches!(e, SynthError::Config(_)), "{e:?}");
    let cfg = SynthConfig { categories: Some(vec!["carpet".into()]), ..tiny(0) };
    let e = generate(&out, &cfg, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("carpet") && e.to_string().contains("washer"), "{e}");
    let cfg = SynthConfig { test_good: 0, test_bad_per_defect: 0, ..tiny(0) };
    assert!(generate(&out, &cfg, |_, _| {}).is_err());
    assert_eq!(SynthConfig::default().size, 128);
}
