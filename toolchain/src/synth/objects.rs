//! Object categories: a round washer and a hex bolt seen from the side, on a plain backdrop,
//! placed, turned and coloured a little differently in every image.

use std::f32::consts::{PI, TAU};

use super::canvas::{jitter, lerp, scale, Canvas, Color, Mask};
use super::defects;
use super::noise::Noise;
use super::rng::Rng;

fn backdrop(rng: &mut Rng, base: Color) -> (Color, Noise, f32) {
    (jitter(base, 0.04, rng), Noise::new(rng.next_u64()), rng.range(0.0, TAU))
}

fn backdrop_at(colour: Color, noise: &Noise, light: f32, u: f32, v: f32) -> Color {
    let gradient = 0.06 * ((u - 0.5) * light.cos() + (v - 0.5) * light.sin());
    scale(colour, 0.92 + gradient + 0.12 * noise.fbm(u * 5.0, v * 5.0, 3))
}

/// Picks a point of the object (by rejection over most of the image).
fn spot_on(rng: &mut Rng, inside: &dyn Fn(f32, f32) -> bool) -> (f32, f32) {
    for _ in 0..256 {
        let p = (rng.range(0.1, 0.9), rng.range(0.1, 0.9));
        if inside(p.0, p.1) {
            return p;
        }
    }
    (0.5, 0.5)
}

// ------------------------------------------------------------------ washer

pub(crate) struct Washer {
    centre: (f32, f32),
    outer: f32,
    inner: f32,
    light: f32,
    metal: Color,
    back: Color,
    noise: Noise,
    grain: f32,
}

impl Washer {
    pub(crate) fn new(rng: &mut Rng) -> Washer {
        let outer = rng.range(0.3, 0.35);
        let (back, noise, light) = backdrop(rng, [0.2, 0.22, 0.25]);
        Washer {
            centre: (0.5 + rng.range(-0.05, 0.05), 0.5 + rng.range(-0.05, 0.05)),
            outer,
            inner: outer * rng.range(0.4, 0.47),
            light,
            metal: jitter([0.66, 0.66, 0.64], 0.04, rng),
            back,
            noise,
            grain: rng.range(0.0, TAU),
        }
    }

    fn polar(&self, u: f32, v: f32) -> (f32, f32) {
        let (du, dv) = (u - self.centre.0, v - self.centre.1);
        ((du * du + dv * dv).sqrt(), dv.atan2(du))
    }

    pub(crate) fn inside(&self, u: f32, v: f32) -> bool {
        let (d, _) = self.polar(u, v);
        d > self.inner && d < self.outer
    }

    fn background(&self, u: f32, v: f32) -> Color {
        let back = backdrop_at(self.back, &self.noise, self.light, u, v);
        // Soft shadow cast away from the light.
        let (d, _) = self.polar(u + 0.02 * self.light.cos(), v + 0.02 * self.light.sin());
        let shadow = if d < self.outer + 0.02 && d > self.inner - 0.02 { 0.7 } else { 1.0 };
        scale(back, shadow)
    }

    pub(crate) fn draw(&self, c: &mut Canvas) {
        let px = c.pixel();
        c.fill(|u, v| {
            let (d, theta) = self.polar(u, v);
            let cover = ((self.outer - d) / px + 0.5).clamp(0.0, 1.0) * ((d - self.inner) / px + 0.5).clamp(0.0, 1.0);
            let back = self.background(u, v);
            if cover <= 0.0 {
                return back;
            }
            let t = ((d - self.inner) / (self.outer - self.inner)).clamp(0.0, 1.0);
            // Rounded profile lit from one side, concentric machining marks, and a brushed
            // grain that turns with the part.
            let bevel = 0.7 + 0.3 * (PI * t).sin();
            let lit = 0.18 * (theta - self.light).cos() * (2.0 * t - 1.0);
            let marks = 0.04 * (d / self.outer * 90.0).sin();
            let grain = 0.08 * self.noise.at((theta + self.grain) * 40.0, d * 8.0);
            lerp(back, scale(self.metal, bevel + lit + marks + grain), cover)
        });
    }

    /// A bite out of the rim: the washer's pixels there show the backdrop.
    fn chip(&self, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) {
        let angle = rng.range(0.0, TAU);
        let bite = rng.range(0.06, 0.1);
        let at = (self.centre.0 + self.outer * angle.cos(), self.centre.1 + self.outer * angle.sin());
        let noise = Noise::new(rng.next_u64());
        let r = bite * 1.3;
        let boxed: Vec<(u32, u32)> = c.pixels_in(at.0 - r, at.1 - r, at.0 + r, at.1 + r).collect();
        for (x, y) in boxed {
            let (u, v) = c.uv(x, y);
            let d = ((u - at.0).powi(2) + (v - at.1).powi(2)).sqrt();
            let jag = bite * (0.8 + 0.4 * noise.at(u * 60.0, v * 60.0));
            if d < jag && self.inside(u, v) {
                c.set(x, y, self.background(u, v));
                m.set(x, y);
            }
        }
    }

    /// Draws the washer with the named defect; false for a defect it does not have.
    pub(crate) fn defect(&self, kind: &str, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) -> bool {
        self.draw(c);
        let inside = |u: f32, v: f32| self.inside(u, v);
        let at = spot_on(rng, &inside);
        match kind {
            "crack" => defects::crack(c, m, rng, &inside, at),
            "scratch" => defects::scratch(c, m, rng, &inside, at, None),
            "stain" => defects::stain(c, m, rng, &inside, at),
            "chipped" => self.chip(c, m, rng),
            _ => return false,
        }
        true
    }
}

// ------------------------------------------------------------------ bolt

/// A hex-head bolt seen from the side. Geometry is in the bolt's frame: s along the axis
/// (head at negative s), t across it.
pub(crate) struct Bolt {
    centre: (f32, f32),
    angle: f32,
    length: f32,
    head: f32,
    head_half: f32,
    shaft_half: f32,
    thread_from: f32,
    pitch: f32,
    steel: Color,
    back: Color,
    noise: Noise,
    light: f32,
}

/// How the bolt is damaged: the part beyond `pivot` turned by `bend`, and/or cut at `cut`.
#[derive(Clone, Copy, Default)]
struct Damage {
    pivot: f32,
    bend: f32,
    cut: Option<f32>,
}

impl Bolt {
    pub(crate) fn new(rng: &mut Rng) -> Bolt {
        let length = rng.range(0.68, 0.76);
        let (back, noise, light) = backdrop(rng, [0.8, 0.79, 0.74]);
        let flip = if rng.chance(0.5) { PI } else { 0.0 };
        Bolt {
            centre: (0.5 + rng.range(-0.04, 0.04), 0.5 + rng.range(-0.04, 0.04)),
            angle: rng.range(-0.5, 0.5) + flip,
            length,
            head: length * rng.range(0.18, 0.22),
            head_half: rng.range(0.11, 0.13),
            shaft_half: rng.range(0.045, 0.055),
            thread_from: rng.range(-0.1, 0.0),
            pitch: rng.range(0.024, 0.03),
            steel: jitter([0.55, 0.56, 0.6], 0.04, rng),
            back,
            noise,
            light,
        }
    }

    fn local(&self, u: f32, v: f32) -> (f32, f32) {
        let (du, dv) = (u - self.centre.0, v - self.centre.1);
        let (c, s) = (self.angle.cos(), self.angle.sin());
        (du * c + dv * s, -du * s + dv * c)
    }

    fn world(&self, s: f32, t: f32) -> (f32, f32) {
        let (c, sn) = (self.angle.cos(), self.angle.sin());
        (self.centre.0 + s * c - t * sn, self.centre.1 + s * sn + t * c)
    }

    /// Margin (positive inside, roughly the distance to the outline) of the straight bolt at
    /// (s, t), and its colour there.
    fn shape(&self, s: f32, t: f32) -> (f32, Color) {
        let (start, end) = (-self.length / 2.0, self.length / 2.0);
        let head_end = start + self.head;
        if s < head_end {
            let margin = (self.head_half - t.abs()).min(s - start).min(head_end - s);
            // Three visible faces of the hexagon: the middle one faces the camera.
            let face = if t.abs() < self.head_half * 0.5 {
                1.0
            } else if t > 0.0 {
                0.7
            } else {
                0.82
            };
            return (margin, scale(self.steel, face));
        }
        let tip = (end - s) - 0.02; // chamfered tip
        let mut radius = self.shaft_half + tip.min(0.0);
        let mut shade = 0.65 + 0.4 * (1.0 - (t / self.shaft_half).clamp(-1.0, 1.0).powi(2)).sqrt();
        if s > self.thread_from {
            let phase = ((s + 0.35 * t) / self.pitch).rem_euclid(1.0);
            radius *= 0.92 + 0.12 * (1.0 - (2.0 * phase - 1.0).abs());
            shade *= 0.75 + 0.35 * phase;
        }
        let margin = (radius - t.abs()).min(s - head_end + 0.001).min(end - s);
        (margin, scale(self.steel, shade))
    }

    fn inside(&self, u: f32, v: f32) -> bool {
        let (s, t) = self.local(u, v);
        self.shape(s, t).0 > 0.0
    }

    /// Lit from above: no cast shadow, so that damage changes only the pixels the mask
    /// marks (a shadow would move with a bent or missing part).
    fn background(&self, u: f32, v: f32) -> Color {
        backdrop_at(self.back, &self.noise, self.light, u, v)
    }

    fn jag(&self, t: f32) -> f32 {
        0.012 * (self.noise.at(t * 80.0, 3.0) - 0.5)
    }

    /// Where (s, t) comes from on the straight bolt's turned far part, when there is a bend.
    fn unbent(&self, s: f32, t: f32, d: Damage) -> Option<(f32, f32)> {
        if d.bend == 0.0 {
            return None;
        }
        let (c, sn) = (d.bend.cos(), d.bend.sin());
        let ds = s - d.pivot;
        let (bs, bt) = (d.pivot + ds * c + t * sn, -ds * sn + t * c);
        (bs > d.pivot).then_some((bs, bt))
    }

    /// Whether the straight bolt's (s, t) is still in place after the damage.
    fn kept(&self, s: f32, t: f32, d: Damage) -> bool {
        let bent_away = d.bend != 0.0 && s > d.pivot;
        let cut_away = d.cut.is_some_and(|cut| s > cut + self.jag(t));
        !bent_away && !cut_away
    }

    fn render(&self, c: &mut Canvas, d: Damage) {
        let px = c.pixel();
        c.fill(|u, v| {
            let back = self.background(u, v);
            let (s, t) = self.local(u, v);
            // The turned far part first, else what is kept of the straight bolt, each with
            // an anti-aliased edge.
            let candidates = [self.unbent(s, t, d), self.kept(s, t, d).then_some((s, t))];
            for (ls, lt) in candidates.into_iter().flatten() {
                let (margin, colour) = self.shape(ls, lt);
                let cover = (margin / px + 0.5).clamp(0.0, 1.0);
                if cover > 0.0 {
                    let grain = 0.06 * (self.noise.at(ls * 120.0, lt * 20.0) - 0.5);
                    return lerp(back, scale(colour, 1.0 + grain), cover);
                }
            }
            back
        });
    }

    pub(crate) fn draw(&self, c: &mut Canvas) {
        self.render(c, Damage::default());
    }

    /// Draws the damaged bolt. The mask holds every pixel whose colour the damage can change:
    /// those the turned part touches now (its anti-aliased rim included) and those the intact
    /// bolt touched where its part is gone. Everywhere else `render` shows the intact bolt.
    fn damage(&self, c: &mut Canvas, m: &mut Mask, d: Damage) {
        self.render(c, d);
        let px = c.pixel();
        let touches = |ls: f32, lt: f32| self.shape(ls, lt).0 / px + 0.5 > 0.0;
        for y in 0..c.size {
            for x in 0..c.size {
                let (u, v) = c.uv(x, y);
                let (s, t) = self.local(u, v);
                let moved = self.unbent(s, t, d).is_some_and(|(ls, lt)| touches(ls, lt));
                let gone = touches(s, t) && !self.kept(s, t, d);
                if moved || gone {
                    m.set(x, y);
                }
            }
        }
    }

    /// Draws the bolt with the named defect; false for a defect it does not have.
    pub(crate) fn defect(&self, kind: &str, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) -> bool {
        let end = self.length / 2.0;
        match kind {
            "bent" => {
                let pivot = rng.range(0.0, end - 0.15);
                let bend = rng.range(0.3, 0.55) * rng.sign();
                self.damage(c, m, Damage { pivot, bend, cut: None });
            }
            "missing" => {
                let cut = rng.range(0.05, end - 0.1);
                self.damage(c, m, Damage { cut: Some(cut), ..Damage::default() });
            }
            "scratch" => {
                self.draw(c);
                let inside = |u: f32, v: f32| self.inside(u, v);
                let at = self.world(rng.range(-end + 0.1, end - 0.1), 0.0);
                let along = self.angle + rng.range(-0.2, 0.2);
                defects::scratch(c, m, rng, &inside, at, Some(along));
            }
            _ => return false,
        }
        true
    }
}
