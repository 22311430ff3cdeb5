//! `afr-quantize`: an fp16 or int8 model from the fp32 AFR export, with a
//! report of what was done to each layer and how far the outputs moved.

use std::path::PathBuf;
use std::process::ExitCode;

use afr_quantize::int8::ActivationMode;
use afr_quantize::{quantize_file, Fp16Compute, KeepFp32, Options, Phase, Precision};
use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Quantize an AFR-CLIP ONNX model (written by `afr-toolchain export`) to fp16 or int8.
///
/// The output keeps the model's contract: f32 `image` and `category` in,
/// f32 `image_score` and `anomaly_map` out, every `afr.*` metadata entry
/// (with `afr.precision` set), and the text tables bit-identical. The
/// quantized model is run in tract against the fp32 one before it is
/// written, and the report (Markdown on stdout, or JSON) gives the size,
/// the choice made for each layer and the measured drift.
#[derive(Debug, Parser)]
#[command(name = "afr-quantize", version, after_help = afr_runtime::cli::LIMITS_HELP)]
struct Cli {
    /// The fp32 model to quantize (`afr.precision = fp32`).
    #[arg(long, value_name = "MODEL.onnx")]
    input: PathBuf,
    /// The precision to produce. fp16: the backbone's weights stored as f16
    /// (about half the size; DESIGN.md holds the maps within 5e-3 of fp32).
    /// int8: 8-bit weights (at most 0.3 of the size, maps within 3e-2),
    /// calibrated on --calibration when given.
    #[arg(long, value_parser = parse_precision)]
    precision: Precision,
    /// Where to write the quantized model. Written whole or not at all, and
    /// only after it has loaded and run in tract.
    #[arg(long, value_name = "OUT.onnx")]
    output: PathBuf,
    /// A folder of images (searched recursively; mask folders skipped): the
    /// images the drift is measured on, and the calibration set of
    /// `--int8-activations calibrated`. Without it the drift is measured on
    /// a few seeded random images.
    #[arg(long, value_name = "DIR")]
    calibration: Option<PathBuf>,
    /// Use at most this many images of --calibration, spread over the folder.
    #[arg(long, value_name = "N", default_value_t = afr_quantize::run::DEFAULT_MAX_CALIBRATION_IMAGES,
          value_parser = parse_count)]
    max_calibration_images: usize,
    /// Keep the weights of nodes whose name matches PATTERN in fp32 (`*`
    /// matches any run of characters, `/` included), e.g.
    /// `vision/block1/*` or `*/attn/qkv/*`. Repeat for several patterns.
    #[arg(long = "keep-fp32", value_name = "PATTERN")]
    keep_fp32: Vec<String>,
    /// fp16 only: where the arithmetic happens. `storage`: f16 weights,
    /// f32 arithmetic (tract turns the weights back to f32 at load; the
    /// fastest on x86-64, which has no f16 kernels). `matmul`: the
    /// backbone's matrix products in f16 too, for CPUs with native f16
    /// arithmetic (aarch64 with FEAT_FP16); a quarter slower on x86-64.
    /// Convolutions stay f32 in both modes.
    #[arg(long, value_name = "MODE", default_value = "storage", value_parser = parse_compute)]
    fp16_compute: Fp16Compute,
    /// int8 only: how activations are quantized. `auto` (default): each
    /// frame's own range at every integer matmul (measured the most robust
    /// on categories the calibration never saw). `calibrated`: fixed ranges
    /// from --calibration (2-4% faster; for images like the calibration set).
    /// `dynamic`: per frame everywhere. `weights-only`: int8 storage, f32
    /// arithmetic (smaller, not faster).
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_activations)]
    int8_activations: ActivationMode,
    /// Skip the drift measurement (the model is still loaded in tract once).
    #[arg(long)]
    no_drift: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    match s.parse()? {
        Precision::Fp32 => Err("fp32 is the export's own precision: choose fp16 or int8".into()),
        p => Ok(p),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive whole number")),
    }
}

fn parse_compute(s: &str) -> Result<Fp16Compute, String> {
    s.parse()
}

fn parse_activations(s: &str) -> Result<ActivationMode, String> {
    s.parse()
}

fn main() -> ExitCode {
    match run(afr_runtime::cli::parse_args("afr-quantize")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("afr-quantize: error: {}", afr_runtime::cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let opts = Options {
        precision: cli.precision,
        calibration: cli.calibration.clone(),
        max_calibration_images: cli.max_calibration_images,
        keep_fp32: KeepFp32::new(cli.keep_fp32.iter().cloned()),
        fp16_compute: cli.fp16_compute,
        int8_activations: cli.int8_activations,
        drift: !cli.no_drift,
    };
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} images ({eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut phase = None;
    let mut progress = |p: Phase, done: usize, total: usize| {
        if phase != Some(p) {
            phase = Some(p);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
            bar.set_length(total as u64);
            bar.set_message(match p {
                Phase::Calibration => "calibrating",
                Phase::Drift => "drift",
            });
        }
        bar.set_position(done as u64);
    };
    let report = quantize_file(&cli.input, &cli.output, &opts, &mut progress)
        .with_context(|| format!("quantizing {} to {}", cli.input.display(), cli.precision))?;
    bar.finish_and_clear();
    let json = report.to_json();
    if let Some(path) = &cli.report {
        afr_runtime::atomic::write_atomic(path, json.as_bytes())
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if cli.json {
        println!("{json}");
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
}
