//! The C API called as C calls it: results equal the Rust detector's, and
//! every bad argument (NULL, bad model, wrong sizes) returns its code and a
//! message naming the problem.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use afr::*;
use afr_runtime::detector::Detector;
use common::{fixture, frame_rgb, last_error, open};

const W: usize = 40;
const H: usize = 30;

fn frame(data: &[u8], stride: usize, format: AfrPixelFormat) -> AfrFrame {
    AfrFrame { data: data.as_ptr(), len: data.len(), width: W as u32, height: H as u32, stride, format: format as u32 }
}

fn score(d: *mut AfrDetector, f: &AfrFrame, category: usize, map: &mut [f32]) -> Result<AfrScores, AfrStatus> {
    let mut out = AfrScores { image: f32::NAN, map_max: f32::NAN };
    match unsafe { afr_score(d, f, category, map.as_mut_ptr(), map.len(), &mut out) } {
        AfrStatus::Ok => Ok(out),
        status => Err(status),
    }
}

fn text(p: *const c_char) -> String {
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

#[test]
fn scores_equal_the_rust_detector_for_every_pixel_format() {
    let d = open(&fixture("model.onnx")).unwrap();
    let rgb = frame_rgb(W, H);
    let mut map = vec![0f32; W * H];
    assert_eq!(unsafe { afr_prepare(d, W as u32, H as u32) }, AfrStatus::Ok);
    let got = score(d, &frame(&rgb, 0, AfrPixelFormat::Rgb8), 1, &mut map).unwrap();

    let mut rust = Detector::load(&fixture("model.onnx")).unwrap();
    let mut want_map = vec![0f32; W * H];
    let want = rust.score(&rgb, W, H, 1, &mut want_map).unwrap();
    assert_eq!((got.image, got.map_max), (want.image, want.map_max));
    assert_eq!(map, want_map);

    // BGR, and RGB with padded rows, are the same pixels.
    let bgr: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let mut other = vec![0f32; W * H];
    assert_eq!(score(d, &frame(&bgr, 0, AfrPixelFormat::Bgr8), 1, &mut other).unwrap(), got);
    assert_eq!(other, map);
    let stride = W * 3 + 8;
    let padded: Vec<u8> = rgb.chunks_exact(W * 3).flat_map(|row| row.iter().copied().chain([7; 8])).collect();
    assert_eq!(score(d, &frame(&padded, stride, AfrPixelFormat::Rgb8), 1, &mut other).unwrap(), got);

    // NV12 of a grey frame (Y 126, U = V = 128) is RGB 128 everywhere.
    let mut nv12 = vec![126u8; W * H];
    nv12.extend(std::iter::repeat_n(128u8, W * H / 2));
    let grey = vec![128u8; W * H * 3];
    let want = rust.score(&grey, W, H, 0, &mut want_map).unwrap();
    let got = score(d, &frame(&nv12, 0, AfrPixelFormat::Nv12), 0, &mut other).unwrap();
    assert_eq!((got.image, got.map_max), (want.image, want.map_max));

    // Without a map, the scores alone.
    let mut only = AfrScores { image: 0.0, map_max: 0.0 };
    let f = frame(&rgb, 0, AfrPixelFormat::Rgb8);
    assert_eq!(unsafe { afr_score(d, &f, 1, ptr::null_mut(), 0, &mut only) }, AfrStatus::Ok);
    assert_eq!(only.image, rust.score(&rgb, W, H, 1, &mut want_map).unwrap().image);

    // Smoothing off changes the map, as in the Rust API.
    assert_eq!(unsafe { afr_set_smoothing(d, false) }, AfrStatus::Ok);
    rust.set_smoothing(false);
    score(d, &f, 1, &mut other).unwrap();
    rust.score(&rgb, W, H, 1, &mut want_map).unwrap();
    assert_eq!(other, want_map);
    assert_ne!(other, map);
    unsafe { afr_close(d) };
}

#[test]
fn info_and_categories() {
    let bytes = std::fs::read(fixture("model.onnx")).unwrap();
    let mut d = ptr::null_mut();
    assert_eq!(unsafe { afr_open_bytes(bytes.as_ptr(), bytes.len(), &mut d) }, AfrStatus::Ok);
    drop(bytes); // the caller's bytes are only read during the call
    let mut info = std::mem::MaybeUninit::<AfrInfo>::uninit();
    assert_eq!(unsafe { afr_info(d, info.as_mut_ptr()) }, AfrStatus::Ok);
    let info = unsafe { info.assume_init() };
    assert_eq!((info.input_size, info.category_count, info.grid_width, info.grid_height), (32, 3, 4, 4));
    assert_eq!(text(info.precision), "fp32");
    let mut names = Vec::new();
    for i in 0..info.category_count as usize {
        let mut name = ptr::null();
        assert_eq!(unsafe { afr_category_name(d, i, &mut name) }, AfrStatus::Ok);
        names.push(text(name));
    }
    assert_eq!(names, ["a", "b", "object"]);
    let mut name = ptr::null();
    assert_eq!(unsafe { afr_category_name(d, 3, &mut name) }, AfrStatus::UnknownCategory);
    assert!(last_error().contains("category index 3 is out of range: the model has 3 categories"));

    let index = |name: &str, fallback: bool| {
        let c = CString::new(name).unwrap();
        let mut i = usize::MAX;
        let status = unsafe { afr_category_index(d, c.as_ptr(), fallback, &mut i) };
        (status, i)
    };
    assert_eq!(index("b", false), (AfrStatus::Ok, 1));
    assert_eq!(index("zipper", true), (AfrStatus::Ok, 2));
    assert_eq!(index("zipper", false).0, AfrStatus::UnknownCategory);
    assert_eq!(last_error(), "afr_category_index: model bytes: no category \"zipper\" (the model has a, b, object)");

    let mut len = 0;
    assert_eq!(unsafe { afr_map_len(W as u32, H as u32, &mut len) }, AfrStatus::Ok);
    assert_eq!(len, W * H);
    assert_eq!(unsafe { afr_map_len(0, 5, &mut len) }, AfrStatus::BadSize);
    assert_eq!(text(afr_version()), env!("CARGO_PKG_VERSION"));
    unsafe { afr_close(d) };
}

#[test]
fn bad_models_are_refused_with_the_file_named() {
    let (status, message) = open(&fixture("missing.onnx")).unwrap_err();
    assert_eq!(status, AfrStatus::Io);
    assert!(message.contains("missing.onnx: cannot read the model"), "{message}");
    let (status, message) = open(&fixture("not_ours.onnx")).unwrap_err();
    assert_eq!(status, AfrStatus::BadModel);
    assert!(message.contains("not_ours.onnx: not an AFR model"), "{message}");
    let (status, message) = open(&fixture("future_version.onnx")).unwrap_err();
    assert_eq!(status, AfrStatus::BadModel);
    assert!(message.contains("future_version.onnx: afr.format_version"), "{message}");
    let garbage = b"\xff\xff\xff\xff not protobuf";
    let mut d = ptr::null_mut();
    assert_eq!(unsafe { afr_open_bytes(garbage.as_ptr(), garbage.len(), &mut d) }, AfrStatus::BadModel);
    assert!(d.is_null());
    assert!(last_error().starts_with("model bytes: not a valid ONNX file"), "{}", last_error());
    // A model whose outputs are not finite fails per frame, naming the file.
    let d = open(&fixture("nan.onnx")).unwrap();
    let rgb = frame_rgb(W, H);
    let mut map = vec![0f32; W * H];
    assert_eq!(score(d, &frame(&rgb, 0, AfrPixelFormat::Rgb8), 0, &mut map), Err(AfrStatus::Inference));
    assert!(last_error().contains("nan.onnx: the model produced a non-finite"), "{}", last_error());
    unsafe { afr_close(d) };
}

#[test]
fn null_pointers_are_refused() {
    let path = CString::new(fixture("model.onnx").to_str().unwrap()).unwrap();
    let mut d = ptr::null_mut();
    assert_eq!(unsafe { afr_open(ptr::null(), &mut d) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_open: path is NULL");
    assert_eq!(unsafe { afr_open(path.as_ptr(), ptr::null_mut()) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_open: out is NULL");
    assert_eq!(unsafe { afr_open_bytes(ptr::null(), 10, &mut d) }, AfrStatus::NullPointer);
    let rgb = frame_rgb(W, H);
    let f = frame(&rgb, 0, AfrPixelFormat::Rgb8);
    let mut out = AfrScores { image: 0.0, map_max: 0.0 };
    let mut map = vec![0f32; W * H];
    let (m, n) = (map.as_mut_ptr(), map.len());
    assert_eq!(unsafe { afr_score(ptr::null_mut(), &f, 0, m, n, &mut out) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_score: detector is NULL");
    assert_eq!(unsafe { afr_info(ptr::null(), ptr::null_mut()) }, AfrStatus::NullPointer);
    assert_eq!(unsafe { afr_prepare(ptr::null_mut(), 4, 4) }, AfrStatus::NullPointer);
    unsafe { afr_close(ptr::null_mut()) };

    let d = open(&fixture("model.onnx")).unwrap();
    assert_eq!(unsafe { afr_score(d, ptr::null(), 0, m, n, &mut out) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_score: frame is NULL");
    assert_eq!(unsafe { afr_score(d, &f, 0, m, n, ptr::null_mut()) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_score: scores is NULL");
    assert_eq!(unsafe { afr_score(d, &f, 0, ptr::null_mut(), n, &mut out) }, AfrStatus::NullPointer);
    let no_data = AfrFrame { data: ptr::null(), ..f };
    assert_eq!(unsafe { afr_score(d, &no_data, 0, m, n, &mut out) }, AfrStatus::NullPointer);
    assert_eq!(last_error(), "afr_score: frame->data is NULL");
    assert_eq!(unsafe { afr_info(d, ptr::null_mut()) }, AfrStatus::NullPointer);
    assert_eq!(unsafe { afr_category_index(d, ptr::null(), true, &mut 0) }, AfrStatus::NullPointer);
    // The handle still works after all that.
    assert_eq!(score(d, &f, 0, &mut map).map(|_| ()), Ok(()));
    unsafe { afr_close(d) };
}

#[test]
fn wrong_sizes_and_categories_are_refused() {
    let d = open(&fixture("model.onnx")).unwrap();
    let rgb = frame_rgb(W, H);
    let mut map = vec![0f32; W * H];
    let short = &rgb[..rgb.len() - 1];
    assert_eq!(score(d, &frame(short, 0, AfrPixelFormat::Rgb8), 0, &mut map), Err(AfrStatus::BufferSize));
    assert_eq!(last_error(), "afr_score: frame buffer has 3599 bytes, a 40x30 RGB8 frame with stride 120 needs 3600");
    let mut small_map = vec![0f32; 10];
    assert_eq!(score(d, &frame(&rgb, 0, AfrPixelFormat::Rgb8), 0, &mut small_map), Err(AfrStatus::BufferSize));
    assert_eq!(last_error(), "afr_score: map buffer has 10 elements, expected 1200 (40x30)");
    let zero = AfrFrame { width: 0, ..frame(&rgb, 0, AfrPixelFormat::Rgb8) };
    assert_eq!(score(d, &zero, 0, &mut map), Err(AfrStatus::BadSize));
    assert!(last_error().contains("frame size 0x30 is invalid"), "{}", last_error());
    assert_eq!(score(d, &frame(&rgb, 60, AfrPixelFormat::Rgb8), 0, &mut map), Err(AfrStatus::InvalidArgument));
    let unknown = AfrFrame { format: 9, ..frame(&rgb, 0, AfrPixelFormat::Rgb8) };
    assert_eq!(score(d, &unknown, 0, &mut map), Err(AfrStatus::InvalidArgument));
    assert_eq!(last_error(), "afr_score: unknown pixel format 9");
    assert_eq!(score(d, &frame(&rgb, 0, AfrPixelFormat::Rgb8), 3, &mut map), Err(AfrStatus::UnknownCategory));
    assert_eq!(last_error(), "afr_score: category index 3 is out of range: the model has 3 categories");
    assert_eq!(unsafe { afr_prepare(d, 0, 0) }, AfrStatus::BadSize);
    assert_eq!(score(d, &frame(&rgb, 0, AfrPixelFormat::Rgb8), 2, &mut map).map(|_| ()), Ok(()));
    unsafe { afr_close(d) };
}
