//! `afr bench`: latency of one or more models on this machine, measured
//! side by side: rounds go model after model, so a noisy machine slows each
//! alike and the ratios to the first model hold. Also tract's heap
//! allocations per frame (our own code makes none; see tests/no_alloc.rs)
//! and the process's resident memory after each model is loaded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use afr_runtime::detector::Detector;
use afr_runtime::image_io::frame_size_problem;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::alloc_count;
use crate::load_args::LoadArgs;

#[derive(clap::Args)]
pub struct Args {
    /// AFR ONNX model files to compare (repeat the flag); ratios are to the first.
    #[arg(long = "model", required = true)]
    models: Vec<PathBuf>,
    /// Frame size WIDTHxHEIGHT fed to `score` (resize and upsampling included;
    /// at most 16384 a side and 40 megapixels in all).
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    frame: (usize, usize),
    /// Timed frames per model per round.
    #[arg(long, default_value_t = 5)]
    frames: usize,
    /// Rounds; each round runs every model in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Untimed frames per model before the first round.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[command(flatten)]
    load: LoadArgs,
    /// Time tract's run alone (no resize, upsampling or smoothing), to compare
    /// with another engine on the same ONNX file (scripts/bench_compare.py).
    #[arg(long)]
    model_only: bool,
    /// Print machine-readable JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let p =
        |v: &str| v.trim().parse::<usize>().ok().filter(|&v| v > 0).ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"));
    let (w, h) = (p(w)?, p(h)?);
    match frame_size_problem(w as u64, h as u64) {
        Some(problem) => Err(format!("frame {w}x{h}: {problem}")),
        None => Ok((w, h)),
    }
}

#[derive(Serialize)]
struct ModelResult {
    model: String,
    preset: String,
    precision: String,
    input_size: usize,
    file_bytes: u64,
    load_ms: f64,
    /// The process's resident memory right after this model was loaded
    /// (models load in order, so the growth from one to the next is an
    /// upper bound of what a model holds), where the OS reports it (Linux).
    rss_after_load_bytes: Option<u64>,
    /// Per frame: `score` end to end (preprocess, tract, upsample, smoothing),
    /// or tract alone with --model-only.
    median_ms: f64,
    min_ms: f64,
    p90_ms: f64,
    mean_ms: f64,
    /// Median latency over that of the first model.
    ratio_to_first: f64,
    /// Heap allocations per frame after warm-up, all inside tract.
    allocations_per_frame: f64,
}

struct Loaded {
    detector: Detector,
    load: Duration,
    rss: Option<u64>,
    times: Vec<f64>,
    allocations: usize,
    frames: usize,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.frames > 0 && a.rounds > 0, "--frames and --rounds must be at least 1");
    let options = a.load.options(true);
    let mut loaded = Vec::with_capacity(a.models.len());
    for path in &a.models {
        let start = Instant::now();
        let detector = Detector::load_with(path, options).context("loading a model to bench")?;
        let load = start.elapsed();
        loaded.push(Loaded { detector, load, rss: resident_bytes(), times: Vec::new(), allocations: 0, frames: 0 });
    }
    let (w, h) = a.frame;
    let frame = test_frame(w, h);
    let mut map = vec![0.0f32; w * h];
    for m in &mut loaded {
        let row = m.detector.category_or_default("object").unwrap_or(0);
        for _ in 0..a.warmup {
            m.detector.score(&frame, w, h, row, &mut map).context("warm-up frame")?;
        }
    }
    let bar =
        if a.json { ProgressBar::hidden() } else { ProgressBar::new((a.rounds * loaded.len() * a.frames) as u64) };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} frames, eta {eta}").expect("valid template"));
    for _ in 0..a.rounds {
        for m in &mut loaded {
            let row = m.detector.category_or_default("object").unwrap_or(0);
            for _ in 0..a.frames {
                let before = alloc_count::allocations();
                let start = Instant::now();
                if a.model_only {
                    m.detector.run_model_only()?;
                } else {
                    m.detector.score(&frame, w, h, row, &mut map)?;
                }
                m.times.push(start.elapsed().as_secs_f64() * 1e3);
                m.allocations += alloc_count::allocations() - before;
                m.frames += 1;
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let first = median(&loaded[0].times);
    let results: Vec<ModelResult> = loaded
        .iter()
        .map(|m| {
            let info = m.detector.info();
            let mut sorted = m.times.clone();
            sorted.sort_by(f64::total_cmp);
            let med = median(&m.times);
            ModelResult {
                model: info.path.display().to_string(),
                preset: info.preset.clone(),
                precision: info.precision.clone(),
                input_size: info.input_size,
                file_bytes: info.file_bytes,
                load_ms: m.load.as_secs_f64() * 1e3,
                rss_after_load_bytes: m.rss,
                median_ms: med,
                min_ms: sorted[0],
                p90_ms: sorted[((sorted.len() - 1) as f64 * 0.9).round() as usize],
                mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
                ratio_to_first: med / first,
                allocations_per_frame: m.allocations as f64 / m.frames as f64,
            }
        })
        .collect();
    if a.json {
        let value = serde_json::json!({
            "frame": [w, h],
            "model_only": a.model_only,
            "threads": a.load.threads(),
            "rounds": a.rounds,
            "frames_per_round": a.frames,
            "models": results,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let what = if a.model_only { "tract alone".to_string() } else { format!("{w}x{h} frames end to end") };
        println!(
            "{what}, {} thread(s), {} rounds x {} frames per model, interleaved\n",
            a.load.threads(),
            a.rounds,
            a.frames
        );
        println!("| model | preset | precision | size MB | load ms | median ms | p90 ms | min ms | x first | allocs/frame | RSS after load MB |");
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &results {
            let rss = r.rss_after_load_bytes.map_or("-".to_string(), |b| format!("{:.1}", b as f64 / 1e6));
            println!(
                "| {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                r.model,
                r.preset,
                r.precision,
                r.file_bytes as f64 / 1e6,
                r.load_ms,
                r.median_ms,
                r.p90_ms,
                r.min_ms,
                r.ratio_to_first,
                r.allocations_per_frame,
                rss
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A deterministic frame with texture and edges (a flat one would let a
/// lazy path look fast).
fn test_frame(w: usize, h: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..w * h * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let (x, y) = ((i / 3) % w, (i / 3) / w);
            let stripes = if (x / 16 + y / 16) % 2 == 0 { 160 } else { 60 };
            (stripes + (state % 64) as usize) as u8
        })
        .collect()
}

/// VmRSS of this process (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
