//! `afr eval`: the seven metrics per category and their mean, computed the
//! way the toolchain's reference evaluation does (toolchain/src/evaluate.rs):
//! maps upsampled to S x S with the model's smoothing, masks resized to
//! S x S with a triangle filter and thresholded at 0.5, pixel metrics only
//! for categories where every anomalous image has a mask. Categories the
//! model's table does not hold are scored with its `object` row.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use afr_runtime::dataset::{Dataset, Format, Sample, Split};
use afr_runtime::detector::{Detector, DetectorOptions};
use afr_runtime::image_io;
use afr_runtime::metrics::{CategoryEvaluator, PixelData};
use afr_runtime::report::Report;
use anyhow::Context as _;
use image::imageops::FilterType;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    /// The AFR ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// Dataset root folder.
    #[arg(long)]
    data: PathBuf,
    /// Dataset layout: mvtec, visa, meta-json, btad, mpdd or folder.
    #[arg(long)]
    format: Format,
    /// Evaluate only these categories (comma-separated; all by default).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Also write the report as JSON to this file (replaced whole or not at all).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Threads for inference (more than 1 needs the `multithread` build feature).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::load_with(&args.model, DetectorOptions { smoothing: true, threads: args.threads })?;
    let data = Dataset::open(&args.data, args.format, Split::Test, args.categories.as_deref())?;
    let s = detector.info().input_size;
    let bar = ProgressBar::new(data.samples.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let mut map = vec![0f32; s * s];
    let mut results = BTreeMap::new();
    for category in data.categories() {
        let row = detector.category_or_default(&category).with_context(|| {
            format!("{}: category {category:?} is not in the model's table and it has no `object` row", args.model.display())
        })?;
        let samples: Vec<&Sample> = data.samples_of(&category).collect();
        let pixel_level = samples.iter().all(|x| !x.anomalous || x.mask.is_some());
        let mut eval = CategoryEvaluator::new();
        for sample in samples {
            let name = sample.image.display().to_string();
            let (rgb, mask) = image_io::load_pair(&sample.image, sample.mask.as_deref())?;
            let (w, h) = (rgb.width() as usize, rgb.height() as usize);
            let scores = detector
                .score_to(rgb.as_raw(), w, h, row, &mut map, (s, s))
                .with_context(|| format!("{name}: cannot score"))?;
            let truth: Vec<bool> = match &mask {
                Some(m) => image::imageops::resize(m, s as u32, s as u32, FilterType::Triangle)
                    .as_raw()
                    .iter()
                    .map(|&v| v >= 128)
                    .collect(),
                None => vec![false; s * s],
            };
            let pixels = pixel_level.then_some(PixelData { map: &map, mask: &truth, width: s, height: s });
            eval.add(&name, scores.image, sample.anomalous, pixels)?;
            bar.inc(1);
        }
        results.insert(category, eval.finish());
    }
    bar.finish_and_clear();
    let report = Report::new(args.model.display().to_string(), args.data.display().to_string(), results);
    print!("{}", report.to_markdown());
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(ExitCode::SUCCESS)
}
