//! `afr-toolchain export`: a trained run to an fp32 ONNX model.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// A run directory written by `afr-toolchain train`.
    #[arg(long)]
    run: PathBuf,
    /// Comma-separated categories of the stateless table (default: those the
    /// run was trained on); `object` is always added for anything unseen.
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write Candle's outputs on seeded inputs (safetensors), for parity checks.
    #[arg(long)]
    reference_out: Option<PathBuf>,
    /// cpu, cuda or cuda:N (where the model is built and the reference computed).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = afr_toolchain::device::parse(&a.device).map_err(anyhow::Error::msg)?;
    let s = afr_toolchain::export::export(&a.run, a.categories.as_deref(), &a.out, a.reference_out.as_deref(), &device)
        .with_context(|| format!("exporting {}", a.run.display()))?;
    eprintln!(
        "wrote {} ({} nodes, {:.1} MB; categories {})",
        s.out.display(),
        s.nodes,
        s.bytes as f64 / 1e6,
        s.categories.join(",")
    );
    if let Some(r) = &s.reference {
        eprintln!("wrote {} (reference outputs computed on {})", r.display(), s.device);
    }
    Ok(())
}
