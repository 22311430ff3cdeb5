//! The one preprocessing of AFR-CLIP, shared by training and inference:
//! resize to S x S without keeping the aspect ratio (bicubic, antialiased
//! when shrinking, as PIL's `Image.resize(BICUBIC)` that the peers use),
//! then CLIP's mean and standard deviation. A resize that differed between
//! training and inference would be a silent accuracy bug.
//!
//! Deviation from PIL: PIL rounds to 8 bits between its horizontal and
//! vertical passes and at the end; we keep f32 throughout.

/// OpenAI CLIP's normalisation.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
/// torchvision's ImageNet normalisation (the SP ResNet's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Per-channel `(scale, shift)` that turns the resizer's CLIP-normalised
/// planes into planes normalised with `mean` and `std`; `None` when those
/// are CLIP's. `x_model = (v - m) / s` with `v = x_clip * s_clip + m_clip`.
pub fn renormalisation(mean: &[f32; 3], std: &[f32; 3]) -> Option<[(f32, f32); 3]> {
    (*mean != CLIP_MEAN || *std != CLIP_STD)
        .then(|| std::array::from_fn(|c| (CLIP_STD[c] / std[c], (CLIP_MEAN[c] - mean[c]) / std[c])))
}

/// Applies [`renormalisation`]'s affine map to planar RGB `pixels` in place.
pub fn renormalise(pixels: &mut [f32], affine: &[(f32, f32); 3]) {
    let plane = pixels.len() / 3;
    for (c, (a, b)) in affine.iter().enumerate() {
        pixels[c * plane..(c + 1) * plane].iter_mut().for_each(|v| *v = *v * a + b);
    }
}

/// Precomputed taps of a separable resampling from one size to another:
/// built once per (source size, target size), then used per frame without
/// allocating.
#[derive(Debug, Clone)]
pub struct Resizer {
    src: (usize, usize),
    dst: (usize, usize),
    horizontal: Taps,
    vertical: Taps,
}

#[derive(Debug, Clone)]
struct Taps {
    /// Per output index: first source index and number of taps.
    spans: Vec<(usize, usize)>,
    /// `max_taps` weights per output index.
    weights: Vec<f32>,
    max_taps: usize,
}

/// PIL's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

impl Taps {
    /// As PIL's `precompute_coeffs`: the kernel is stretched by the scale when
    /// shrinking (antialiasing), and the weights of each output sum to one.
    fn new(in_n: usize, out_n: usize) -> Self {
        let scale = in_n as f64 / out_n as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        let max_taps = support.ceil() as usize * 2 + 1;
        let mut spans = Vec::with_capacity(out_n);
        let mut weights = vec![0f32; out_n * max_taps];
        for o in 0..out_n {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((centre + support + 0.5).floor() as usize).min(in_n);
            let n = hi - lo;
            let w: Vec<f64> = (lo..hi).map(|i| bicubic((i as f64 - centre + 0.5) / filter_scale)).collect();
            let total: f64 = w.iter().sum();
            for (k, wk) in w.iter().enumerate() {
                weights[o * max_taps + k] = if total != 0.0 { (wk / total) as f32 } else { 0.0 };
            }
            spans.push((lo, n));
        }
        Self { spans, weights, max_taps }
    }
}

impl Resizer {
    /// From `src` (width, height) to `dst` (width, height).
    pub fn new(src: (usize, usize), dst: (usize, usize)) -> Self {
        Self { src, dst, horizontal: Taps::new(src.0, dst.0), vertical: Taps::new(src.1, dst.1) }
    }

    pub fn src(&self) -> (usize, usize) {
        self.src
    }

    pub fn dst(&self) -> (usize, usize) {
        self.dst
    }

    /// Scratch length `resize_normalize` needs.
    pub fn scratch_len(&self) -> usize {
        self.dst.0 * self.src.1 * 3
    }

    /// Interleaved RGB8 (`src` size) -> planar CLIP-normalised f32 `[3, H, W]`
    /// at `dst` size, in `out` (length `3 * dst.0 * dst.1`), using `scratch`
    /// (length [`Self::scratch_len`]). Allocates nothing.
    pub fn resize_normalize(&self, rgb: &[u8], out: &mut [f32], scratch: &mut [f32]) {
        let (sw, sh) = self.src;
        let (dw, dh) = self.dst;
        assert_eq!(rgb.len(), sw * sh * 3, "source buffer size");
        assert_eq!(out.len(), dw * dh * 3, "output buffer size");
        assert_eq!(scratch.len(), self.scratch_len(), "scratch size");
        // Horizontal pass: [sh, dw, 3] interleaved.
        let h = &self.horizontal;
        for y in 0..sh {
            let row = &rgb[y * sw * 3..][..sw * 3];
            for (x, &(lo, n)) in h.spans.iter().enumerate() {
                let w = &h.weights[x * h.max_taps..][..n];
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    let px = &row[(lo + k) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += wk * px[c] as f32;
                    }
                }
                scratch[(y * dw + x) * 3..][..3].copy_from_slice(&acc);
            }
        }
        // Vertical pass into planar output, then normalise.
        let v = &self.vertical;
        let plane = dw * dh;
        for (y, &(lo, n)) in v.spans.iter().enumerate() {
            let w = &v.weights[y * v.max_taps..][..n];
            for x in 0..dw {
                let mut acc = [0f32; 3];
                for (k, &wk) in w.iter().enumerate() {
                    let px = &scratch[((lo + k) * dw + x) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += wk * px[c];
                    }
                }
                for c in 0..3 {
                    let v = (acc[c] / 255.0).clamp(0.0, 1.0);
                    out[c * plane + y * dw + x] = (v - CLIP_MEAN[c]) / CLIP_STD[c];
                }
            }
        }
    }

    /// Convenience for training and tools: allocates its output.
    pub fn run(&self, rgb: &[u8]) -> Vec<f32> {
        let mut out = vec![0f32; self.dst.0 * self.dst.1 * 3];
        let mut scratch = vec![0f32; self.scratch_len()];
        self.resize_normalize(rgb, &mut out, &mut scratch);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renormalisation_maps_clip_planes_to_another_mean_and_std() {
        assert_eq!(renormalisation(&CLIP_MEAN, &CLIP_STD), None);
        let affine = renormalisation(&IMAGENET_MEAN, &IMAGENET_STD).unwrap();
        // One pixel value v = 0.7 per channel, CLIP-normalised, then mapped.
        let mut planes: Vec<f32> = (0..3).map(|c| (0.7 - CLIP_MEAN[c]) / CLIP_STD[c]).collect();
        renormalise(&mut planes, &affine);
        for c in 0..3 {
            let want = (0.7 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!((planes[c] - want).abs() < 1e-6, "channel {c}: {} vs {want}", planes[c]);
        }
    }

    #[test]
    fn a_flat_image_stays_flat_at_any_size() {
        let rgb: Vec<u8> = [200u8, 100, 50].repeat(37 * 23);
        for dst in [(64, 64), (10, 7), (100, 50)] {
            let out = Resizer::new((37, 23), dst).run(&rgb);
            let plane = dst.0 * dst.1;
            for c in 0..3 {
                let want = ([200.0, 100.0, 50.0][c] / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
                assert!(out[c * plane..(c + 1) * plane].iter().all(|v| (v - want).abs() < 1e-5));
            }
        }
    }

    #[test]
    fn same_size_is_the_identity_up_to_normalisation() {
        let rgb: Vec<u8> = (0..8 * 5 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let out = Resizer::new((8, 5), (8, 5)).run(&rgb);
        for y in 0..5 {
            for x in 0..8 {
                for c in 0..3 {
                    let want = (rgb[(y * 8 + x) * 3 + c] as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
                    assert!((out[c * 40 + y * 8 + x] - want).abs() < 1e-5);
                }
            }
        }
    }
}
