//! The flags that set up a training run, shared by `train` and `benchmark`.

use std::path::PathBuf;

use afr_runtime::dataset::Format;
use afr_toolchain::afr::{AfrConfig, SpMode};
use afr_toolchain::train::trainer::TrainOptions;

#[derive(clap::Args)]
pub struct NewRun {
    /// Backbone preset: vit-l14-336 (the paper's), vit-b16, tiny, or a preset JSON file.
    #[arg(long, default_value = "vit-l14-336")]
    preset: String,
    /// CLIP weights: Hugging Face CLIPModel directory or safetensors, OpenAI /
    /// open_clip safetensors, or random:SEED.
    #[arg(long)]
    clip: Option<String>,
    /// ResNet weights for self prompting (torchvision / timm safetensors) or random:SEED.
    #[arg(long)]
    resnet: Option<String>,
    /// The auxiliary dataset's root; its test split is trained on (it alone
    /// holds anomalies and masks), as in every peer.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Dataset layout of --data: mvtec, visa, meta-json, btad, mpdd, folder.
    #[arg(long, default_value = "mvtec")]
    format: Format,
    /// Comma-separated categories to train on (default: all).
    #[arg(long, value_delimiter = ',')]
    categories: Option<Vec<String>>,
    /// Prompt file replacing models/prompts.json.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Epochs to train [default: 100]. A run that has fewer (`train --resume`, or the
    /// benchmark's run in its --out) trains on to this total.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per training step (at least 1).
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Base learning rate (> 0); epoch e uses lr / (e + 1).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    lr: f64,
    /// Adam betas as b1,b2, each in [0, 1) (AnomalyCLIP and APRIL-GAN use 0.5,0.999).
    #[arg(long, value_delimiter = ',', default_values_t = [0.9, 0.999], allow_negative_numbers = true)]
    betas: Vec<f64>,
    /// Seed of the trainable initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    afr: AfrArgs,
}

/// AFR-CLIP's switches; the defaults are the paper's method, the other values
/// its ablations (Tables 3-6).
#[derive(clap::Args)]
pub struct AfrArgs {
    /// Self prompting: both (P_v + P_l), visual-only, learned-only, off (Tables 3 and 5).
    #[arg(long, value_enum, default_value = "both")]
    sp: SpArg,
    /// Carry SP's prompts through the first N of the four stages (1-4): they
    /// enter layers 2..=N*L/4. 1 is the paper's method; 2-4 are its Table 4.
    #[arg(long, default_value_t = 1)]
    sp_stages: usize,
    /// Number of SP prompt tokens K.
    #[arg(long, default_value_t = 5)]
    prompt_tokens: usize,
    /// MPFA window m (odd; 1 turns MPFA off; Tables 3 and 6).
    #[arg(long, default_value_t = 3)]
    mpfa_window: usize,
    /// Turn CMFR off: image-text cosine scoring (the paper's Table 3, row 1).
    #[arg(long)]
    no_cmfr: bool,
    /// Softmax temperature of the scoring (> 0).
    #[arg(long, default_value_t = 0.07, allow_negative_numbers = true)]
    tau: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SpArg {
    Both,
    VisualOnly,
    LearnedOnly,
    Off,
}

impl AfrArgs {
    fn config(&self) -> AfrConfig {
        AfrConfig {
            prompt_tokens: self.prompt_tokens,
            sp: match self.sp {
                SpArg::Both => SpMode::Both,
                SpArg::VisualOnly => SpMode::VisualOnly,
                SpArg::LearnedOnly => SpMode::LearnedOnly,
                SpArg::Off => SpMode::Off,
            },
            sp_stages: self.sp_stages,
            mpfa_window: self.mpfa_window,
            cmfr: !self.no_cmfr,
            tau: self.tau,
        }
    }
}

impl NewRun {
    /// The run's settings; `what` ends the message when a required flag is
    /// missing (e.g. "to start a run (or --resume to continue one)").
    pub fn options(self, what: &str) -> anyhow::Result<TrainOptions> {
        anyhow::ensure!(self.betas.len() == 2, "--betas takes two values, b1,b2 (got {:?})", self.betas);
        let missing = |flag: &str| anyhow::anyhow!("{flag} is required {what}");
        Ok(TrainOptions {
            preset: self.preset,
            clip: self.clip.ok_or_else(|| missing("--clip"))?,
            resnet: self.resnet.ok_or_else(|| missing("--resnet"))?,
            data: self.data.ok_or_else(|| missing("--data"))?,
            format: self.format,
            categories: self.categories,
            prompts: self.prompts,
            afr: self.afr.config(),
            epochs: self.epochs.unwrap_or(100),
            batch_size: self.batch_size,
            lr: self.lr,
            betas: (self.betas[0], self.betas[1]),
            seed: self.seed,
        })
    }
}
