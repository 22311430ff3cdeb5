//! `afr-toolchain`: AFR-CLIP's training-side command line.

mod benchmark;
mod demo;
mod evaluate;
mod export;
mod inspect;
mod progress;
mod run_args;
mod synth;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "afr-toolchain",
    version,
    about = "AFR-CLIP in Candle: load backbones, train, evaluate and export zero-shot anomaly detectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a preset's CLIP and ResNet weights and show what was loaded: the
    /// architecture, parameter counts and the file each part came from.
    Inspect(inspect::Args),
    /// The whole pipeline on a built-in default: synthetic data, train the tiny
    /// preset, export, evaluate the exported model on an unseen category.
    Demo(demo::Args),
    /// Write a synthetic MVTec-layout dataset with exact defect masks.
    Synth(synth::Args),
    /// Train AFR-CLIP on an auxiliary dataset (Ctrl-C saves; --resume continues).
    Train(train::Args),
    /// Evaluate a trained run on a dataset: seven metrics per category and their mean.
    Evaluate(evaluate::Args),
    /// Export a trained run's vision branch to ONNX (fp32), text prompts folded into tables.
    Export(export::Args),
    /// The paper's zero-shot protocol in one command: train (or reuse a run), export with the
    /// test categories, quantize, evaluate fp32 / fp16 / int8 in tract, print the paper's tables.
    Benchmark(benchmark::Args),
}

/// Every failure is one line on stderr naming the file or flag and the problem,
/// and a non-zero exit (2 for a command line clap cannot parse, 1 otherwise).
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: bad command line");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (many library errors
/// already show their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Train(args) => train::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Export(args) => export::run(args),
        Command::Benchmark(args) => benchmark::run(args),
    }
}
