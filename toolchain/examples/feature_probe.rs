//! How much does a frozen CLIP backbone's patch features say about defects on a category it
//! was never trained on? The AFR-CLIP heads read each tap token by itself (adapter, MPFA,
//! CMFR and the scoring act per token), so a per-token probe bounds what training can reach.
//!
//! For each of the four stage taps (`ln_post` + `proj`, what the heads see) this prints:
//! - a class-balanced logistic-regression probe fitted on the seen categories' patches
//!   (a patch is anomalous when at least 20 % of it is masked), scored on the seen patches
//!   (the fit) and on the held-out category (the transfer);
//! - a training-free score: each patch's distance from its image's mean patch, which uses
//!   the other patches of the image and so is out of reach of a per-token head.
//!
//! Pixel AUROC is over the held-out images' masks with the map upsampled bilinearly (no
//! smoothing); image AUROC scores an image by its map's maximum.
//!
//! ```sh
//! cargo run --release -p afr-toolchain -- synth --out synth --size 64
//! cargo run --release -p afr-toolchain --example feature_probe -- synth bolt [tiny] [random:0]
//! ```
use afr_runtime::dataset::{Dataset, Format, Split};
use afr_runtime::metrics::auroc;
use afr_runtime::postprocess::Upsampler;
use afr_toolchain::clip::Clip;
use afr_toolchain::preset::Preset;
use afr_toolchain::train::data::ImageLoader;
use afr_toolchain::weights::Weights;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// Fraction of a patch that must be masked for the probe to call it anomalous.
const PATCH_LABEL: f32 = 0.2;

/// One image's features: per tap, `grid * grid` patch vectors of width `dim`.
struct Sample {
    seen: bool,
    anomalous: bool,
    taps: Vec<Vec<f32>>,
    /// `S * S`, 0/1 (all zero for a normal image).
    mask: Vec<f32>,
    /// Per patch, the masked fraction.
    patch_mask: Vec<f32>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, held, rest @ ..] = args.as_slice() else {
        bail!("usage: feature_probe DATA HELD_OUT [PRESET] [CLIP]   (an MVTec-layout dataset, e.g. from `afr-toolchain synth`)");
    };
    let preset = Preset::resolve(rest.first().map_or("tiny", String::as_str))?;
    let spec = rest.get(1).map_or("random:0", String::as_str);
    let device = Device::Cpu;
    let clip = Clip::load(&Weights::open(spec, &device)?, &preset.clip)?;
    let dataset = Dataset::open(std::path::Path::new(data), Format::Mvtec, Split::Test, None)
        .with_context(|| format!("{data}: cannot open the dataset"))?;
    if !dataset.samples.iter().any(|s| &s.category == held) {
        bail!("{data}: no test images of category {held:?}");
    }
    let size = preset.input_size;
    let grid = preset.grid();
    let loader = ImageLoader::new(size);
    let mut samples = Vec::with_capacity(dataset.samples.len());
    for s in &dataset.samples {
        let loaded = loader.load(s)?;
        let pixels = Tensor::from_vec(loaded.pixels, (1, 3, size, size), &device)?;
        let states = clip.vision.hidden_states(&pixels, None)?;
        let mut taps = Vec::with_capacity(4);
        for t in preset.taps() {
            // Drop the class token: the map is read from the patches.
            let tokens = clip.vision.project(&states[t])?.squeeze(0)?.narrow(0, 1, grid * grid)?;
            taps.push(tokens.flatten_all()?.to_vec1::<f32>()?);
        }
        let mask = loaded.mask.unwrap_or_else(|| vec![0.0; size * size]);
        let patch_mask = patch_fractions(&mask, size, grid);
        samples.push(Sample { seen: &s.category != held, anomalous: s.anomalous, taps, mask, patch_mask });
    }
    let dim = samples[0].taps[0].len() / (grid * grid);
    let seen = samples.iter().filter(|s| s.seen).count();
    println!(
        "{} on {data}: {seen} seen images, {} of {held}; {grid}x{grid} patches of width {dim}",
        preset.name,
        samples.len() - seen
    );
    println!("| tap | probe, seen pixel AUROC | probe, {held} pixel / image AUROC | self-distance, {held} pixel / image AUROC |");
    println!("|---|---:|---:|---:|");
    let upsampler = Upsampler::new((grid, grid), (size, size), 0.0);
    for (tap, layer) in preset.taps().iter().enumerate() {
        let probe = Probe::fit(&samples, tap, dim);
        let fit = evaluate(&samples, true, &upsampler, |s| probe.map(&s.taps[tap]))?;
        let transfer = evaluate(&samples, false, &upsampler, |s| probe.map(&s.taps[tap]))?;
        let distance = evaluate(&samples, false, &upsampler, |s| self_distance(&s.taps[tap], dim))?;
        println!(
            "| {} (layer {layer}) | {:.3} | {:.3} / {:.3} | {:.3} / {:.3} |",
            tap + 1,
            fit.0,
            transfer.0,
            transfer.1,
            distance.0,
            distance.1
        );
    }
    Ok(())
}

/// Masked fraction of each `patch x patch` cell.
fn patch_fractions(mask: &[f32], size: usize, grid: usize) -> Vec<f32> {
    let patch = size / grid;
    let mut out = vec![0.0; grid * grid];
    for y in 0..grid * patch {
        for x in 0..grid * patch {
            out[(y / patch) * grid + x / patch] += mask[y * size + x];
        }
    }
    out.iter_mut().for_each(|v| *v /= (patch * patch) as f32);
    out
}

/// Logistic regression on standardised features, class-balanced, with a small L2 penalty,
/// fitted by full-batch gradient descent (the problem is convex and small).
struct Probe {
    mean: Vec<f32>,
    std: Vec<f32>,
    weights: Vec<f32>,
    bias: f32,
}

impl Probe {
    fn fit(samples: &[Sample], tap: usize, dim: usize) -> Self {
        let rows: Vec<(&[f32], bool)> = samples
            .iter()
            .filter(|s| s.seen)
            .flat_map(|s| s.taps[tap].chunks(dim).zip(s.patch_mask.iter().map(|&m| m >= PATCH_LABEL)))
            .collect();
        let n = rows.len() as f32;
        let mut mean = vec![0.0; dim];
        let mut var = vec![0.0; dim];
        for (x, _) in &rows {
            mean.iter_mut().zip(*x).for_each(|(m, v)| *m += v / n);
        }
        for (x, _) in &rows {
            var.iter_mut().zip(x.iter().zip(&mean)).for_each(|(s, (v, m))| *s += (v - m) * (v - m) / n);
        }
        let std: Vec<f32> = var.iter().map(|v| v.sqrt().max(1e-6)).collect();
        let positives = rows.iter().filter(|r| r.1).count() as f32;
        let (w_pos, w_neg) = (0.5 / positives.max(1.0), 0.5 / (n - positives).max(1.0));
        let mut probe = Probe { mean, std, weights: vec![0.0; dim], bias: 0.0 };
        let (lr, l2) = (1.0, 1e-3);
        let mut z = vec![0.0; dim];
        for _ in 0..500 {
            let mut grad = vec![0.0; dim];
            let mut grad_bias = 0.0;
            for (x, label) in &rows {
                probe.standardise(x, &mut z);
                let p = 1.0 / (1.0 + (-probe.logit(&z)).exp());
                let g = if *label { (p - 1.0) * w_pos } else { p * w_neg };
                grad.iter_mut().zip(&z).for_each(|(a, v)| *a += g * v);
                grad_bias += g;
            }
            probe.weights.iter_mut().zip(&grad).for_each(|(w, g)| *w -= lr * (g + l2 * *w));
            probe.bias -= lr * grad_bias;
        }
        probe
    }

    fn standardise(&self, x: &[f32], out: &mut [f32]) {
        for (o, ((v, m), s)) in out.iter_mut().zip(x.iter().zip(&self.mean).zip(&self.std)) {
            *o = (v - m) / s;
        }
    }

    fn logit(&self, z: &[f32]) -> f32 {
        self.bias + z.iter().zip(&self.weights).map(|(a, b)| a * b).sum::<f32>()
    }

    /// The logit of every patch of one image.
    fn map(&self, tap: &[f32]) -> Vec<f32> {
        let mut z = vec![0.0; self.mean.len()];
        tap.chunks(self.mean.len())
            .map(|x| {
                self.standardise(x, &mut z);
                self.logit(&z)
            })
            .collect()
    }
}

/// Each patch's Euclidean distance from the mean of its image's patches.
fn self_distance(tap: &[f32], dim: usize) -> Vec<f32> {
    let patches = tap.len() / dim;
    let mut mean = vec![0.0; dim];
    for x in tap.chunks(dim) {
        mean.iter_mut().zip(x).for_each(|(m, v)| *m += v / patches as f32);
    }
    tap.chunks(dim).map(|x| x.iter().zip(&mean).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt()).collect()
}

/// Pixel AUROC (upsampled maps against the masks) and image AUROC (map maximum) over the
/// seen (`seen`) or held-out images.
fn evaluate(
    samples: &[Sample],
    seen: bool,
    upsampler: &Upsampler,
    map: impl Fn(&Sample) -> Vec<f32>,
) -> Result<(f64, f64)> {
    let (mut pixel_scores, mut pixel_labels) = (Vec::new(), Vec::new());
    let (mut image_scores, mut image_labels) = (Vec::new(), Vec::new());
    let (w, h) = upsampler.size();
    let mut full = vec![0.0; w * h];
    for s in samples.iter().filter(|s| s.seen == seen) {
        let m = map(s);
        upsampler.run(&m, &mut full, &mut []);
        pixel_scores.extend_from_slice(&full);
        pixel_labels.extend(s.mask.iter().map(|&v| v > 0.5));
        image_scores.push(m.iter().copied().fold(f32::MIN, f32::max));
        image_labels.push(s.anomalous);
    }
    let pixel = auroc(&pixel_scores, &pixel_labels)?.context("pixel AUROC undefined: one class only")?;
    let image = auroc(&image_scores, &image_labels)?.unwrap_or(f64::NAN);
    Ok((pixel, image))
}
