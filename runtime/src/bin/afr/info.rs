//! `afr info`: what a model file holds.

use std::path::PathBuf;
use std::process::ExitCode;

use afr_runtime::model_info::ModelInfo;
use afr_runtime::prototypes::{self, Prototypes};

/// Values of a prototype row shown in the text output (`--json` has them all).
const SHOWN: usize = 6;

#[derive(clap::Args)]
pub struct Args {
    /// The AFR ONNX model file.
    #[arg(long)]
    model: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let info = ModelInfo::load(&args.model)?;
    let categories: Vec<&str> = info.categories.iter().map(|c| c.as_str()).collect();
    if args.json {
        let value = serde_json::json!({
            "model": info.path.display().to_string(),
            "format_version": info.format_version,
            "preset": info.preset,
            "input_size": info.input_size,
            "mean": info.mean,
            "std": info.std,
            "resize": info.resize,
            "categories": categories,
            "precision": info.precision,
            "smoothing_sigma": info.smoothing_sigma,
            "source_sha256": info.source_sha256,
            "parameters": info.parameters,
            "file_bytes": info.file_bytes,
            "metadata": info.metadata,
            "prototypes": info.prototypes.as_ref().map(|p| {
                let rows = |row: fn(&Prototypes, usize) -> &[f32]| {
                    (0..p.stages).map(|s| row(p, s).iter().map(|&v| shortest(v)).collect::<Vec<_>>()).collect::<Vec<_>>()
                };
                serde_json::json!({
                    "stages": p.stages,
                    "dim": p.dim,
                    "cosine": p.cosines().into_iter().map(shortest).collect::<Vec<_>>(),
                    "normal": rows(Prototypes::normal_row),
                    "abnormal": rows(Prototypes::abnormal_row),
                })
            }),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("model:           {}", info.path.display());
        println!("format version:  {}", info.format_version);
        println!("preset:          {}", info.preset);
        println!("input size:      {0} x {0}", info.input_size);
        println!("precision:       {}", info.precision);
        println!("parameters:      {}", info.parameters);
        println!("file size:       {} bytes", info.file_bytes);
        println!("resize:          {}", info.resize);
        println!("mean / std:      {:?} / {:?}", info.mean, info.std);
        println!("smoothing sigma: {} px at the input size", info.smoothing_sigma);
        println!("source sha256:   {}", info.source_sha256);
        println!("categories ({}): {}", categories.len(), categories.join(", "));
        print_prototypes(info.prototypes.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

/// `v` as the f64 of its shortest decimal form, so that JSON shows `0.6`
/// for the f32 0.6 rather than 0.6000000238418579 (both read back as the same f32).
fn shortest(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The prototypes' shape, how close the two states are per stage, and the
/// start of the first stage's rows.
fn print_prototypes(p: Option<&Prototypes>) {
    let Some(p) = p else {
        println!("prototypes:      not stored in this file (re-export it to keep them)");
        return;
    };
    println!(
        "prototypes:      {} stages x {} ({}, {}), after the text linear",
        p.stages,
        p.dim,
        prototypes::NORMAL,
        prototypes::ABNORMAL
    );
    let cosines: Vec<String> = p.cosines().iter().map(|c| format!("{c:.4}")).collect();
    println!("  cos(normal, abnormal) per stage: {}", cosines.join(", "));
    for (name, row) in [("normal", p.normal_row(0)), ("abnormal", p.abnormal_row(0))] {
        let head: Vec<String> = row.iter().take(SHOWN).map(|v| format!("{v:.4}")).collect();
        let more =
            if row.len() > SHOWN { format!(" ... ({} values; --json shows all)", row.len()) } else { String::new() };
        println!("  {name:<8} stage 1: {}{more}", head.join(" "));
    }
}
