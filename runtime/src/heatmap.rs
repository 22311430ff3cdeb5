//! What a person looks at: a heatmap overlay (jet colours blended 50% over
//! the image), and the raw map as `.npy` f32 for tools.

use std::io::Cursor;
use std::path::Path;

use crate::atomic::write_atomic;
use image::{ImageFormat, RgbImage};

/// The jet colour of `t` in [0, 1] (blue, cyan, yellow, red); values outside are clamped.
pub fn jet(t: f32) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let channel = |centre: f32| ((1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The overlay of `map` (scores in [0, 1], one per pixel) on `image`.
pub fn overlay(image: &RgbImage, map: &[f32]) -> RgbImage {
    let mut out = image.clone();
    blend(&mut out, map);
    out
}

/// Blends the jet colours of `map` 50% into interleaved RGB8 `pixels` in
/// place (a video frame's row, for instance).
pub fn blend(pixels: &mut [u8], map: &[f32]) {
    for (px, &v) in pixels.chunks_exact_mut(3).zip(map) {
        for (p, c) in px.iter_mut().zip(jet(v)) {
            *p = (u16::from(*p) + u16::from(c)).div_ceil(2) as u8;
        }
    }
}

/// Writes `image` as PNG, whole or not at all.
pub fn write_png(path: &Path, image: &RgbImage) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| std::io::Error::other(format!("{}: cannot encode PNG: {e}", path.display())))?;
    write_atomic(path, &bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: cannot write: {e}", path.display())))
}

/// `map` (`height x width`, row-major) as a NumPy `.npy` file of little-endian f32.
pub fn npy_bytes(map: &[f32], width: usize, height: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({height}, {width}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + map.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in map {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_ends_and_middle() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(f32::NAN), jet(0.0));
        assert_eq!(jet(7.0), jet(1.0));
    }

    #[test]
    fn npy_header_is_aligned() {
        let b = npy_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
        let len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        assert!(std::str::from_utf8(&b[10..10 + len]).unwrap().contains("'shape': (2, 3)"));
        assert_eq!(b.len(), 10 + len + 24);
        assert_eq!(&b[10 + len..10 + len + 4], &1.0f32.to_le_bytes());
    }
}
