//! A synthetic dataset in the MVTec AD layout, for tests, the demo and smoke training.
//!
//! Five categories, three textures and two objects, each with its own defects:
//!
//! | category | kind | defects |
//! |---|---|---|
//! | `fabric` | woven texture | hole, stain, scratch, cut_paste |
//! | `wood` | grain texture | crack, scratch, stain, cut_paste |
//! | `grid` | wire mesh texture | bent, broken, stain |
//! | `washer` | round object | crack, chipped, scratch, stain |
//! | `bolt` | hex bolt object | bent, missing, scratch |
//!
//! Every normal image differs (rotation, offset, scale, colour, placement, sensor noise).
//! Defect masks are drawn together with the defect and hold exactly its pixels (0/255).
//!
//! Layout written: `OUT/CAT/train/good/000.png`, `OUT/CAT/test/good/000.png`,
//! `OUT/CAT/test/DEFECT/000.png`, `OUT/CAT/ground_truth/DEFECT/000_mask.png`, plus the marker
//! file [`MARKER`] at the top.
//!
//! Determinism: each image's random stream is ChaCha8 seeded from (seed, category, split,
//! defect, index), numbers are made from its words by plain arithmetic, and the PNG encoder
//! is deterministic, so the same seed gives byte-identical files, and an image does not
//! depend on which other categories or counts were asked for. Shading uses `f32` sin/cos/
//! powf from the platform's maths library, whose last bit may differ between platforms.

mod canvas;
mod defects;
mod noise;
mod objects;
mod rng;
mod textures;

use std::fs;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};

use canvas::{Canvas, Mask};
use rng::{derive_seed, splitmix64, Rng};

/// Name of the marker file that identifies a directory as synth output.
pub const MARKER: &str = ".afr-synth.json";
const GENERATOR: &str = "afr-toolchain synth";

/// Categories and their defect types, in generation order.
const CATEGORIES: [(&str, &[&str]); 5] = [
    ("fabric", &["hole", "stain", "scratch", "cut_paste"]),
    ("wood", &["crack", "scratch", "stain", "cut_paste"]),
    ("grid", &["bent", "broken", "stain"]),
    ("washer", &["crack", "chipped", "scratch", "stain"]),
    ("bolt", &["bent", "missing", "scratch"]),
];

/// Smallest and largest image side accepted.
pub const MIN_SIZE: u32 = 16;
pub const MAX_SIZE: u32 = 4096;

/// The categories the generator knows.
pub fn category_names() -> Vec<&'static str> {
    CATEGORIES.iter().map(|(name, _)| *name).collect()
}

/// The defect types of `category`, or None for an unknown category.
pub fn defects_of(category: &str) -> Option<&'static [&'static str]> {
    CATEGORIES.iter().find(|(name, _)| *name == category).map(|(_, d)| *d)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    /// Image side in pixels (images are square).
    pub size: u32,
    /// Categories to generate; None for all.
    pub categories: Option<Vec<String>>,
    /// Normal images per category in `train/good`.
    pub train_good: usize,
    /// Normal images per category in `test/good`.
    pub test_good: usize,
    /// Images per defect type in `test/DEFECT`.
    pub test_bad_per_defect: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { seed: 0, size: 128, categories: None, train_good: 10, test_good: 10, test_bad_per_defect: 5 }
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSummary {
    pub out: PathBuf,
    pub categories: Vec<String>,
    /// Images written (train and test).
    pub images: usize,
    /// Masks written (one per defective image).
    pub masks: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: directory is not empty and is not a previous synth output (no {MARKER}); \
         choose an empty or new directory"
    )]
    NotEmpty { path: PathBuf },
    #[error("{path}: exists and is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("unknown synth category {name:?} (known: {known})")]
    UnknownCategory { name: String, known: String },
    #[error("invalid synth configuration: {0}")]
    Config(String),
    #[error("{path}: cannot encode PNG: {detail}")]
    Encode { path: PathBuf, detail: String },
    #[error("could not place a {defect} defect on {category} at {size} px")]
    Placement { category: String, defect: String, size: u32 },
}

/// Renders one image in memory: `defect` None for a normal image. Returns the image and, for
/// a defect, its mask. `seed` fully determines the result.
pub fn render(
    category: &str,
    defect: Option<&str>,
    size: u32,
    seed: u64,
) -> Result<(RgbImage, Option<GrayImage>), SynthError> {
    check_size(size)?;
    let defects = defects_of(category).ok_or_else(|| unknown(category))?;
    if let Some(d) = defect {
        if !defects.contains(&d) {
            return Err(SynthError::Config(format!(
                "category {category} has no defect {d:?} (known: {})",
                defects.join(", ")
            )));
        }
    }
    // A defect can miss its target (e.g. a scratch clipped away by the object's outline at
    // a tiny size): draw again with the next stream, deterministically.
    for attempt in 0..32u64 {
        let mut rng = Rng::new(splitmix64(seed ^ attempt.wrapping_mul(0x9e37_79b9)));
        let mut c = Canvas::new(size);
        let mut m = Mask::new(size);
        draw(category, defect, &mut c, &mut m, &mut rng);
        if defect.is_some() && m.count() == 0 {
            continue;
        }
        c.add_noise(&mut rng, 0.012);
        let mask = defect.map(|_| m.to_image());
        return Ok((c.to_image(), mask));
    }
    Err(SynthError::Placement { category: category.to_string(), defect: defect.unwrap_or("good").to_string(), size })
}

fn draw(category: &str, defect: Option<&str>, c: &mut Canvas, m: &mut Mask, rng: &mut Rng) {
    match category {
        "fabric" | "wood" => {
            if category == "fabric" {
                textures::fabric(c, rng)
            } else {
                textures::wood(c, rng)
            }
            if let Some(d) = defect {
                textures::generic(d, c, m, rng);
            }
        }
        "grid" => {
            let grid = textures::Grid::new(rng);
            grid.draw(c);
            match defect {
                Some("bent") => grid.bend(c, m, rng),
                Some("broken") => grid.broken(c, m, rng),
                Some(d) => {
                    textures::generic(d, c, m, rng);
                }
                None => {}
            }
        }
        "washer" => {
            let washer = objects::Washer::new(rng);
            match defect {
                Some(d) => {
                    washer.defect(d, c, m, rng);
                }
                None => washer.draw(c),
            }
        }
        "bolt" => {
            let bolt = objects::Bolt::new(rng);
            match defect {
                Some(d) => {
                    bolt.defect(d, c, m, rng);
                }
                None => bolt.draw(c),
            }
        }
        _ => {}
    }
    debug_assert!(m.count() == 0 || defect.is_some());
    if defect.is_none() {
        m.clear();
    }
}

fn unknown(name: &str) -> SynthError {
    SynthError::UnknownCategory { name: name.to_string(), known: category_names().join(", ") }
}

fn check_size(size: u32) -> Result<(), SynthError> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(SynthError::Config(format!("image size {size} is outside {MIN_SIZE}..={MAX_SIZE}")));
    }
    Ok(())
}

/// One file to write.
struct Job {
    category: &'static str,
    split: &'static str,
    defect: Option<&'static str>,
    index: usize,
}

/// Writes the dataset under `out` and reports progress as (images done, images in total).
///
/// `out` must be missing, empty, or a previous synth output (it holds [`MARKER`]); in the
/// last case the category directories that output listed are removed first, so no stale
/// image from a larger earlier run survives. Each file is written to a temporary name and
/// renamed, so an interrupted run leaves no half-written PNG under a final name.
pub fn generate(
    out: &Path,
    cfg: &SynthConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<SynthSummary, SynthError> {
    check_size(cfg.size)?;
    let categories: Vec<&'static str> = match &cfg.categories {
        None => category_names(),
        Some(names) if names.is_empty() => return Err(SynthError::Config("the category list is empty".into())),
        Some(names) => {
            let mut chosen = Vec::new();
            for name in names {
                let known = CATEGORIES.iter().find(|(n, _)| n == name).ok_or_else(|| unknown(name))?;
                if !chosen.contains(&known.0) {
                    chosen.push(known.0);
                }
            }
            chosen
        }
    };
    if cfg.test_good + cfg.test_bad_per_defect == 0 {
        return Err(SynthError::Config("the test split would be empty".into()));
    }

    let mut jobs = Vec::new();
    for &category in &categories {
        for index in 0..cfg.train_good {
            jobs.push(Job { category, split: "train", defect: None, index });
        }
        for index in 0..cfg.test_good {
            jobs.push(Job { category, split: "test", defect: None, index });
        }
        for &defect in defects_of(category).unwrap_or(&[]) {
            for index in 0..cfg.test_bad_per_defect {
                jobs.push(Job { category, split: "test", defect: Some(defect), index });
            }
        }
    }

    prepare(out)?;
    write_marker(out, cfg, &categories, false)?;
    let total = jobs.len();
    let mut masks = 0;
    for (done, job) in jobs.iter().enumerate() {
        let defect_dir = job.defect.unwrap_or("good");
        let seed = derive_seed(cfg.seed, &[job.category, job.split, defect_dir], job.index as u64);
        let (image, mask) = render(job.category, job.defect, cfg.size, seed)?;
        let name = format!("{:03}", job.index);
        let cat_dir = out.join(job.category);
        write_png(&cat_dir.join(job.split).join(defect_dir).join(format!("{name}.png")), &image)?;
        if let Some(mask) = mask {
            let path = cat_dir.join("ground_truth").join(defect_dir).join(format!("{name}_mask.png"));
            write_png(&path, &mask)?;
            masks += 1;
        }
        progress(done + 1, total);
    }
    write_marker(out, cfg, &categories, true)?;
    Ok(SynthSummary {
        out: out.to_path_buf(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        images: total,
        masks,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), source }
}

/// Checks `out` may be written, and clears what an earlier synth run left there.
fn prepare(out: &Path) -> Result<(), SynthError> {
    if out.exists() && !out.is_dir() {
        return Err(SynthError::NotADirectory { path: out.to_path_buf() });
    }
    fs::create_dir_all(out).map_err(io(out))?;
    let empty = fs::read_dir(out).map_err(io(out))?.next().is_none();
    if empty {
        return Ok(());
    }
    let marker = out.join(MARKER);
    let previous: Option<serde_json::Value> =
        fs::read_to_string(&marker).ok().and_then(|t| serde_json::from_str(&t).ok());
    let previous = previous
        .filter(|v| v.get("generator").and_then(|g| g.as_str()) == Some(GENERATOR))
        .ok_or_else(|| SynthError::NotEmpty { path: out.to_path_buf() })?;
    // Only directories named like our categories, and only those the marker lists.
    let listed = previous.get("categories").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    for name in listed.iter().filter_map(|c| c.as_str()) {
        let dir = out.join(name);
        if category_names().contains(&name) && dir.is_dir() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    Ok(())
}

fn write_marker(out: &Path, cfg: &SynthConfig, categories: &[&str], complete: bool) -> Result<(), SynthError> {
    let value = serde_json::json!({
        "generator": GENERATOR,
        "format_version": 1,
        "seed": cfg.seed,
        "size": cfg.size,
        "categories": categories,
        "train_good": cfg.train_good,
        "test_good": cfg.test_good,
        "test_bad_per_defect": cfg.test_bad_per_defect,
        "complete": complete,
    });
    let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
    write_atomic(&out.join(MARKER), text.as_bytes())
}

fn write_png<P>(path: &Path, image: &image::ImageBuffer<P, Vec<u8>>) -> Result<(), SynthError>
where
    P: image::Pixel<Subpixel = u8> + image::PixelWithColorType,
{
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), P::COLOR_TYPE)
        .map_err(|e| SynthError::Encode { path: path.to_path_buf(), detail: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Creates the directory, then writes through the runtime's atomic writer.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    afr_runtime::atomic::write_atomic(path, bytes).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask is exact: drawing the same image with and without its defect changes no
    /// pixel outside the mask, and changes most pixels inside it.
    #[test]
    fn defects_change_exactly_the_masked_pixels() {
        for size in [32, 64, 128] {
            for (category, defects) in CATEGORIES {
                for defect in defects.iter().copied() {
                    for seed in 0..4u64 {
                        let rng = Rng::new(seed * 1000 + size as u64);
                        let (mut good, mut bad) = (Canvas::new(size), Canvas::new(size));
                        let (mut none, mut mask) = (Mask::new(size), Mask::new(size));
                        draw(category, None, &mut good, &mut none, &mut rng.clone());
                        draw(category, Some(defect), &mut bad, &mut mask, &mut rng.clone());
                        let (mut inside, mut changed_inside) = (0, 0);
                        for y in 0..size {
                            for x in 0..size {
                                let changed = good.get(x, y) != bad.get(x, y);
                                if mask.get(x, y) {
                                    inside += 1;
                                    changed_inside += changed as usize;
                                } else {
                                    assert!(
                                        !changed,
                                        "{category}/{defect} seed {seed} size {size}: pixel \
                                         ({x}, {y}) changed outside the mask"
                                    );
                                }
                            }
                        }
                        assert_eq!(none.count(), 0);
                        if inside > 0 {
                            let share = changed_inside as f32 / inside as f32;
                            assert!(
                                share > 0.5,
                                "{category}/{defect} seed {seed} size {size}: only \
                                 {changed_inside} of {inside} masked pixels changed"
                            );
                        }
                    }
                }
            }
        }
    }
}
