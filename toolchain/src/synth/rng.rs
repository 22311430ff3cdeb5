//! Seeded randomness whose values do not depend on the platform or on `rand`'s
//! distribution code: ChaCha8 words turned into numbers by plain arithmetic here.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone)]
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in [0, 1), 24 bits.
    pub(crate) fn f32(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }

    /// Uniform in 0..n (n > 0); the modulo bias is below 2^-32 for the small n used here.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f32) -> bool {
        self.f32() < p
    }

    /// -1 or 1.
    pub(crate) fn sign(&mut self) -> f32 {
        if self.chance(0.5) {
            -1.0
        } else {
            1.0
        }
    }

    /// Roughly standard normal (Irwin-Hall of four uniforms, rescaled): no libm involved.
    pub(crate) fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.f32()).sum();
        (s - 2.0) * 3.0f32.sqrt()
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for one image, from the run's seed and the image's identity, so an image does not
/// depend on which other categories or how many other images are generated.
pub(crate) fn derive_seed(seed: u64, parts: &[&str], index: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&seed.to_le_bytes());
    for p in parts {
        eat(p.as_bytes());
        eat(&[0xff]);
    }
    eat(&index.to_le_bytes());
    splitmix64(h)
}
