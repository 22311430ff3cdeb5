//! How firmware embeds the runtime: a camera-style loop where every buffer is
//! allocated once before the loop, each frame is scored into caller-owned
//! memory, and results go into fixed-capacity (`heapless`) storage. After the
//! first frame (warm-up) the loop allocates nothing in afr-runtime's code;
//! tract's own per-run tensors are the only heap traffic.
//!
//! It doubles as the soak measurement: on Linux it prints the process's
//! resident memory (from /proc/self/statm) after frame 100 and after the last
//! frame, so that a long run shows whether memory grows
//! (`scripts/soak.sh`: 10,000 frames of the tiny model).
//!
//!     cargo run --release --example embedded_loop -- MODEL.onnx [CATEGORY] [FRAMES]

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use afr_runtime::detector::{Detector, DetectorOptions};
use afr_runtime::heapless;

const WIDTH: usize = 320;
const HEIGHT: usize = 240;
/// Image score at or above which a frame raises an alarm.
const ALARM_AT: f32 = 0.5;

/// One alarm: which frame, its score, and where its map peaked.
#[derive(Debug, Clone, Copy)]
struct Alarm {
    frame: u32,
    score: f32,
    peak_x: u16,
    peak_y: u16,
}

/// Stands in for the camera driver: writes a frame into the caller's buffer
/// (a textured background with a bright blob that moves and sometimes appears).
fn capture(frame: u32, rgb: &mut [u8]) {
    let (bx, by) = ((frame as usize * 7) % WIDTH, (frame as usize * 3) % HEIGHT);
    let blob = frame % 5 == 4;
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let base = 40 + ((x * 13 + y * 7) % 40) as u8;
            let inside = blob && x.abs_diff(bx) < 20 && y.abs_diff(by) < 20;
            let v = if inside { 250 } else { base };
            rgb[(y * WIDTH + x) * 3..][..3].copy_from_slice(&[v, v, v.saturating_sub(10)]);
        }
    }
}

/// Position of the largest map value.
fn peak(map: &[f32]) -> (u16, u16) {
    let mut best = 0;
    for (i, v) in map.iter().enumerate() {
        if *v > map[best] {
            best = i;
        }
    }
    ((best % WIDTH) as u16, (best / WIDTH) as u16)
}

/// The frame after which the first resident-memory reading is taken (warm-up done).
const RSS_AT: u32 = 100;

/// The system's page size from the auxiliary vector (`AT_PAGESZ`), Linux only.
fn page_size() -> Option<u64> {
    const AT_PAGESZ: u64 = 6;
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open("/proc/self/auxv").ok()?.read(&mut buf).ok()?;
    buf[..n].chunks_exact(16).find_map(|pair| {
        let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        if key == AT_PAGESZ {
            Some(u64::from_ne_bytes(pair[8..].try_into().ok()?))
        } else {
            None
        }
    })
}

/// Resident bytes (/proc/self/statm's second field), read into a stack
/// buffer so that the measurement itself does not allocate.
fn resident_bytes(page: u64) -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = std::fs::File::open("/proc/self/statm").ok()?.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    Some(text.split_whitespace().nth(1)?.parse::<u64>().ok()? * page)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(args.next().ok_or("usage: embedded_loop MODEL.onnx [CATEGORY] [FRAMES]")?);
    let category_name = args.next().unwrap_or_else(|| "object".to_string());
    let frames: u32 = args.next().map(|f| f.parse()).transpose()?.unwrap_or(50);

    // Everything allocated up front.
    let mut detector = Detector::load_with(&model, DetectorOptions::default())?;
    let category =
        detector.category_or_default(&category_name).ok_or("the model has neither this category nor `object`")?;
    detector.prepare(WIDTH, HEIGHT)?;
    let mut rgb = vec![0u8; WIDTH * HEIGHT * 3];
    let mut map = vec![0f32; WIDTH * HEIGHT];
    let mut alarms: heapless::Vec<Alarm, 16> = heapless::Vec::new();
    let mut dropped = 0u32;
    let page = page_size();
    let mut rss_warm = None;

    let start = Instant::now();
    for frame in 0..frames {
        capture(frame, &mut rgb);
        let scores = detector.score(&rgb, WIDTH, HEIGHT, category, &mut map)?;
        if scores.image >= ALARM_AT {
            let (peak_x, peak_y) = peak(&map);
            // A full log keeps its oldest entries; count what did not fit.
            if alarms.push(Alarm { frame, score: scores.image, peak_x, peak_y }).is_err() {
                dropped += 1;
            }
        }
        if frame + 1 == RSS_AT {
            rss_warm = page.and_then(resident_bytes);
        }
    }
    let rss_end = page.and_then(resident_bytes);
    let elapsed = start.elapsed();
    println!(
        "{frames} frames of {WIDTH}x{HEIGHT} in {:.1} ms ({:.2} ms/frame), category {}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / frames.max(1) as f64,
        detector.info().categories[category]
    );
    for a in &alarms {
        println!("alarm: frame {} score {:.4} peak at ({}, {})", a.frame, a.score, a.peak_x, a.peak_y);
    }
    if dropped > 0 {
        println!("{dropped} more alarms did not fit the log");
    }
    if let (Some(warm), Some(end)) = (rss_warm, rss_end) {
        println!(
            "resident memory: {} KiB after frame {RSS_AT}, {} KiB after frame {frames} (growth {} KiB)",
            warm / 1024,
            end / 1024,
            (end as i64 - warm as i64) / 1024
        );
    }
    Ok(())
}
