//! `afr-toolchain`: AFR-CLIP's training-side command line.

mod inspect;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Inspect(args) => inspect::run(args),
    }
}
