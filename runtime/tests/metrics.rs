//! The metrics against scikit-learn 1.9.1 and anomalib 2.7.0 on the fixtures
//! written by scripts/make_metric_fixtures.py, plus properties of the curves.

use afr_runtime::metrics::{
    aupro, auroc, average_precision, binary_metrics, max_f1, CategoryEvaluator, Metrics, PixelData, RegionLabeller,
    DEFAULT_FPR_LIMIT,
};
use afr_runtime::report::{CategoryReport, Report};
use proptest::prelude::*;
use serde_json::Value;

/// The agreed tolerance (DESIGN.md section 4).
const TOL: f64 = 1e-6;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/metrics/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Scores are stored as integers k meaning k * 2^-bits, exact in f32.
fn scores(v: &Value, bits: i32) -> Vec<f32> {
    let scale = 2f64.powi(-bits);
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let x = k.as_i64().unwrap() as f64 * scale;
            assert_eq!(x as f32 as f64, x, "fixture score not exact in f32");
            x as f32
        })
        .collect()
}

fn expected(v: &Value) -> Option<f64> {
    if v.is_null() {
        None
    } else {
        Some(v.as_f64().unwrap())
    }
}

/// Asserts equal definedness and |got - want| <= TOL; returns the difference.
fn check(case: &str, metric: &str, got: Option<f64>, want: &Value) -> f64 {
    match (got, expected(want)) {
        (None, None) => 0.0,
        (Some(g), Some(w)) => {
            let d = (g - w).abs();
            assert!(d <= TOL, "{case} {metric}: got {g}, reference {w}, difference {d:e}");
            d
        }
        (g, w) => panic!("{case} {metric}: got {g:?}, reference {w:?}"),
    }
}

#[test]
fn image_metrics_equal_sklearn() {
    let doc = fixture("image.json");
    let bits = doc["score_scale_bits"].as_i64().unwrap() as i32;
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut max_diff = 0.0f64;
    let mut nulls = 0;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let s = scores(&c["scores"], bits);
        let l: Vec<bool> = c["labels"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() != 0).collect();
        let m = binary_metrics(&s, &l).unwrap();
        max_diff = max_diff.max(check(name, "auroc", m.auroc, &c["auroc"]));
        max_diff = max_diff.max(check(name, "ap", m.average_precision, &c["ap"]));
        max_diff = max_diff.max(check(name, "max_f1", m.max_f1, &c["max_f1"]));
        // The single-metric functions agree with the combined one.
        assert_eq!(auroc(&s, &l).unwrap(), m.auroc);
        assert_eq!(average_precision(&s, &l).unwrap(), m.average_precision);
        assert_eq!(max_f1(&s, &l).unwrap(), m.max_f1);
        // ... and with the evaluator's image metrics.
        let mut e = CategoryEvaluator::new();
        for (i, (&si, &li)) in s.iter().zip(&l).enumerate() {
            e.add(&format!("{name}/{i}"), si, li, None).unwrap();
        }
        let em = e.finish();
        assert_eq!((em.image_auroc, em.image_ap, em.image_max_f1), (m.auroc, m.average_precision, m.max_f1));
        if m.auroc.is_none() {
            nulls += 1;
        }
    }
    assert_eq!(nulls, 3, "one class normal, one class anomalous, empty");
    eprintln!("image metrics: max |rust - sklearn| = {max_diff:e}");
}

struct PixelCase {
    name: String,
    width: usize,
    height: usize,
    maps: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
}

fn pixel_case(c: &Value, bits: i32) -> PixelCase {
    let width = c["width"].as_u64().unwrap() as usize;
    let height = c["height"].as_u64().unwrap() as usize;
    let maps: Vec<Vec<f32>> = c["maps"].as_array().unwrap().iter().map(|m| scores(m, bits)).collect();
    let masks: Vec<Vec<bool>> = c["masks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rows| {
            let rows = rows.as_array().unwrap();
            assert_eq!(rows.len(), height);
            rows.iter().flat_map(|r| r.as_str().unwrap().chars().map(|ch| ch == '1')).collect()
        })
        .collect();
    for (m, k) in maps.iter().zip(&masks) {
        assert_eq!((m.len(), k.len()), (width * height, width * height));
    }
    PixelCase { name: c["name"].as_str().unwrap().to_string(), width, height, maps, masks }
}

#[test]
fn pixel_metrics_equal_sklearn_and_anomalib() {
    let doc = fixture("pixel.json");
    let bits = doc["score_scale_bits"].as_i64().unwrap() as i32;
    assert_eq!(doc["fpr_limit"].as_f64(), Some(DEFAULT_FPR_LIMIT));
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let (mut max_pixel, mut max_aupro, mut max_aupro_f64) = (0.0f64, 0.0f64, 0.0f64);
    let mut defined_aupro = 0;
    for c in cases {
        let p = pixel_case(c, bits);
        let name = p.name.as_str();
        // Region counts equal OpenCV's 8-connected labelling.
        let mut labeller = RegionLabeller::new();
        let mut out = vec![0u32; p.width * p.height];
        let want_regions: Vec<u64> =
            c["regions_per_image"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        for (i, mask) in p.masks.iter().enumerate() {
            let n = labeller.label(mask, p.width, p.height, &mut out);
            assert_eq!(n as u64, want_regions[i], "{name} image {i}: regions vs OpenCV");
        }

        let flat: Vec<f32> = p.maps.concat();
        let flat_mask: Vec<bool> = p.masks.concat();
        let b = binary_metrics(&flat, &flat_mask).unwrap();
        max_pixel = max_pixel.max(check(name, "pixel_auroc", b.auroc, &c["pixel_auroc"]));
        max_pixel = max_pixel.max(check(name, "pixel_ap", b.average_precision, &c["pixel_ap"]));
        max_pixel = max_pixel.max(check(name, "pixel_max_f1", b.max_f1, &c["pixel_max_f1"]));

        let maps: Vec<&[f32]> = p.maps.iter().map(|m| m.as_slice()).collect();
        let masks: Vec<&[bool]> = p.masks.iter().map(|m| m.as_slice()).collect();
        let a = aupro(&maps, &masks, p.width, p.height, DEFAULT_FPR_LIMIT).unwrap();
        max_aupro = max_aupro.max(check(name, "aupro (anomalib)", a, &c["aupro"]));
        max_aupro_f64 = max_aupro_f64.max(check(name, "aupro (f64 port)", a, &c["aupro_f64"]));
        if a.is_some() {
            defined_aupro += 1;
        }

        // The evaluator, one image at a time, gives the same pixel metrics.
        let mut e = CategoryEvaluator::new();
        for (i, (m, k)) in p.maps.iter().zip(&p.masks).enumerate() {
            let px = PixelData { map: m, mask: k, width: p.width, height: p.height };
            e.add(&format!("{name}/{i}"), 0.0, k.iter().any(|&x| x), Some(px)).unwrap();
        }
        let em = e.finish();
        assert_eq!((em.pixel_auroc, em.pixel_ap, em.pixel_max_f1), (b.auroc, b.average_precision, b.max_f1));
        assert_eq!(em.aupro, a, "{name}: evaluator vs aupro()");
    }
    assert_eq!(defined_aupro, cases.len() - 2, "no_anomaly and all_anomalous are undefined");
    eprintln!(
        "pixel metrics: max |rust - sklearn| = {max_pixel:e}; AUPRO: max |rust - anomalib| = {max_aupro:e}, \
         max |rust - f64 port of anomalib| = {max_aupro_f64:e}"
    );
}

#[test]
fn undefined_cases_are_none_not_zero_or_one() {
    let m = binary_metrics(&[0.2, 0.9, 0.4], &[false; 3]).unwrap();
    assert_eq!((m.auroc, m.average_precision, m.max_f1), (None, None, None));
    let m = binary_metrics(&[0.2, 0.9, 0.4], &[true; 3]).unwrap();
    assert_eq!((m.auroc, m.average_precision, m.max_f1), (None, None, None));
    // A category with only good images and no masks: all seven undefined.
    let mut e = CategoryEvaluator::new();
    e.add("good/000.png", 0.3, false, None).unwrap();
    e.add("good/001.png", 0.4, false, None).unwrap();
    assert_eq!(e.finish(), Metrics::default());
    // Masks all empty: pixel metrics and AUPRO undefined, image ones defined.
    let mut e = CategoryEvaluator::new();
    let map = [0.1f32, 0.5, 0.2, 0.7];
    let px = PixelData { map: &map, mask: &[false; 4], width: 2, height: 2 };
    e.add("a.png", 0.1, false, Some(px)).unwrap();
    e.add("b.png", 0.9, true, Some(px)).unwrap();
    let m = e.finish();
    assert_eq!(m.image_auroc, Some(1.0));
    assert_eq!((m.pixel_auroc, m.pixel_ap, m.pixel_max_f1, m.aupro), (None, None, None, None));
    // No image at all.
    assert_eq!(CategoryEvaluator::new().finish(), Metrics::default());
}

#[test]
fn nan_is_an_error_value() {
    assert!(auroc(&[0.1, f32::NAN], &[false, true]).is_err());
    let mut e = CategoryEvaluator::new();
    let map = [0.1f32, f32::NAN];
    let px = PixelData { map: &map, mask: &[false, true], width: 2, height: 1 };
    let err = e.add("cable/bent_wire/003.png", 0.5, true, Some(px)).unwrap_err();
    assert!(err.to_string().contains("cable/bent_wire/003.png"), "{err}");
}

#[test]
fn report_of_evaluated_categories() {
    let mut cats = std::collections::BTreeMap::new();
    for (name, flip) in [("a", false), ("b", true)] {
        let mut e = CategoryEvaluator::new();
        for i in 0..6 {
            let label = i % 2 == 1;
            let score = if label != flip { 0.8 } else { 0.2 } + i as f32 * 0.01;
            e.add(&format!("{name}/{i}"), score, label, None).unwrap();
        }
        cats.insert(name.to_string(), CategoryReport::own(name, e.finish()));
    }
    let r = Report::new("m", "d", cats);
    assert_eq!(r.categories["a"].metrics.image_auroc, Some(1.0));
    assert_eq!(r.categories["b"].metrics.image_auroc, Some(0.0));
    assert_eq!(r.mean.image_auroc, Some(0.5));
    assert_eq!(r.mean.aupro, None);
    assert!(r.to_markdown().contains("| mean | 50.0 |"));
}

fn samples() -> impl Strategy<Value = (Vec<f32>, Vec<bool>)> {
    // Few distinct values, so ties are common.
    (2usize..80).prop_flat_map(|n| {
        (
            proptest::collection::vec((-20i32..20).prop_map(|k| k as f32 * 0.25), n),
            proptest::collection::vec(any::<bool>(), n),
        )
    })
}

proptest! {
    // Failures print their input; there is no source dir to persist them in.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reversing_scores_gives_one_minus_auroc((s, l) in samples()) {
        let neg: Vec<f32> = s.iter().map(|x| -x).collect();
        match (auroc(&s, &l).unwrap(), auroc(&neg, &l).unwrap()) {
            (Some(a), Some(b)) => prop_assert!((a + b - 1.0).abs() < 1e-12, "{a} + {b}"),
            (None, None) => prop_assert!(l.iter().all(|&x| x) || l.iter().all(|&x| !x)),
            other => prop_assert!(false, "definedness differs: {:?}", other),
        }
    }

    #[test]
    fn monotone_transforms_change_nothing((s, l) in samples()) {
        // Strictly increasing, and exact enough in f32 to keep ties and order.
        let t: Vec<f32> = s.iter().map(|&x| (x * 0.5 + 3.0).powi(3) + 7.0).collect();
        let zero_signed: Vec<f32> = s.iter().map(|&x| if x == 0.0 { -0.0 } else { x }).collect();
        let a = binary_metrics(&s, &l).unwrap();
        prop_assert_eq!(a, binary_metrics(&t, &l).unwrap());
        prop_assert_eq!(a, binary_metrics(&zero_signed, &l).unwrap());
        let w = s.len();
        let pa = aupro(&[&s], &[&l], w, 1, 0.3).unwrap();
        prop_assert_eq!(pa, aupro(&[&t], &[&l], w, 1, 0.3).unwrap());
    }

    #[test]
    fn auroc_equals_the_rank_statistic((s, l) in samples()) {
        // P(score+ > score-) + P(tie) / 2, by brute force over all pairs.
        let (mut wins, mut pairs) = (0.0f64, 0.0f64);
        for (i, &si) in s.iter().enumerate() {
            for (j, &sj) in s.iter().enumerate() {
                if l[i] && !l[j] {
                    pairs += 1.0;
                    wins += if si > sj { 1.0 } else if si == sj { 0.5 } else { 0.0 };
                }
            }
        }
        let a = auroc(&s, &l).unwrap();
        if pairs == 0.0 {
            prop_assert_eq!(a, None);
        } else {
            prop_assert!((a.unwrap() - wins / pairs).abs() < 1e-12);
        }
    }

    #[test]
    fn metrics_lie_in_the_unit_interval((s, l) in samples()) {
        let m = binary_metrics(&s, &l).unwrap();
        let w = s.len();
        let pa = aupro(&[&s], &[&l], w, 1, 0.3).unwrap();
        for v in [m.auroc, m.average_precision, m.max_f1, pa].into_iter().flatten() {
            prop_assert!((0.0..=1.0 + 1e-12).contains(&v), "{v}");
        }
    }
}

/// Scale check, run by hand (`-- --ignored --nocapture`): 20 million pixels
/// through the evaluator, pixel AUROC against the rank statistic counted from
/// a histogram. Prints the time; speed is for benchmarks, not asserted.
#[test]
#[ignore]
fn twenty_million_pixels() {
    let (w, h, n) = (448usize, 448usize, 100usize);
    let levels = 1024u64;
    let mut pos = vec![0u64; levels as usize];
    let mut neg = vec![0u64; levels as usize];
    let mut e = CategoryEvaluator::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut map = vec![0f32; w * h];
    let mut mask = vec![false; w * h];
    let start = std::time::Instant::now();
    for i in 0..n {
        for (j, (m, k)) in map.iter_mut().zip(mask.iter_mut()).enumerate() {
            // Blobs of anomalous pixels, scored higher on average.
            *k = (j / w / 32 + j % w / 32 + i) % 7 == 0;
            let r = next();
            let level = if *k { (r % levels + levels / 3).min(levels - 1) } else { r % levels };
            *m = level as f32 / levels as f32;
            if *k {
                pos[level as usize] += 1
            } else {
                neg[level as usize] += 1
            }
        }
        let px = PixelData { map: &map, mask: &mask, width: w, height: h };
        e.add(&format!("img{i}"), i as f32, i % 2 == 0, Some(px)).unwrap();
    }
    let added = start.elapsed();
    let m = e.finish();
    let total = start.elapsed();
    let (p, q): (u64, u64) = (pos.iter().sum(), neg.iter().sum());
    let mut below = 0u64;
    let mut wins = 0.0f64;
    for k in 0..levels as usize {
        wins += pos[k] as f64 * (below as f64 + neg[k] as f64 / 2.0);
        below += neg[k];
    }
    let want = wins / (p as f64 * q as f64);
    let got = m.pixel_auroc.unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    assert!(m.aupro.is_some_and(|a| a > 0.0 && a < 1.0));
    eprintln!("{} pixels: add {added:?}, all seven metrics {:?}; {m:?}", w * h * n, total - added);
}
