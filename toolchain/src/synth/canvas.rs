//! A float RGB canvas and the binary defect mask drawn alongside it.
//!
//! Coordinates: pixel (x, y) has its centre at u = (x + 0.5) / size, v = (y + 0.5) / size,
//! so shapes are described in [0, 1]^2 whatever the image size.

use image::{GrayImage, Luma, Rgb, RgbImage};

use super::rng::Rng;

pub(crate) type Color = [f32; 3];

pub(crate) fn lerp(a: Color, b: Color, t: f32) -> Color {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

pub(crate) fn scale(c: Color, k: f32) -> Color {
    [c[0] * k, c[1] * k, c[2] * k]
}

pub(crate) fn luma(c: Color) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

/// A colour near `base`, each channel moved by up to `amount`.
pub(crate) fn jitter(base: Color, amount: f32, rng: &mut Rng) -> Color {
    let mut out = base;
    for ch in &mut out {
        *ch = (*ch + rng.range(-amount, amount)).clamp(0.0, 1.0);
    }
    out
}

pub(crate) struct Canvas {
    pub(crate) size: u32,
    pub(crate) px: Vec<Color>,
}

impl Canvas {
    pub(crate) fn new(size: u32) -> Canvas {
        Canvas { size, px: vec![[0.0; 3]; (size * size) as usize] }
    }

    /// One pixel, in normalised units.
    pub(crate) fn pixel(&self) -> f32 {
        1.0 / self.size as f32
    }

    pub(crate) fn uv(&self, x: u32, y: u32) -> (f32, f32) {
        let s = self.size as f32;
        ((x as f32 + 0.5) / s, (y as f32 + 0.5) / s)
    }

    pub(crate) fn get(&self, x: u32, y: u32) -> Color {
        self.px[(y * self.size + x) as usize]
    }

    pub(crate) fn set(&mut self, x: u32, y: u32, c: Color) {
        let i = (y * self.size + x) as usize;
        self.px[i] = c;
    }

    /// The colour at normalised (u, v), nearest pixel, clamped to the image.
    pub(crate) fn sample(&self, u: f32, v: f32) -> Color {
        let s = self.size as f32;
        let x = (u * s).floor().clamp(0.0, s - 1.0) as u32;
        let y = (v * s).floor().clamp(0.0, s - 1.0) as u32;
        self.get(x, y)
    }

    pub(crate) fn fill(&mut self, mut f: impl FnMut(f32, f32) -> Color) {
        for y in 0..self.size {
            for x in 0..self.size {
                let (u, v) = self.uv(x, y);
                self.set(x, y, f(u, v));
            }
        }
    }

    /// Pixels whose centres fall in the box [u0, u1] x [v0, v1], clipped to the image.
    pub(crate) fn pixels_in(&self, u0: f32, v0: f32, u1: f32, v1: f32) -> impl Iterator<Item = (u32, u32)> {
        let s = self.size as f32;
        let lo = |t: f32| ((t * s - 0.5).floor().max(0.0) as u32).min(self.size);
        let hi = |t: f32| ((t * s - 0.5).ceil() + 1.0).clamp(0.0, s) as u32;
        let (x0, x1, y0, y1) = (lo(u0), hi(u1), lo(v0), hi(v1));
        (y0..y1).flat_map(move |y| (x0..x1).map(move |x| (x, y)))
    }

    /// Sensor noise on every pixel (does not touch the mask).
    pub(crate) fn add_noise(&mut self, rng: &mut Rng, sigma: f32) {
        for c in &mut self.px {
            let n = rng.normal() * sigma;
            for ch in c.iter_mut() {
                *ch += n * 0.6 + rng.normal() * sigma * 0.4;
            }
        }
    }

    pub(crate) fn to_image(&self) -> RgbImage {
        let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8;
        RgbImage::from_fn(self.size, self.size, |x, y| {
            let c = self.get(x, y);
            Rgb([q(c[0]), q(c[1]), q(c[2])])
        })
    }
}

pub(crate) struct Mask {
    size: u32,
    bits: Vec<bool>,
}

impl Mask {
    pub(crate) fn new(size: u32) -> Mask {
        Mask { size, bits: vec![false; (size * size) as usize] }
    }

    pub(crate) fn set(&mut self, x: u32, y: u32) {
        self.bits[(y * self.size + x) as usize] = true;
    }

    pub(crate) fn get(&self, x: u32, y: u32) -> bool {
        self.bits[(y * self.size + x) as usize]
    }

    pub(crate) fn count(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }

    pub(crate) fn clear(&mut self) {
        self.bits.iter_mut().for_each(|b| *b = false);
    }

    pub(crate) fn to_image(&self) -> GrayImage {
        GrayImage::from_fn(self.size, self.size, |x, y| Luma([if self.get(x, y) { 255 } else { 0 }]))
    }
}
