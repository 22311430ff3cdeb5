//! `afr-toolchain train`: train AFR-CLIP on an auxiliary dataset.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use afr_toolchain::train::trainer::{self, Outcome};
use anyhow::Context;

use crate::progress::TrainingBar;
use crate::run_args::NewRun;

#[derive(clap::Args)]
pub struct Args {
    /// The run directory: config.json, checkpoint.N.safetensors,
    /// optimizer.N.safetensors and log.jsonl (one line per epoch). Each save is
    /// one transaction: a killed or out-of-disk training resumes from the last
    /// complete state.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint; every other setting
    /// but --epochs is taken from the run's config.json.
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    run: NewRun,
}

/// A flag that the first Ctrl-C raises (training saves after the current
/// batch and stops); a second one exits at once.
pub fn stop_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint after this batch (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let stop = stop_on_ctrl_c()?;
    let mut obs = TrainingBar::default();
    let outcome = if a.resume {
        trainer::resume(&a.out, a.run.epochs, &device, &stop, &mut obs)
            .with_context(|| format!("resuming {}", a.out.display()))?
    } else {
        let opts = a.run.options("to start a run (or --resume to continue one)")?;
        trainer::start(&opts, &a.out, &device, &stop, &mut obs)
            .with_context(|| format!("training into {}", a.out.display()))?
    };
    obs.finish();
    match outcome {
        Outcome::Finished { epochs } => eprintln!("trained {epochs} epochs; the run is in {}", a.out.display()),
        Outcome::Interrupted { epoch, batch } => {
            eprintln!(
                "interrupted in epoch {} after batch {batch}; checkpoint saved. Continue with: afr-toolchain train --resume --out {}",
                epoch + 1,
                a.out.display()
            );
            std::process::exit(130);
        }
    }
    Ok(())
}
