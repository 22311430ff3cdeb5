//! Steady state of the detector (DESIGN.md section 4): after warm-up, a frame
//! makes no heap allocation in this crate's code. tract allocates its own
//! intermediate tensors per run, so the test counts allocations during
//! `score` and during the bare tract run alone, and asserts the difference is
//! zero; the counts themselves are printed (`--nocapture`) for the report.

use std::path::Path;

use afr_runtime::detector::{Detector, DetectorOptions};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::count;

#[test]
fn a_frame_allocates_nothing_in_our_code() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/runtime/model.onnx");
    let (w, h) = (640, 480);
    let frame: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 253) as u8).collect();
    let mut map = vec![0f32; w * h];
    for smoothing in [true, false] {
        let mut det = Detector::load_with(&model, DetectorOptions { smoothing, ..DetectorOptions::default() }).unwrap();
        // Warm-up: the first frame of a size builds its resizer and upsampler.
        det.score(&frame, w, h, 1, &mut map).unwrap();
        const FRAMES: u64 = 20;
        let total = count(|| {
            for i in 0..FRAMES {
                det.score(&frame, w, h, (i % 3) as usize, &mut map).unwrap();
            }
        });
        let tract = count(|| {
            for _ in 0..FRAMES {
                det.run_model_only().unwrap();
            }
        });
        println!(
            "smoothing {smoothing}: {} allocations per frame in score, {} in tract's run alone, {} in ours",
            total as f64 / FRAMES as f64,
            tract as f64 / FRAMES as f64,
            total as i64 - tract as i64
        );
        assert_eq!(total, tract, "score allocates beyond tract's own run");
        // The counter does count: a fresh size is a warm-up again and allocates.
        let mut small = vec![0f32; 10 * 10];
        let fresh = count(|| {
            det.score(&frame[..10 * 10 * 3], 10, 10, 0, &mut small).unwrap();
        });
        assert!(fresh > tract / FRAMES, "a new size should allocate its resizer ({fresh})");
    }
}
