//! `afr`: score images, evaluate on a dataset, describe and benchmark a
//! model, with an exported AFR-CLIP ONNX file run by tract.

mod alloc_count;
mod bench;
mod eval;
mod info;
mod inputs;
mod load_args;
mod score;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "afr",
    version,
    about = "AFR-CLIP anomaly detection with an exported ONNX model (tract runtime)",
    after_help = afr_runtime::cli::LIMITS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score images: anomaly score per image, heatmap overlays, optional raw maps.
    #[command(after_help = afr_runtime::cli::LIMITS_HELP)]
    Score(score::Args),
    /// Evaluate on a dataset: the seven metrics per category and their mean.
    #[command(after_help = afr_runtime::cli::LIMITS_HELP)]
    Eval(eval::Args),
    /// Describe a model: metadata, categories, input size, precision, size.
    #[command(after_help = afr_runtime::cli::LIMITS_HELP)]
    Info(info::Args),
    /// Latency of models side by side (e.g. fp32, fp16 and int8 of one export).
    #[command(after_help = afr_runtime::cli::LIMITS_HELP)]
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli: Cli = afr_runtime::cli::parse_args("afr");
    let result = match cli.command {
        Command::Score(a) => score::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Info(a) => info::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", afr_runtime::cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
