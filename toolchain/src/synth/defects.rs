//! Defects shared by textures and objects. Each one paints the canvas and sets the mask on
//! exactly the pixels it paints, and only where `region` allows (the object's pixels, or
//! everywhere for textures).

use super::canvas::{lerp, luma, scale, Canvas, Color, Mask};
use super::noise::Noise;
use super::rng::Rng;

pub(crate) type Region<'a> = &'a dyn Fn(f32, f32) -> bool;

pub(crate) fn everywhere(_: f32, _: f32) -> bool {
    true
}

fn dist_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (cx, cy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (cx * cx + cy * cy).sqrt()
}

/// Paints every pixel within `half_width` of the polyline with `paint(old) -> new`.
fn stroke(
    c: &mut Canvas,
    m: &mut Mask,
    region: Region,
    points: &[(f32, f32)],
    half_width: f32,
    paint: &dyn Fn(Color, f32) -> Color,
) {
    for seg in points.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let pad = half_width + c.pixel();
        let boxed: Vec<(u32, u32)> =
            c.pixels_in(a.0.min(b.0) - pad, a.1.min(b.1) - pad, a.0.max(b.0) + pad, a.1.max(b.1) + pad).collect();
        for (x, y) in boxed {
            let p = c.uv(x, y);
            let d = dist_to_segment(p, a, b);
            if d <= half_width && region(p.0, p.1) && !m.get(x, y) {
                let old = c.get(x, y);
                c.set(x, y, paint(old, d / half_width));
                m.set(x, y);
            }
        }
    }
}

/// A thin curved line of lighter (or, on light surfaces, darker) material, in direction
/// `angle` when given, else any.
pub(crate) fn scratch(c: &mut Canvas, m: &mut Mask, rng: &mut Rng, region: Region, at: (f32, f32), angle: Option<f32>) {
    let len = rng.range(0.2, 0.45);
    let any = rng.range(0.0, std::f32::consts::TAU);
    let angle = angle.unwrap_or(any);
    let (dx, dy) = (angle.cos() * len / 2.0, angle.sin() * len / 2.0);
    let bow = rng.range(-0.25, 0.25) * len;
    let (p0, p2) = ((at.0 - dx, at.1 - dy), (at.0 + dx, at.1 + dy));
    let p1 = (at.0 - dy / (len / 2.0) * bow, at.1 + dx / (len / 2.0) * bow);
    let points: Vec<(f32, f32)> = (0..=16)
        .map(|i| {
            let t = i as f32 / 16.0;
            let w = [(1.0 - t) * (1.0 - t), 2.0 * t * (1.0 - t), t * t];
            (w[0] * p0.0 + w[1] * p1.0 + w[2] * p2.0, w[0] * p0.1 + w[1] * p1.1 + w[2] * p2.1)
        })
        .collect();
    let half = (c.pixel() * rng.range(0.7, 1.1)).max(0.0035 * rng.range(0.8, 1.2));
    let light = luma(c.sample(at.0, at.1)) < 0.6;
    stroke(c, m, region, &points, half, &move |old, _| {
        if light {
            lerp(old, [0.95, 0.94, 0.9], 0.7)
        } else {
            scale(old, 0.35)
        }
    });
}

/// A dark branching random walk.
pub(crate) fn crack(c: &mut Canvas, m: &mut Mask, rng: &mut Rng, region: Region, at: (f32, f32)) {
    let step = 0.012;
    let half = (c.pixel() * 0.8).max(0.004);
    let mut walks: Vec<((f32, f32), f32, usize, u32)> =
        vec![(at, rng.range(0.0, std::f32::consts::TAU), rng.below(14) + 18, 0)];
    let mut all: Vec<Vec<(f32, f32)>> = Vec::new();
    while let Some((start, mut heading, steps, depth)) = walks.pop() {
        let mut p = start;
        let mut points = vec![p];
        for _ in 0..steps {
            heading += rng.normal() * 0.35;
            p = (p.0 + heading.cos() * step, p.1 + heading.sin() * step);
            points.push(p);
            if depth < 2 && walks.len() < 6 && rng.chance(0.08) {
                walks.push((p, heading + rng.sign() * rng.range(0.5, 1.1), steps / 2, depth + 1));
            }
        }
        all.push(points);
    }
    for points in all {
        stroke(c, m, region, &points, half, &|old, d| scale(old, 0.15 + 0.25 * d));
    }
}

/// A dark elliptical hole with a frayed rim (the rim is inside the mask).
pub(crate) fn hole(c: &mut Canvas, m: &mut Mask, rng: &mut Rng, region: Region, at: (f32, f32)) {
    let (ra, rb) = (rng.range(0.035, 0.08), rng.range(0.03, 0.07));
    let angle = rng.range(0.0, std::f32::consts::PI);
    let (cos, sin) = (angle.cos(), angle.sin());
    let noise = Noise::new(rng.next_u64());
    let shade = rng.range(0.03, 0.1);
    let r = ra.max(rb) * 1.2;
    let boxed: Vec<(u32, u32)> = c.pixels_in(at.0 - r, at.1 - r, at.0 + r, at.1 + r).collect();
    for (x, y) in boxed {
        let (u, v) = c.uv(x, y);
        let (dx, dy) = (u - at.0, v - at.1);
        let (a, b) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        let wobble = 0.85 + 0.3 * noise.at(a.atan2(b) * 2.0 + 10.0, 0.5);
        let q = ((a / ra).powi(2) + (b / rb).powi(2)).sqrt() / wobble;
        if q < 1.0 && region(u, v) {
            let old = c.get(x, y);
            let new = if q > 0.8 {
                scale(old, 0.55) // frayed edge
            } else {
                let depth = [shade, shade * 0.9, shade * 0.85];
                lerp(depth, scale(old, 0.25), (q / 0.8).powi(4))
            };
            c.set(x, y, new);
            m.set(x, y);
        }
    }
}

const STAINS: [Color; 5] =
    [[0.35, 0.2, 0.07], [0.55, 0.08, 0.08], [0.1, 0.1, 0.08], [0.2, 0.38, 0.12], [0.85, 0.75, 0.2]];

/// A translucent blob of a colour far from the surface's.
pub(crate) fn stain(c: &mut Canvas, m: &mut Mask, rng: &mut Rng, region: Region, at: (f32, f32)) {
    let base = c.sample(at.0, at.1);
    let far: Vec<Color> =
        STAINS.iter().copied().filter(|s| (0..3).map(|i| (s[i] - base[i]).abs()).sum::<f32>() > 0.45).collect();
    let colour = if far.is_empty() { STAINS[rng.below(STAINS.len())] } else { far[rng.below(far.len())] };
    let radius = rng.range(0.05, 0.1);
    let noise = Noise::new(rng.next_u64());
    let r = radius * 1.4;
    let boxed: Vec<(u32, u32)> = c.pixels_in(at.0 - r, at.1 - r, at.0 + r, at.1 + r).collect();
    for (x, y) in boxed {
        let (u, v) = c.uv(x, y);
        let d = ((u - at.0).powi(2) + (v - at.1).powi(2)).sqrt();
        let reach = radius * (0.65 + 0.7 * noise.fbm(u * 12.0, v * 12.0, 3));
        let f = 1.0 - d / reach;
        if f > 0.0 && region(u, v) {
            let alpha = 0.55 + 0.35 * (f * 3.0).min(1.0);
            let old = c.get(x, y);
            c.set(x, y, lerp(old, colour, alpha));
            m.set(x, y);
        }
    }
}

/// A disc copied from elsewhere in the image, rotated and recoloured.
pub(crate) fn cut_paste(c: &mut Canvas, m: &mut Mask, rng: &mut Rng, region: Region, at: (f32, f32)) {
    let radius = rng.range(0.07, 0.12);
    // A source disc that does not overlap the destination.
    let mut src = at;
    for _ in 0..32 {
        src = (rng.range(radius, 1.0 - radius), rng.range(radius, 1.0 - radius));
        if ((src.0 - at.0).powi(2) + (src.1 - at.1).powi(2)).sqrt() > 2.2 * radius {
            break;
        }
    }
    let angle = rng.range(0.6, 2.5) * rng.sign();
    let (cos, sin) = (angle.cos(), angle.sin());
    let mut gain = [1.0f32; 3];
    let strong = rng.below(3);
    for (i, g) in gain.iter_mut().enumerate() {
        *g = if i == strong { rng.range(0.25, 0.4) * rng.sign() + 1.0 } else { rng.range(0.85, 1.15) };
    }
    let snapshot: Vec<Color> = c.px.clone();
    let source = Canvas { size: c.size, px: snapshot };
    let r = radius;
    let boxed: Vec<(u32, u32)> = c.pixels_in(at.0 - r, at.1 - r, at.0 + r, at.1 + r).collect();
    for (x, y) in boxed {
        let (u, v) = c.uv(x, y);
        let (dx, dy) = (u - at.0, v - at.1);
        if (dx * dx + dy * dy).sqrt() < radius && region(u, v) {
            let s = source.sample(src.0 + dx * cos - dy * sin, src.1 + dx * sin + dy * cos);
            c.set(x, y, [s[0] * gain[0], s[1] * gain[1], s[2] * gain[2]]);
            m.set(x, y);
        }
    }
}
