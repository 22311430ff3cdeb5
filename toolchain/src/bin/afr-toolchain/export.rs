//! `afr-toolchain export`: a trained run (or, with `--preset`, an untrained
//! model) to an fp32 ONNX model.

use std::path::PathBuf;

use afr_runtime::dataset::Format;
use afr_toolchain::export::add_dataset_categories;
use afr_toolchain::train::run::RunConfig;
use anyhow::Context;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["run", "preset"])))]
pub struct Args {
    /// A run directory written by `afr-toolchain train`.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Instead of a run: export an untrained model of this preset (adapters
    /// at identity), for benchmarks and quantization checks at full size.
    #[arg(long, requires_all = ["clip", "resnet", "categories"], conflicts_with_all = ["run", "reference_out"])]
    preset: Option<String>,
    /// With --preset: CLIP weights (a file or random:SEED).
    #[arg(long, requires = "preset")]
    clip: Option<String>,
    /// With --preset: ResNet weights (a file or random:SEED).
    #[arg(long, requires = "preset")]
    resnet: Option<String>,
    /// Comma-separated categories of the stateless table (default: those the
    /// run was trained on); `object` is always added for anything unseen.
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Also add a row for every category of this dataset (its test split): the
    /// unseen categories a zero-shot evaluation will score, each with its own
    /// stateless prompt instead of the generic `object` row.
    #[arg(long, value_name = "DATA")]
    categories_from: Option<PathBuf>,
    /// Layout of --categories-from: mvtec, visa, meta-json, btad, mpdd, folder.
    #[arg(long, default_value = "mvtec", requires = "categories_from")]
    format: Format,
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
    let mut categories = a.categories.clone();
    if let Some(data) = &a.categories_from {
        let base = match (&categories, &a.run) {
            (Some(c), _) => c.clone(),
            (None, Some(run)) => {
                RunConfig::read(run).with_context(|| format!("exporting {}", run.display()))?.categories
            }
            (None, None) => Vec::new(),
        };
        let table = add_dataset_categories(&base, data, a.format)
            .with_context(|| format!("reading the categories of {}", data.display()))?;
        categories = Some(table);
    }
    if let (Some(preset), Some(clip), Some(resnet)) = (&a.preset, &a.clip, &a.resnet) {
        let categories = categories.unwrap_or_default();
        let model = afr_toolchain::export::untrained(preset, clip, resnet, &categories, &device)
            .with_context(|| format!("building an untrained {preset} model"))?;
        model.write(&a.out).with_context(|| format!("writing {}", a.out.display()))?;
        let nodes = model.proto.graph.as_ref().map_or(0, |g| g.node.len());
        eprintln!(
            "wrote {} (untrained {preset}, {nodes} nodes, {:.1} MB)",
            a.out.display(),
            model.to_bytes().len() as f64 / 1e6
        );
        return Ok(());
    }
    let run = a.run.context("--run or --preset is required")?;
    let s = afr_toolchain::export::export(&run, categories.as_deref(), &a.out, a.reference_out.as_deref(), &device)
        .with_context(|| format!("exporting {}", run.display()))?;
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
