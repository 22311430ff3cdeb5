//! Value noise on an integer lattice hashed from a seed: smooth, seeded, platform-stable.

use super::rng::splitmix64;

pub(crate) struct Noise {
    seed: u64,
}

impl Noise {
    pub(crate) fn new(seed: u64) -> Noise {
        Noise { seed }
    }

    fn lattice(&self, ix: i32, iy: i32) -> f32 {
        let key = self.seed ^ ((ix as u32 as u64) << 32 | iy as u32 as u64);
        (splitmix64(key) >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Smoothly interpolated noise in [0, 1], one lattice cell per unit.
    pub(crate) fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (ix, iy) = (fx as i32, fy as i32);
        let (tx, ty) = (x - fx, y - fy);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let a = self.lattice(ix, iy);
        let b = self.lattice(ix + 1, iy);
        let c = self.lattice(ix, iy + 1);
        let d = self.lattice(ix + 1, iy + 1);
        let top = a + (b - a) * sx;
        let bottom = c + (d - c) * sx;
        top + (bottom - top) * sy
    }

    /// Fractal sum of `octaves` octaves, normalised to [0, 1].
    pub(crate) fn fbm(&self, x: f32, y: f32, octaves: u32) -> f32 {
        let (mut sum, mut norm, mut amp, mut freq) = (0.0, 0.0, 1.0, 1.0);
        for o in 0..octaves {
            // Offset each octave so the lattice points do not line up.
            sum += amp * self.at(x * freq + o as f32 * 17.3, y * freq - o as f32 * 9.1);
            norm += amp;
            amp *= 0.5;
            freq *= 2.0;
        }
        sum / norm
    }
}
