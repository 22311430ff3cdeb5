//! Texture categories: woven fabric, wood grain and a metal wire grid. Each has its own
//! colour family; per image the rotation, offset, scale, colour and noise vary.

use std::f32::consts::{PI, TAU};

use super::canvas::{jitter, lerp, scale, Canvas, Color, Mask};
use super::defects::{self, everywhere};
use super::noise::Noise;
use super::rng::Rng;

/// Rotates (u, v) about the image centre and shifts it: the texture's own frame.
fn frame(u: f32, v: f32, angle: f32, offset: (f32, f32)) -> (f32, f32) {
    let (du, dv) = (u - 0.5, v - 0.5);
    let (c, s) = (angle.cos(), angle.sin());
    (du * c - dv * s + offset.0, du * s + dv * c + offset.1)
}

fn frac(x: f32) -> f32 {
    x - x.floor()
}

/// A point for a defect, away from the border.
pub(crate) fn spot(rng: &mut Rng) -> (f32, f32) {
    (rng.range(0.2, 0.8), rng.range(0.2, 0.8))
}

// ------------------------------------------------------------------ fabric

pub(crate) fn fabric(c: &mut Canvas, rng: &mut Rng) {
    let angle = rng.range(-0.12, 0.12);
    let offset = (rng.f32(), rng.f32());
    let threads = rng.range(9.0, 13.0);
    let warp = jitter([0.24, 0.34, 0.58], 0.04, rng);
    let weft = lerp(warp, [0.75, 0.75, 0.78], rng.range(0.25, 0.4));
    let noise = Noise::new(rng.next_u64());
    c.fill(|u, v| {
        let (a, b) = frame(u, v, angle, offset);
        let (ta, tb) = (a * threads, b * threads);
        let (i, j) = (ta.floor() as i64, tb.floor() as i64);
        let (fa, fb) = (frac(ta), frac(tb));
        // Plain weave: the vertical (warp) thread is on top on alternate cells.
        let (across, along, colour, fibre) = if (i + j).rem_euclid(2) == 0 {
            (fa, fb, warp, noise.at(a * 90.0, b * 12.0))
        } else {
            (fb, fa, weft, noise.at(a * 12.0, b * 90.0))
        };
        let round = (PI * across).sin().powf(0.6);
        let dip = 0.78 + 0.22 * (PI * along).sin();
        let shade = 0.3 + 0.8 * round * dip;
        scale(colour, shade * (0.88 + 0.24 * fibre))
    });
}

// ------------------------------------------------------------------ wood

pub(crate) fn wood(c: &mut Canvas, rng: &mut Rng) {
    let angle = rng.range(-0.15, 0.15);
    let offset = (rng.range(0.0, 10.0), rng.range(0.0, 10.0));
    let rings = rng.range(6.0, 10.0);
    let warp = rng.range(0.8, 1.3);
    let light = jitter([0.8, 0.6, 0.38], 0.04, rng);
    let dark = jitter([0.5, 0.31, 0.16], 0.03, rng);
    let phase = rng.range(0.0, TAU);
    let noise = Noise::new(rng.next_u64());
    c.fill(|u, v| {
        let (a, b) = frame(u, v, angle, offset);
        let w = noise.fbm(a * 2.5, b * 2.5, 4);
        let t = (b + 0.05 * (a * 4.0 + phase).sin()) * rings + w * warp * 2.0;
        let ring = (0.5 + 0.5 * (TAU * t).sin()).powi(3);
        // Fine fibres run along the grain: stretched noise.
        let fibre = noise.fbm(a * 3.0 + 50.0, t * 25.0, 2);
        lerp(light, dark, (0.75 * ring + 0.35 * fibre).min(1.0))
    });
}

// ------------------------------------------------------------------ grid

/// A woven wire mesh on a dark backdrop.
pub(crate) struct Grid {
    angle: f32,
    offset: (f32, f32),
    period: f32,
    half: f32,
    wire: Color,
    back: Color,
    noise: Noise,
}

impl Grid {
    pub(crate) fn new(rng: &mut Rng) -> Grid {
        let period = 1.0 / rng.range(5.5, 7.5);
        Grid {
            angle: rng.range(-0.1, 0.1),
            offset: (rng.f32(), rng.f32()),
            period,
            half: period * rng.range(0.11, 0.15),
            wire: jitter([0.72, 0.73, 0.76], 0.04, rng),
            back: jitter([0.13, 0.13, 0.14], 0.03, rng),
            noise: Noise::new(rng.next_u64()),
        }
    }

    /// Distance to the nearest vertical and horizontal wire axes, in the grid frame, and
    /// the crossing parity there.
    fn distances(&self, u: f32, v: f32) -> (f32, f32, f32, f32) {
        let (a, b) = frame(u, v, self.angle, self.offset);
        let da = (frac(a / self.period + 0.5) - 0.5).abs() * self.period;
        let db = (frac(b / self.period + 0.5) - 0.5).abs() * self.period;
        (da, db, a, b)
    }

    /// Whether (u, v) is within `margin` of a wire (margin one pixel: its anti-aliased edge).
    fn near_wire(&self, u: f32, v: f32, margin: f32) -> bool {
        let (da, db, _, _) = self.distances(u, v);
        da < self.half + margin || db < self.half + margin
    }

    pub(crate) fn background(&self, u: f32, v: f32) -> Color {
        scale(self.back, 0.8 + 0.5 * self.noise.fbm(u * 4.0, v * 4.0, 3))
    }

    pub(crate) fn colour(&self, u: f32, v: f32, px: f32) -> Color {
        let (da, db, a, b) = self.distances(u, v);
        let cyl = |d: f32| (1.0 - (d / self.half).min(1.0).powi(2)).sqrt();
        let cover = |d: f32| ((self.half - d) / px + 0.5).clamp(0.0, 1.0);
        // Over-under weave: which wire is on top alternates from crossing to crossing.
        let cell = ((a / self.period + 0.5).floor() + (b / self.period + 0.5).floor()) as i64;
        let vertical_on_top = cell.rem_euclid(2) == 0;
        let (sa, sb) = (0.35 + 0.75 * cyl(da), 0.35 + 0.75 * cyl(db));
        let (ca, cb) = (cover(da), cover(db));
        let back = self.background(u, v);
        let (top_s, top_c, low_s, low_c) =
            if vertical_on_top { (sa, ca, sb * 0.75, cb) } else { (sb, cb, sa * 0.75, ca) };
        let lower = lerp(back, scale(self.wire, low_s), low_c);
        lerp(lower, scale(self.wire, top_s), top_c)
    }

    pub(crate) fn draw(&self, c: &mut Canvas) {
        let px = c.pixel();
        c.fill(|u, v| self.colour(u, v, px));
    }

    /// A wire pushed sideways by a smooth local displacement. The mask holds the wire pixels,
    /// in their old or new place, that moved by at least a pixel.
    pub(crate) fn bend(&self, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) {
        let centre = spot(rng);
        let radius = rng.range(0.12, 0.2);
        let heading = rng.range(0.0, TAU);
        let amount = self.period * rng.range(0.3, 0.5);
        let px = c.pixel();
        let boxed: Vec<(u32, u32)> =
            c.pixels_in(centre.0 - radius, centre.1 - radius, centre.0 + radius, centre.1 + radius).collect();
        for (x, y) in boxed {
            let (u, v) = c.uv(x, y);
            let r = (((u - centre.0).powi(2) + (v - centre.1).powi(2)).sqrt() / radius).min(1.0);
            let push = amount * (1.0 - r * r).powi(2);
            let (su, sv) = (u - heading.cos() * push, v - heading.sin() * push);
            if push >= px && (self.near_wire(u, v, px) || self.near_wire(su, sv, px)) {
                c.set(x, y, self.colour(su, sv, px));
                m.set(x, y);
            }
        }
    }

    /// A wire segment between two crossings missing over part of its length.
    pub(crate) fn broken(&self, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) {
        let at = spot(rng);
        let (_, _, a0, b0) = self.distances(at.0, at.1);
        let vertical = rng.chance(0.5);
        let p = self.period;
        // The wire's axis and the segment along it, in the grid frame.
        let (axis, along) = if vertical { ((a0 / p).round() * p, b0) } else { ((b0 / p).round() * p, a0) };
        let seg = (along / p).floor() * p; // the crossing before `along`
                                           // One or two whole segments: shorter gaps are hard to see at small sizes.
        let segments = 1.0 + rng.below(2) as f32;
        let lo = seg + rng.range(0.0, 0.1) * p;
        let hi = seg + segments * p - rng.range(0.0, 0.1) * p;
        let px = c.pixel();
        for y in 0..c.size {
            for x in 0..c.size {
                let (u, v) = c.uv(x, y);
                let (da, db, a, b) = self.distances(u, v);
                let (d_axis, pos, d_other) = if vertical { (da, b, db) } else { (db, a, da) };
                let on_this = d_axis < self.half + px && (if vertical { a } else { b } - axis).abs() < p / 2.0;
                if on_this && d_other >= self.half && pos > lo && pos < hi {
                    c.set(x, y, self.background(u, v));
                    m.set(x, y);
                }
            }
        }
    }
}

/// Generic defects on a texture: anywhere in the image.
pub(crate) fn generic(kind: &str, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) -> bool {
    let at = spot(rng);
    match kind {
        "scratch" => defects::scratch(c, m, rng, &everywhere, at, None),
        "crack" => defects::crack(c, m, rng, &everywhere, at),
        "hole" => defects::hole(c, m, rng, &everywhere, at),
        "stain" => defects::stain(c, m, rng, &everywhere, at),
        "cut_paste" => defects::cut_paste(c, m, rng, &everywhere, at),
        _ => return false,
    }
    true
}
