//! Steady state of the detector (DESIGN.md section 4): after warm-up, a frame
//! makes no heap allocation in this crate's code. tract allocates its own
//! intermediate tensors per run, so the test counts allocations during
//! `score` and during the bare tract run alone, and asserts the difference is
//! zero; the counts themselves are printed (`--nocapture`) for the report.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use afr_runtime::detector::{Detector, DetectorOptions};

struct Counting;

thread_local! {
    // Counting is per thread: the test harness's own threads stay out of it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made on this thread by `f`.
fn count(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

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
