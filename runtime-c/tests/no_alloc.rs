//! A frame scored through the C API allocates exactly what the Rust API's
//! `Detector::score` does (tract's own per-run tensors, see
//! runtime/tests/no_alloc.rs): nothing more in any pixel format, once the
//! first frame of the size has been scored.

mod common;

#[path = "../../runtime/tests/support/counting_alloc.rs"]
mod counting_alloc;

use afr::{afr_close, afr_score, AfrFrame, AfrPixelFormat, AfrScores, AfrStatus};
use afr_runtime::detector::Detector;
use common::{fixture, frame_rgb, open};
use counting_alloc::count;

const W: usize = 320;
const H: usize = 240;
const FRAMES: u64 = 10;

#[test]
fn a_frame_allocates_what_the_rust_api_does() {
    let rgb = frame_rgb(W, H);
    let mut rust = Detector::load(&fixture("model.onnx")).unwrap();
    let mut map = vec![0f32; W * H];
    rust.score(&rgb, W, H, 1, &mut map).unwrap();
    let per_frame = count(|| {
        for _ in 0..FRAMES {
            rust.score(&rgb, W, H, 1, &mut map).unwrap();
        }
    });

    let bgr: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let padded: Vec<u8> = rgb.chunks_exact(W * 3).flat_map(|row| row.iter().copied().chain([0; 16])).collect();
    let mut nv12 = vec![100u8; W * H];
    nv12.extend(std::iter::repeat_n(128u8, W * H / 2));
    let cases = [
        ("RGB8", &rgb, 0, AfrPixelFormat::Rgb8, true),
        ("RGB8 padded", &padded, W * 3 + 16, AfrPixelFormat::Rgb8, true),
        ("BGR8", &bgr, 0, AfrPixelFormat::Bgr8, true),
        ("NV12", &nv12, 0, AfrPixelFormat::Nv12, true),
        ("RGB8, no map", &rgb, 0, AfrPixelFormat::Rgb8, false),
    ];
    for (name, data, stride, format, with_map) in cases {
        let d = open(&fixture("model.onnx")).unwrap();
        let frame = AfrFrame {
            data: data.as_ptr(),
            len: data.len(),
            width: W as u32,
            height: H as u32,
            stride,
            format: format as u32,
        };
        let (map_ptr, map_len) = if with_map { (map.as_mut_ptr(), map.len()) } else { (std::ptr::null_mut(), 0) };
        let mut scores = AfrScores { image: 0.0, map_max: 0.0 };
        let mut score = || assert_eq!(unsafe { afr_score(d, &frame, 1, map_ptr, map_len, &mut scores) }, AfrStatus::Ok);
        score(); // warm-up: the size's resizer, upsampler and conversion buffer
        let c_api = count(|| (0..FRAMES).for_each(|_| score()));
        println!("{name}: {} allocations per frame, the Rust API {}", c_api / FRAMES, per_frame / FRAMES);
        assert_eq!(c_api, per_frame, "{name}");
        unsafe { afr_close(d) };
    }
}
