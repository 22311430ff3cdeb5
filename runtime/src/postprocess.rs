//! From the model's patch-resolution map to a map the size of the caller's
//! image: bilinear upsampling (PyTorch's `align_corners=False`, Eq. 14) and
//! optional Gaussian smoothing as the peers evaluate (scipy's
//! `gaussian_filter`, `mode="reflect"`, `truncate=4`). Training uses the same
//! bilinear weights, as matrices, so that its loss sees what inference sees.

/// For each output index: `(i0, i1, w1)`, the two source indices and the
/// weight of the second (`1 - w1` goes to the first), as PyTorch computes
/// `align_corners=False` bilinear sampling without antialiasing.
pub fn bilinear_taps(in_n: usize, out_n: usize) -> Vec<(usize, usize, f32)> {
    let scale = in_n as f64 / out_n as f64;
    (0..out_n)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(in_n - 1);
            let i1 = (i0 + 1).min(in_n - 1);
            (i0, i1, (src - i0 as f64) as f32)
        })
        .collect()
}

/// Precomputed upsampling and smoothing from a `grid_w x grid_h` map to
/// `width x height`; per frame it allocates nothing.
#[derive(Debug, Clone)]
pub struct Upsampler {
    grid: (usize, usize),
    size: (usize, usize),
    cols: Vec<(usize, usize, f32)>,
    rows: Vec<(usize, usize, f32)>,
    kernel: Vec<f32>,
}

impl Upsampler {
    /// `sigma` in output pixels; 0 turns smoothing off.
    pub fn new(grid: (usize, usize), size: (usize, usize), sigma: f32) -> Self {
        Self {
            grid,
            size,
            cols: bilinear_taps(grid.0, size.0),
            rows: bilinear_taps(grid.1, size.1),
            kernel: gaussian_kernel(sigma),
        }
    }

    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Scratch length [`Self::run`] needs (smoothing only).
    pub fn scratch_len(&self) -> usize {
        if self.kernel.len() > 1 {
            self.size.0 * self.size.1
        } else {
            0
        }
    }

    /// `map` (`grid_h * grid_w`, row-major) -> `out` (`height * width`).
    pub fn run(&self, map: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        let (gw, gh) = self.grid;
        let (w, h) = self.size;
        assert_eq!(map.len(), gw * gh, "map size");
        assert_eq!(out.len(), w * h, "output size");
        for (y, &(r0, r1, fy)) in self.rows.iter().enumerate() {
            let (a, b) = (&map[r0 * gw..][..gw], &map[r1 * gw..][..gw]);
            for (x, &(c0, c1, fx)) in self.cols.iter().enumerate() {
                let top = a[c0] + (a[c1] - a[c0]) * fx;
                let bottom = b[c0] + (b[c1] - b[c0]) * fx;
                out[y * w + x] = top + (bottom - top) * fy;
            }
        }
        if self.kernel.len() > 1 {
            assert_eq!(scratch.len(), w * h, "scratch size");
            gaussian_pass(out, scratch, w, h, &self.kernel, true);
            gaussian_pass(scratch, out, w, h, &self.kernel, false);
        }
    }
}

/// The smoothing sigma for an input of `size` pixels: 4 px at 518, scaled.
pub fn default_sigma(size: usize) -> f32 {
    4.0 * size as f32 / 518.0
}

/// scipy's 1-D Gaussian weights: radius `round(4 sigma)`, normalised.
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let radius = (4.0 * sigma as f64 + 0.5) as i64;
    let w: Vec<f64> = (-radius..=radius).map(|i| (-0.5 * (i as f64 / sigma as f64).powi(2)).exp()).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|v| (v / total) as f32).collect()
}

/// scipy's `reflect` mode: `d c b a | a b c d | d c b a`.
fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

fn gaussian_pass(src: &[f32], dst: &mut [f32], w: usize, h: usize, k: &[f32], along_x: bool) {
    let r = (k.len() / 2) as i64;
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0f32;
            for (j, &kj) in k.iter().enumerate() {
                let o = j as i64 - r;
                let (sx, sy) = if along_x { (reflect(x as i64 + o, w), y) } else { (x, reflect(y as i64 + o, h)) };
                acc += kj * src[sy * w + sx];
            }
            dst[y * w + x] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_pytorch_align_corners_false() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1., 2., 3.]]]]), size=(1, 8),
        //     mode="bilinear", align_corners=False)
        // -> [0.00, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.00]
        let up = Upsampler::new((4, 1), (8, 1), 0.0);
        let mut out = vec![0f32; 8];
        up.run(&[0., 1., 2., 3.], &mut out, &mut []);
        let want = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
        assert!(out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn smoothing_keeps_mass_and_constants() {
        let up = Upsampler::new((2, 2), (16, 12), 2.0);
        let mut out = vec![0f32; 16 * 12];
        let mut scratch = vec![0f32; up.scratch_len()];
        up.run(&[0.5; 4], &mut out, &mut scratch);
        assert!(out.iter().all(|v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn smoothing_equals_scipy_gaussian_filter() {
        // scipy 1.x: gaussian_filter1d(x, sigma, mode="reflect") (truncate 4).
        let cases: [(&[f32], f32, &[f32]); 2] = [
            (&[0., 0., 1., 0., 0.], 1.0, &[0.05842299, 0.24210528, 0.39894347, 0.24210528, 0.05842299]),
            (&[1., 0., 0., 0., 0., 0.], 1.5, &[0.47893179, 0.3223087, 0.14533552, 0.04359175, 0.0086256, 0.00120664]),
        ];
        for (x, sigma, want) in cases {
            let mut d = vec![0f32; x.len()];
            gaussian_pass(x, &mut d, x.len(), 1, &gaussian_kernel(sigma), true);
            assert!(d.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{d:?}");
        }
    }
}
