//! Properties over random inputs: whatever frame, size and category a
//! camera produces, the detector's scores are finite fractions and its map
//! has the requested shape; upsampling (with or without smoothing) never
//! leaves the range of its input; AUROC ignores any strictly increasing
//! rescaling of the scores. (The metrics' other properties, AUROC(-s) =
//! 1 - AUROC(s) and every metric in [0, 1], are in tests/metrics.rs.)

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use afr_runtime::detector::{Detector, DetectorOptions};
use afr_runtime::metrics::{auroc, average_precision, max_f1};
use afr_runtime::postprocess::Upsampler;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime").join(name)
}

fn config(cases: u32) -> Config {
    // Failures print their input; there is no source dir to persist them in.
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Deterministic bytes from `seed` (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn any_frame_scores_a_finite_fraction_into_a_map_of_the_requested_shape() {
    let det = RefCell::new(Detector::load(&fixture("model.onnx")).unwrap());
    let sizes = (1usize..48, 1usize..48, 1usize..48, 1usize..48);
    let strategy = (sizes, 0usize..3, any::<u64>(), any::<bool>());
    let mut runner = TestRunner::new(config(96));
    runner
        .run(&strategy, |((w, h, mw, mh), category, seed, smoothing)| {
            let mut det = det.borrow_mut();
            det.set_smoothing(smoothing);
            let rgb = noise(seed, w * h * 3);
            let mut map = vec![f32::NAN; mw * mh];
            let scores = det.score_to(&rgb, w, h, category, &mut map, (mw, mh)).unwrap();
            prop_assert!(scores.image.is_finite() && (0.0..=1.0).contains(&scores.image), "{}", scores.image);
            let grid = det.patch_map();
            let (lo, hi) = grid.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let slack = 1e-5;
            for &v in &map {
                prop_assert!(v.is_finite() && v >= lo - slack && v <= hi + slack, "{v} outside [{lo}, {hi}]");
                prop_assert!((0.0..=1.0).contains(&v), "{v}");
            }
            prop_assert_eq!(scores.map_max, map.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            // A buffer of any other length is an error, never a panic or a partial write.
            let mut short = vec![0f32; mw * mh - 1];
            prop_assert!(det.score_to(&rgb, w, h, category, &mut short, (mw, mh)).is_err());
            Ok(())
        })
        .unwrap();
}

#[test]
fn options_default_to_checked_weights_on_one_thread() {
    let o = DetectorOptions::default();
    assert_eq!((o.smoothing, o.threads, o.check_weights), (true, 1, true));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn upsampling_stays_within_the_input_range(
        (gw, gh) in (1usize..9, 1usize..9),
        (w, h) in (1usize..60, 1usize..60),
        sigma in prop_oneof![Just(0.0f32), 0.1f32..6.0],
        seed in any::<u64>(),
    ) {
        let grid: Vec<f32> = noise(seed, gw * gh).iter().map(|&b| b as f32 / 12.0 - 10.0).collect();
        let up = Upsampler::new((gw, gh), (w, h), sigma);
        prop_assert_eq!(up.size(), (w, h));
        let mut out = vec![f32::NAN; w * h];
        let mut scratch = vec![0f32; up.scratch_len()];
        up.run(&grid, &mut out, &mut scratch);
        let (lo, hi) = grid.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        // Convex combinations, up to f32 rounding of the weights.
        let slack = 1e-5 * (1.0 + lo.abs().max(hi.abs()));
        for &v in &out {
            prop_assert!(v.is_finite() && v >= lo - slack && v <= hi + slack, "{} outside [{}, {}]", v, lo, hi);
        }
    }

    #[test]
    fn auroc_ap_and_max_f1_ignore_any_strictly_increasing_rescaling(
        pairs in proptest::collection::vec((0u8..40, any::<bool>()), 2..120),
        steps in proptest::collection::vec(0.001f32..5.0, 40),
        offset in -100f32..100.0,
    ) {
        let (levels, labels): (Vec<u8>, Vec<bool>) = pairs.into_iter().unzip();
        let scores: Vec<f32> = levels.iter().map(|&k| k as f32).collect();
        // A random strictly increasing map of the 40 levels: cumulative positive steps.
        let mut table = Vec::with_capacity(steps.len());
        let mut acc = offset;
        for s in &steps {
            acc += s;
            table.push(acc);
        }
        let mapped: Vec<f32> = levels.iter().map(|&k| table[k as usize]).collect();
        prop_assume!(table.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(auroc(&scores, &labels).unwrap(), auroc(&mapped, &labels).unwrap());
        prop_assert_eq!(average_precision(&scores, &labels).unwrap(), average_precision(&mapped, &labels).unwrap());
        prop_assert_eq!(max_f1(&scores, &labels).unwrap(), max_f1(&mapped, &labels).unwrap());
        for v in [max_f1(&mapped, &labels).unwrap(), average_precision(&mapped, &labels).unwrap()].into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&v), "{}", v);
        }
    }
}
