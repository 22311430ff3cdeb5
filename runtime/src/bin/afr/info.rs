//! `afr info`: what a model file holds.

use std::path::PathBuf;
use std::process::ExitCode;

use afr_runtime::model_info::ModelInfo;

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
    }
    Ok(ExitCode::SUCCESS)
}
