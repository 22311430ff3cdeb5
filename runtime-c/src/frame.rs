//! Frames as C passes them (pixel format, stride) and their conversion to the
//! tight RGB8 the detector reads.

use afr_runtime::image_io::MAX_DIMENSION;

use crate::status::{AfrStatus, Failure};

/// Pixel layouts `afr_score` reads (the `format` field of `AfrFrame`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfrPixelFormat {
    /// 3 bytes per pixel: red, green, blue.
    Rgb8 = 0,
    /// 3 bytes per pixel: blue, green, red (OpenCV's order).
    Bgr8 = 1,
    /// A full-resolution Y plane of `height` rows, then an interleaved U,V
    /// plane of (height + 1) / 2 rows, both `stride` bytes per row; BT.601
    /// limited range (what cameras and V4L2 give).
    Nv12 = 2,
}

impl AfrPixelFormat {
    fn from_c(value: u32) -> Option<AfrPixelFormat> {
        [AfrPixelFormat::Rgb8, AfrPixelFormat::Bgr8, AfrPixelFormat::Nv12].into_iter().find(|f| *f as u32 == value)
    }

    fn name(self) -> &'static str {
        match self {
            AfrPixelFormat::Rgb8 => "RGB8",
            AfrPixelFormat::Bgr8 => "BGR8",
            AfrPixelFormat::Nv12 => "NV12",
        }
    }

    /// Bytes a row of `width` pixels needs.
    fn row_bytes(self, width: usize) -> usize {
        match self {
            AfrPixelFormat::Rgb8 | AfrPixelFormat::Bgr8 => width * 3,
            // The U,V row covers two pixels per pair, so an odd width rounds up.
            AfrPixelFormat::Nv12 => width.div_ceil(2) * 2,
        }
    }

    fn rows(self, height: usize) -> usize {
        match self {
            AfrPixelFormat::Rgb8 | AfrPixelFormat::Bgr8 => height,
            AfrPixelFormat::Nv12 => height + height.div_ceil(2),
        }
    }
}

/// One frame in caller-owned memory.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AfrFrame {
    /// The pixels (read only during the call).
    pub data: *const u8,
    /// Bytes readable at `data`: at least `stride * rows` (rows: `height`,
    /// or `height + (height + 1) / 2` for NV12).
    pub len: usize,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next; 0 for rows packed without padding.
    pub stride: usize,
    /// An `AfrPixelFormat` value.
    pub format: u32,
}

/// A frame's checked geometry.
pub(crate) struct Layout {
    pub format: AfrPixelFormat,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl Layout {
    /// Checks the frame's format, size, stride and length against each other.
    pub fn of(frame: &AfrFrame) -> Result<Layout, Failure> {
        let format = AfrPixelFormat::from_c(frame.format).ok_or_else(|| {
            Failure::new(AfrStatus::InvalidArgument, format!("afr_score: unknown pixel format {}", frame.format))
        })?;
        let (width, height) = (frame.width as usize, frame.height as usize);
        if !(1..=MAX_DIMENSION).contains(&frame.width) || !(1..=MAX_DIMENSION).contains(&frame.height) {
            return Err(Failure::new(
                AfrStatus::BadSize,
                format!("afr_score: frame size {width}x{height} is invalid: each side must be in 1..={MAX_DIMENSION}"),
            ));
        }
        let row = format.row_bytes(width);
        let stride = if frame.stride == 0 { row } else { frame.stride };
        if stride < row {
            return Err(Failure::new(
                AfrStatus::InvalidArgument,
                format!(
                    "afr_score: stride {stride} is shorter than a {} row of {width} pixels ({row} bytes)",
                    format.name()
                ),
            ));
        }
        let needed = stride * format.rows(height);
        if frame.len < needed {
            return Err(Failure::new(
                AfrStatus::BufferSize,
                format!(
                    "afr_score: frame buffer has {} bytes, a {width}x{height} {} frame with stride {stride} needs {needed}",
                    frame.len,
                    format.name()
                ),
            ));
        }
        Ok(Layout { format, width, height, stride })
    }

    /// The frame as tight RGB8: `data` itself when it already is, else
    /// converted into `scratch` (which grows only for a larger frame).
    pub fn rgb8<'a>(&self, data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let (w, h, stride) = (self.width, self.height, self.stride);
        let tight = w * h * 3;
        if self.format == AfrPixelFormat::Rgb8 && stride == w * 3 {
            return &data[..tight];
        }
        scratch.resize(tight, 0);
        match self.format {
            AfrPixelFormat::Rgb8 => {
                for (src, dst) in data.chunks(stride).zip(scratch.chunks_exact_mut(w * 3)) {
                    dst.copy_from_slice(&src[..w * 3]);
                }
            }
            AfrPixelFormat::Bgr8 => {
                for (src, dst) in data.chunks(stride).zip(scratch.chunks_exact_mut(w * 3)) {
                    for (s, d) in src[..w * 3].chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
                        d.copy_from_slice(&[s[2], s[1], s[0]]);
                    }
                }
            }
            AfrPixelFormat::Nv12 => nv12_to_rgb(data, w, h, stride, scratch),
        }
        &scratch[..tight]
    }
}

fn nv12_to_rgb(data: &[u8], w: usize, h: usize, stride: usize, out: &mut [u8]) {
    let (luma, chroma) = data.split_at(stride * h);
    for y in 0..h {
        let y_row = &luma[y * stride..][..w];
        let uv_row = &chroma[(y / 2) * stride..];
        for (x, (&l, px)) in y_row.iter().zip(out[y * w * 3..][..w * 3].chunks_exact_mut(3)).enumerate() {
            let (u, v) = (uv_row[x / 2 * 2], uv_row[x / 2 * 2 + 1]);
            px.copy_from_slice(&bt601(l, u, v));
        }
    }
}

/// BT.601 limited-range YUV to RGB, in the integer form of the standard.
fn bt601(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let (d, e) = (i32::from(u) - 128, i32::from(v) - 128);
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [clip(c + 409 * e), clip(c - 100 * d - 208 * e), clip(c + 516 * d)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], width: u32, height: u32, stride: usize, format: AfrPixelFormat) -> AfrFrame {
        AfrFrame { data: data.as_ptr(), len: data.len(), width, height, stride, format: format as u32 }
    }

    #[test]
    fn bgr_and_padded_rows_become_tight_rgb() {
        // 2x2, rows padded to 8 bytes.
        let bgr = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0];
        let f = frame(&bgr, 2, 2, 8, AfrPixelFormat::Bgr8);
        let mut scratch = Vec::new();
        let rgb = Layout::of(&f).unwrap().rgb8(&bgr, &mut scratch).to_vec();
        assert_eq!(rgb, [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
        let f = frame(&bgr, 2, 2, 8, AfrPixelFormat::Rgb8);
        let rgb = Layout::of(&f).unwrap().rgb8(&bgr, &mut scratch).to_vec();
        assert_eq!(rgb, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn nv12_grey_and_primaries() {
        // Limited range: Y 16 is black, 235 white; U = V = 128 is grey.
        assert_eq!(bt601(16, 128, 128), [0, 0, 0]);
        assert_eq!(bt601(235, 128, 128), [255, 255, 255]);
        assert_eq!(bt601(126, 128, 128), [128, 128, 128]);
        // BT.601 red (R'G'B' 255,0,0) is Y 81, U 90, V 240.
        let [r, g, b] = bt601(81, 90, 240);
        assert!(r >= 254 && g <= 1 && b <= 1, "{r} {g} {b}");
        // A 3x3 frame: odd sides round the chroma plane up (2 rows of 4 bytes).
        let mut nv12 = vec![126u8; 4 * 3];
        nv12.extend_from_slice(&[128; 4 * 2]);
        let f = frame(&nv12, 3, 3, 4, AfrPixelFormat::Nv12);
        let mut scratch = Vec::new();
        let rgb = Layout::of(&f).unwrap().rgb8(&nv12, &mut scratch).to_vec();
        assert_eq!(rgb, vec![128; 27]);
    }

    #[test]
    fn bad_geometry_is_refused() {
        let data = [0u8; 12];
        let status = |f: AfrFrame| Layout::of(&f).err().map(|e| (e.status, e.message));
        assert!(status(frame(&data, 2, 2, 0, AfrPixelFormat::Rgb8)).is_none());
        let (s, m) = status(frame(&data[..11], 2, 2, 0, AfrPixelFormat::Rgb8)).unwrap();
        assert_eq!(s, AfrStatus::BufferSize);
        assert!(m.contains("has 11 bytes, a 2x2 RGB8 frame with stride 6 needs 12"), "{m}");
        let (s, _) = status(frame(&data, 0, 2, 0, AfrPixelFormat::Rgb8)).unwrap();
        assert_eq!(s, AfrStatus::BadSize);
        let (s, m) = status(frame(&data, 2, 1, 4, AfrPixelFormat::Rgb8)).unwrap();
        assert_eq!(s, AfrStatus::InvalidArgument);
        assert!(m.contains("stride 4"), "{m}");
        let mut bad = frame(&data, 2, 1, 0, AfrPixelFormat::Rgb8);
        bad.format = 7;
        assert_eq!(status(bad).unwrap().0, AfrStatus::InvalidArgument);
        assert!(status(frame(&data, 2, 2, 0, AfrPixelFormat::Nv12)).is_none());
    }
}
