//! Image and mask decoding with limits.
//!
//! Every image the runtime or the toolchain reads from disk comes through here, so that
//! untrusted files are decoded under the same limits and land in the same pixel format.
//!
//! - Limits: width and height at most [`MAX_DIMENSION`] (16384) pixels each, at most
//!   [`MAX_PIXELS`] (40 megapixels) in all, and at most [`MAX_ALLOC_BYTES`] (512 MiB)
//!   allocated by the decoder. A file over any limit is refused with
//!   [`ImageError::TooLarge`] from its header, before its pixels are decoded.
//! - The format is guessed from the file's first bytes (a `.png` that is really a JPEG still
//!   decodes), falling back to the extension. A JPEG without its end marker is reported as
//!   truncated (the JPEG decoder itself would fill the missing part with grey).
//! - Output of [`load_rgb8`]: 8-bit RGB. Grayscale is replicated to the three channels; an
//!   alpha channel (RGBA, LA) is dropped, not composited over any background; 16-bit samples
//!   are rounded to 8 bits (`(v + 128) / 257`); palette images are expanded.
//! - Output of [`load_mask`]: one byte per pixel, 255 where any colour channel of the file is
//!   non-zero, 0 elsewhere. Masks are not always 0/255 (VisA's hold small class indices), and a
//!   16-bit mask value of 1 is anomalous too, so the test is made on the raw samples before any
//!   conversion to 8 bits.

use std::io::{Cursor, ErrorKind};
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageFormat, ImageReader, Limits, RgbImage};

/// Largest accepted width and largest accepted height, in pixels.
pub const MAX_DIMENSION: u32 = 16384;
/// Largest allocation the decoder may make for one image, in bytes (512 MiB).
pub const MAX_ALLOC_BYTES: u64 = 512 * 1024 * 1024;
/// Most pixels in one image or frame (40 megapixels: a 7300 x 5500 frame;
/// scoring one at the limit takes seconds, not minutes).
pub const MAX_PIXELS: u64 = 40_000_000;

/// Why an image or mask could not be used. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: file not found")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: image data is truncated (the file ends early)")]
    Truncated { path: PathBuf },
    #[error("{path}: not a valid image: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: unsupported image format: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error(
        "{path}: image too large: {detail} (limits: {MAX_DIMENSION} pixels a side, {} megapixels, \
         {} MiB of decoder memory)",
        MAX_PIXELS / 1_000_000,
        MAX_ALLOC_BYTES / (1024 * 1024)
    )]
    TooLarge { path: PathBuf, detail: String },
    #[error(
        "mask {mask} is {mask_width}x{mask_height} but its image {image} is \
         {image_width}x{image_height}"
    )]
    MaskSize { image: PathBuf, image_width: u32, image_height: u32, mask: PathBuf, mask_width: u32, mask_height: u32 },
}

/// The decoder limits applied to every file (see the module documentation).
pub fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_ALLOC_BYTES);
    limits
}

/// Decodes `path` into 8-bit RGB under the limits.
pub fn load_rgb8(path: &Path) -> Result<RgbImage, ImageError> {
    Ok(decode(path)?.to_rgb8())
}

/// Decodes a ground-truth mask: 255 where any colour sample is non-zero, else 0.
pub fn load_mask(path: &Path) -> Result<GrayImage, ImageError> {
    let image = decode(path)?;
    let (width, height) = (image.width(), image.height());
    let data = match &image {
        DynamicImage::ImageLuma8(b) => binarize(b.as_raw(), 1, 1),
        DynamicImage::ImageLumaA8(b) => binarize(b.as_raw(), 2, 1),
        DynamicImage::ImageRgb8(b) => binarize(b.as_raw(), 3, 3),
        DynamicImage::ImageRgba8(b) => binarize(b.as_raw(), 4, 3),
        DynamicImage::ImageLuma16(b) => binarize(b.as_raw(), 1, 1),
        DynamicImage::ImageLumaA16(b) => binarize(b.as_raw(), 2, 1),
        DynamicImage::ImageRgb16(b) => binarize(b.as_raw(), 3, 3),
        DynamicImage::ImageRgba16(b) => binarize(b.as_raw(), 4, 3),
        // Float and any future layouts: f32 keeps every non-zero sample non-zero.
        other => binarize(other.to_rgb32f().as_raw(), 3, 3),
    };
    // The buffer length is width * height by construction.
    GrayImage::from_raw(width, height, data).ok_or_else(|| ImageError::Corrupt {
        path: path.to_path_buf(),
        detail: "mask buffer does not match its dimensions".into(),
    })
}

/// A mask resized to `size x size` (triangle filter) and thresholded at 0.5:
/// how training and evaluation compare maps with ground truth.
pub fn resize_mask(mask: &GrayImage, size: usize) -> Vec<bool> {
    image::imageops::resize(mask, size as u32, size as u32, image::imageops::FilterType::Triangle)
        .as_raw()
        .iter()
        .map(|&v| v >= 128)
        .collect()
}

/// Reads only the header of `path` and returns (width, height), under the same limits.
pub fn dimensions(path: &Path) -> Result<(u32, u32), ImageError> {
    let (width, height) = reader(path)?.into_dimensions().map_err(|e| classify(path, e))?;
    check_dimensions(path, width, height)?;
    Ok((width, height))
}

/// Errors when a mask's size differs from its image's; the message names both files.
pub fn check_mask_size(
    image: &Path,
    image_size: (u32, u32),
    mask: &Path,
    mask_size: (u32, u32),
) -> Result<(), ImageError> {
    if image_size == mask_size {
        return Ok(());
    }
    Err(ImageError::MaskSize {
        image: image.to_path_buf(),
        image_width: image_size.0,
        image_height: image_size.1,
        mask: mask.to_path_buf(),
        mask_width: mask_size.0,
        mask_height: mask_size.1,
    })
}

/// Loads an image and, when given, its mask, checking that both have the same size.
pub fn load_pair(image: &Path, mask: Option<&Path>) -> Result<(RgbImage, Option<GrayImage>), ImageError> {
    let rgb = load_rgb8(image)?;
    let mask = match mask {
        Some(mask_path) => {
            let m = load_mask(mask_path)?;
            check_mask_size(image, rgb.dimensions(), mask_path, m.dimensions())?;
            Some(m)
        }
        None => None,
    };
    Ok((rgb, mask))
}

fn binarize<T: Copy + PartialEq + Default>(raw: &[T], stride: usize, colour: usize) -> Vec<u8> {
    let zero = T::default();
    raw.chunks_exact(stride).map(|px| if px[..colour].iter().any(|&v| v != zero) { 255 } else { 0 }).collect()
}

fn reader(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(ImageError::Unreadable {
            path: path.to_path_buf(),
            source: std::io::Error::other("is a directory"),
        });
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty { path: path.to_path_buf() });
    }
    let mut reader =
        ImageReader::open(path).map_err(|e| io_error(path, e))?.with_guessed_format().map_err(|e| io_error(path, e))?;
    reader.limits(limits());
    Ok(reader)
}

fn decode(path: &Path) -> Result<DynamicImage, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_file() && meta.len() > MAX_ALLOC_BYTES {
        return Err(ImageError::TooLarge { path: path.to_path_buf(), detail: format!("file is {} bytes", meta.len()) });
    }
    // Validates the path (missing, directory, empty) the same way as the header reader.
    drop(reader(path)?);
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let mut reader = ImageReader::new(Cursor::new(&bytes[..])).with_guessed_format().map_err(|e| io_error(path, e))?;
    if reader.format().is_none() {
        if let Ok(format) = ImageFormat::from_path(path) {
            reader.set_format(format);
        }
    }
    // The JPEG decoder fills a cut-off scan with grey instead of failing: check the end
    // marker ourselves.
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(ImageError::Truncated { path: path.to_path_buf() });
    }
    // The size from the header first: a valid file of huge dimensions is
    // refused before its pixels are decoded.
    if let Some(format) = reader.format() {
        let mut header = ImageReader::with_format(Cursor::new(&bytes[..]), format);
        header.limits(limits());
        let (width, height) = header.into_dimensions().map_err(|e| classify(path, e))?;
        check_dimensions(path, width, height)?;
    }
    reader.limits(limits());
    let image = reader.decode().map_err(|e| classify(path, e))?;
    check_dimensions(path, image.width(), image.height())?;
    Ok(image)
}

/// Whether an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Inside
/// entropy-coded data an FF byte is always followed by 00 or a restart marker, so the end
/// marker cannot appear there by accident.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Why a `width x height` image or frame is refused, `None` when it is
/// within [`MAX_DIMENSION`] a side and [`MAX_PIXELS`] in all. Checked before
/// anything of that size is allocated.
pub fn frame_size_problem(width: u64, height: u64) -> Option<String> {
    let max = u64::from(MAX_DIMENSION);
    if width == 0 || height == 0 {
        Some("it has no pixels".into())
    } else if width > max || height > max {
        Some(format!("a side is over the {max}-pixel limit"))
    } else if width * height > MAX_PIXELS {
        Some(format!(
            "{:.1} megapixels, over the {}-megapixel limit",
            (width * height) as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        ))
    } else {
        None
    }
}

fn check_dimensions(path: &Path, width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("image has no pixels ({width}x{height})"),
        });
    }
    if frame_size_problem(width.into(), height.into()).is_some() {
        return Err(ImageError::TooLarge { path: path.to_path_buf(), detail: format!("{width}x{height}") });
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> ImageError {
    match e.kind() {
        ErrorKind::NotFound => ImageError::Missing { path: path.to_path_buf() },
        ErrorKind::UnexpectedEof => ImageError::Truncated { path: path.to_path_buf() },
        _ => ImageError::Unreadable { path: path.to_path_buf(), source: e },
    }
}

/// Maps the decoder's error onto the cases a user can act on.
fn classify(path: &Path, e: image::ImageError) -> ImageError {
    let path_buf = path.to_path_buf();
    match e {
        image::ImageError::IoError(io) => io_error(path, io),
        image::ImageError::Limits(l) => ImageError::TooLarge { path: path_buf, detail: l.to_string() },
        image::ImageError::Unsupported(u) => ImageError::Unsupported { path: path_buf, detail: u.to_string() },
        image::ImageError::Decoding(d) => {
            let detail = d.to_string();
            // Decoders report a short file in their own words rather than as an io error.
            let lower = detail.to_ascii_lowercase();
            if lower.contains("unexpected end")
                || lower.contains("unexpectedeof")
                || lower.contains("unexpected eof")
                || lower.contains("truncated")
                || lower.contains("ended early")
            {
                ImageError::Truncated { path: path_buf }
            } else {
                ImageError::Corrupt { path: path_buf, detail }
            }
        }
        other => ImageError::Corrupt { path: path_buf, detail: other.to_string() },
    }
}
