//! `afr score`: anomaly scores for images, with heatmaps and raw maps.
//! A bad image is reported with its path and skipped; the exit code is
//! non-zero at the end if any failed.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use afr_runtime::atomic::write_atomic;
use afr_runtime::detector::Detector;
use afr_runtime::evaluate::{scoring_rows, ScoringRow};
use afr_runtime::image_io::load_rgb8;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::inputs;
use crate::load_args::LoadArgs;
use afr_runtime::heatmap;

/// More images than this get a progress bar.
const PROGRESS_ABOVE: usize = 3;

#[derive(clap::Args)]
pub struct Args {
    /// The AFR ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// Category the images show (a row of the model's table; see `afr info`).
    /// One the table does not hold is scored with its generic `object` row,
    /// with a warning.
    #[arg(long, default_value = "object")]
    category: String,
    /// Refuse a category the model's table has no row for, instead of scoring
    /// it with the generic `object` row.
    #[arg(long)]
    strict_categories: bool,
    /// Image files, folders (searched recursively) or glob patterns (`*`, `?`, `**`).
    /// Images over 16384 pixels a side or 40 megapixels are refused from their header.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Output folder for scores.csv, heatmaps/ and maps/ (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Also print the results as JSON on stdout and write them to OUT/scores.json.
    #[arg(long)]
    json: bool,
    /// Write each raw anomaly map (image size, f32) to OUT/maps/NAME.npy.
    #[arg(long)]
    raw_maps: bool,
    /// Do not write heatmap overlays to OUT/heatmaps/NAME.png.
    #[arg(long)]
    no_heatmaps: bool,
    /// Image score at or above which an image is called anomalous (fills the verdict column).
    #[arg(long)]
    threshold: Option<f32>,
    /// Do not smooth the anomaly maps (the model's sigma otherwise).
    #[arg(long)]
    no_smoothing: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Serialize)]
struct Scored {
    path: String,
    category: String,
    score: f32,
    map_max: f32,
    verdict: Option<&'static str>,
}

#[derive(Serialize)]
struct Failed {
    path: String,
    error: String,
}

#[derive(Serialize)]
struct Results<'a> {
    model: String,
    category: &'a str,
    /// The row of the model's table that scored the images: `category`, or
    /// `object` standing in for it.
    scored_as: &'a str,
    threshold: Option<f32>,
    results: Vec<Scored>,
    failed: Vec<Failed>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(t) = args.threshold {
        anyhow::ensure!(t.is_finite(), "--threshold must be a finite number, got {t}");
    }
    anyhow::ensure!(
        !args.out.exists() || args.out.is_dir(),
        "{}: --out names a file; it must be a folder (created if missing)",
        args.out.display()
    );
    let mut detector = Detector::load_with(&args.model, args.load.options(!args.no_smoothing))?;
    let rows = scoring_rows(detector.info(), std::slice::from_ref(&args.category), args.strict_categories)?;
    let ScoringRow { row: category, scored_as, .. } = rows.into_iter().next().context("one category, one row")?;
    if scored_as != args.category {
        eprintln!(
            "warning: {}: no row for category `{}`; scored with the generic `object` row \
             (export with --categories to give it its own)",
            args.model.display(),
            args.category
        );
    }
    let images = inputs::collect(&args.inputs)?;
    let heat_dir = args.out.join("heatmaps");
    let map_dir = args.out.join("maps");
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    if !args.no_heatmaps {
        std::fs::create_dir_all(&heat_dir).with_context(|| format!("{}: cannot create", heat_dir.display()))?;
    }
    if args.raw_maps {
        std::fs::create_dir_all(&map_dir).with_context(|| format!("{}: cannot create", map_dir.display()))?;
    }
    let bar = if images.len() > PROGRESS_ABOVE {
        let bar = ProgressBar::new(images.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut names = HashSet::new();
    let mut map = Vec::new();
    let (mut results, mut failed) = (Vec::new(), Vec::new());
    for path in &images {
        let name = unique_name(path, &mut names);
        match score_one(&mut detector, &args, path, &name, category, &mut map) {
            Ok((score, map_max)) => results.push(Scored {
                path: path.display().to_string(),
                category: args.category.clone(),
                score,
                map_max,
                verdict: args.threshold.map(|t| if score >= t { "anomalous" } else { "normal" }),
            }),
            Err(e) => {
                bar.suspend(|| eprintln!("error: {e:#}"));
                failed.push(Failed { path: path.display().to_string(), error: format!("{e:#}") });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let csv_path = args.out.join("scores.csv");
    if results.is_empty() {
        // Keep an earlier run's report rather than replace it with an empty one.
        eprintln!("{} of {} images failed; {} left as it was", failed.len(), images.len(), csv_path.display());
        return Ok(ExitCode::FAILURE);
    }
    write_atomic(&csv_path, to_csv(&results).as_bytes())
        .with_context(|| format!("{}: cannot write", csv_path.display()))?;
    let all = Results {
        model: args.model.display().to_string(),
        category: &args.category,
        scored_as: &scored_as,
        threshold: args.threshold,
        results,
        failed,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&all)?;
        let json_path = args.out.join("scores.json");
        write_atomic(&json_path, text.as_bytes()).with_context(|| format!("{}: cannot write", json_path.display()))?;
        println!("{text}");
    }
    eprintln!("scored {} of {} images into {}", all.results.len(), images.len(), csv_path.display());
    if all.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} images failed", all.failed.len());
        Ok(ExitCode::FAILURE)
    }
}

fn score_one(
    detector: &mut Detector,
    args: &Args,
    path: &Path,
    name: &str,
    category: usize,
    map: &mut Vec<f32>,
) -> anyhow::Result<(f32, f32)> {
    let image = load_rgb8(path)?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    map.resize(w * h, 0.0);
    let scores = detector
        .score(image.as_raw(), w, h, category, map)
        .with_context(|| format!("{}: cannot score", path.display()))?;
    if !args.no_heatmaps {
        heatmap::write_png(&args.out.join("heatmaps").join(format!("{name}.png")), &heatmap::overlay(&image, map))?;
    }
    if args.raw_maps {
        let p = args.out.join("maps").join(format!("{name}.npy"));
        write_atomic(&p, &heatmap::npy_bytes(map, w, h)).with_context(|| format!("{}: cannot write", p.display()))?;
    }
    Ok((scores.image, scores.map_max))
}

/// The file stem, with `-2`, `-3`, ... when two inputs share one.
fn unique_name(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut name = stem.clone();
    let mut n = 1;
    while !used.insert(name.clone()) {
        n += 1;
        name = format!("{stem}-{n}");
    }
    name
}

fn to_csv(results: &[Scored]) -> String {
    let mut s = String::from("path,category,score,verdict\n");
    for r in results {
        let _ =
            writeln!(s, "{},{},{},{}", csv_field(&r.path), csv_field(&r.category), r.score, r.verdict.unwrap_or(""));
    }
    s
}

/// RFC 4180 quoting where a field needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
