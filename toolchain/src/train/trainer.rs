//! Training AFR-CLIP on an auxiliary dataset (DESIGN.md section 2): Adam,
//! lr = base / (epoch + 1), image BCE + per-stage focal and Dice losses on
//! maps upsampled to the mask size; only the trainable tensors get
//! gradients. A checkpoint is saved after every epoch, and on a stop request
//! after the current batch, so that `resume` continues exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use afr_runtime::dataset::{Dataset, Format, Sample, Split};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::adam::{Adam, AdamConfig};
use super::data::ImageLoader;
use super::loss::{bce_loss, stage_loss};
pub use super::run::EpochLog;
use super::run::{self, RunConfig, TrainSettings, WeightRef};
use crate::afr::prompts::PromptSet;
use crate::afr::{AfrClip, AfrConfig, AfrOutput};
use crate::nn::bilinear_upsample;
use crate::preset::Preset;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] afr_runtime::dataset::DatasetError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error(transparent)]
    Build(#[from] super::model::BuildError),
    #[error(transparent)]
    Batch(#[from] super::data::BatchError),
    #[error(transparent)]
    Loss(#[from] super::loss::LossError),
    #[error(transparent)]
    Adam(#[from] super::adam::AdamError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Setup(String),
    #[error("loss became {value} at epoch {epoch}, batch {batch}: lower the learning rate")]
    NotFinite { epoch: usize, batch: usize, value: f32 },
}

/// A new run's settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub preset: String,
    pub clip: String,
    pub resnet: String,
    pub data: PathBuf,
    pub format: Format,
    pub categories: Option<Vec<String>>,
    pub prompts: Option<PathBuf>,
    pub afr: AfrConfig,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub betas: (f64, f64),
    pub seed: u64,
}

/// Hooks for a progress display.
pub trait Observer {
    fn start(&mut self, _total_batches: usize, _done: usize) {}
    fn batch(&mut self, _epoch: usize, _loss: f64) {}
    fn epoch(&mut self, _log: &EpochLog) {}
}

impl Observer for () {}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Finished { epochs: usize },
    Interrupted { epoch: usize, batch: usize },
}

/// Starts a run in `out` (which must not hold one already).
pub fn start(
    opts: &TrainOptions,
    out: &Path,
    device: &Device,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<Outcome, TrainError> {
    let settings = TrainSettings {
        data: opts.data.clone(),
        format: opts.format.name().to_string(),
        epochs: opts.epochs,
        batch_size: opts.batch_size,
        lr: opts.lr,
        betas: opts.betas,
        seed: opts.seed,
    };
    settings.check(|field| format!("--{}", field.replace('_', "-"))).map_err(TrainError::Setup)?;
    opts.afr.check().map_err(TrainError::Setup)?;
    if let Some(names) = &opts.categories {
        if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
            return Err(TrainError::Setup(format!(
                "--categories {:?} holds an empty name; give names separated by commas, e.g. fabric,washer",
                names.join(",")
            )));
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(TrainError::Setup(format!("{}: is a file; --out names the run's directory", out.display())));
    }
    if out.join(run::CONFIG).exists() {
        return Err(TrainError::Setup(format!(
            "{} already holds a run; use --resume to continue it or choose another --out",
            out.display()
        )));
    }
    let preset = Preset::resolve(&opts.preset).map_err(|e| TrainError::Setup(e.to_string()))?;
    let prompts = match &opts.prompts {
        Some(p) => PromptSet::from_file(p).map_err(|e| TrainError::Setup(e.to_string()))?,
        None => PromptSet::builtin(),
    };
    let data = Dataset::open(&opts.data, opts.format, Split::Test, opts.categories.as_deref())?;
    let cfg = RunConfig::new(
        preset,
        opts.afr.clone(),
        WeightRef::new(&opts.clip)?,
        WeightRef::new(&opts.resnet)?,
        prompts,
        data.categories(),
        settings,
    );
    let (model, params) = super::model::build(&cfg, &cfg.categories, device)?;
    let mut adam = Adam::new(params.named_vars(), adam_config(&cfg))?;
    let mut cfg = cfg;
    run::save(out, &mut cfg, &params.tensors(), &adam.export_state()?)?;
    train_loop(cfg, &model, &params, &mut adam, &data, out, device, stop, obs)
}

/// Continues the run in `run_dir` from its last checkpoint.
/// `epochs`, when given, replaces the run's epoch count: a finished run trains on. It may
/// not end before the epoch already started (the lr schedule does not depend on it).
pub fn resume(
    run_dir: &Path,
    epochs: Option<usize>,
    device: &Device,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<Outcome, TrainError> {
    if !run_dir.join(run::CONFIG).is_file() {
        return Err(TrainError::Setup(format!(
            "{}: no run to resume (no {}); start one without --resume",
            run_dir.display(),
            run::CONFIG
        )));
    }
    let mut cfg = RunConfig::read(run_dir)?;
    if let Some(epochs) = epochs {
        let started = cfg.progress.epoch + usize::from(cfg.progress.batch > 0);
        if epochs < started.max(1) {
            return Err(TrainError::Setup(format!(
                "{}: the run has trained into epoch {started}; --epochs {epochs} would end it before that",
                run_dir.join(run::CONFIG).display()
            )));
        }
        cfg.train.epochs = epochs;
    }
    let format: Format =
        cfg.train.format.parse().map_err(|e: afr_runtime::dataset::DatasetError| TrainError::Setup(e.to_string()))?;
    let data = Dataset::open(&cfg.train.data, format, Split::Test, Some(&cfg.categories))?;
    let (model, params) = super::model::build(&cfg, &cfg.categories, device)?;
    params
        .assign(&run::load_tensors(run_dir, &cfg.checkpoint, &cfg, device)?, &run_dir.join(&cfg.checkpoint))
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    let mut adam = Adam::new(params.named_vars(), adam_config(&cfg))?;
    adam.import_state(&run::load_tensors(run_dir, &cfg.optimizer, &cfg, device)?)?;
    // A save stopped after its commit may have left the previous state's files, or a log one epoch short.
    run::recover(run_dir, &cfg)?;
    train_loop(cfg, &model, &params, &mut adam, &data, run_dir, device, stop, obs)
}

fn adam_config(cfg: &RunConfig) -> AdamConfig {
    AdamConfig { lr: cfg.train.lr, betas: cfg.train.betas, ..AdamConfig::default() }
}

/// The batches of `epoch`: a permutation fixed by (seed, epoch), so a resumed
/// run sees the same order.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    order
}

#[allow(clippy::too_many_arguments)]
fn train_loop(
    mut cfg: RunConfig,
    model: &AfrClip,
    params: &crate::afr::ParamStore,
    adam: &mut Adam,
    data: &Dataset,
    out: &Path,
    device: &Device,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<Outcome, TrainError> {
    let loader = ImageLoader::new(cfg.preset.input_size);
    let tables = model.tables();
    let bs = cfg.train.batch_size;
    let batches = data.samples.len().div_ceil(bs);
    obs.start(batches * cfg.train.epochs, cfg.progress.epoch * batches + cfg.progress.batch);
    while cfg.progress.epoch < cfg.train.epochs {
        let epoch = cfg.progress.epoch;
        let lr = cfg.train.lr / (epoch + 1) as f64;
        adam.set_lr(lr)?;
        let started = Instant::now();
        let order = epoch_order(data.samples.len(), cfg.train.seed, epoch);
        for (b, chunk) in order.chunks(bs).enumerate().skip(cfg.progress.batch) {
            let samples: Vec<&Sample> = chunk.iter().map(|&i| &data.samples[i]).collect();
            let batch = loader.batch(&samples, |c| tables.index_of(c), device)?;
            let out_ = model.forward(&batch.pixels, &batch.categories)?;
            let (image, pixel) = losses(&out_, &batch, loader.size())?;
            let loss = (&image + &pixel)?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainError::NotFinite { epoch, batch: b, value });
            }
            adam.step(&loss.backward()?)?;
            let p = &mut cfg.progress.partial;
            *p.entry("loss".into()).or_default() += value as f64;
            *p.entry("image_loss".into()).or_default() += image.to_scalar::<f32>()? as f64;
            *p.entry("pixel_loss".into()).or_default() += pixel.to_scalar::<f32>()? as f64;
            *p.entry("batches".into()).or_default() += 1.0;
            *p.entry("seconds".into()).or_default() += 0.0;
            cfg.progress.batch = b + 1;
            cfg.progress.images_seen += samples.len();
            obs.batch(epoch, value as f64);
            if stop.load(Ordering::SeqCst) && b + 1 < batches {
                *cfg.progress.partial.get_mut("seconds").unwrap() += started.elapsed().as_secs_f64();
                run::save(out, &mut cfg, &params.tensors(), &adam.export_state()?)?;
                return Ok(Outcome::Interrupted { epoch, batch: b + 1 });
            }
        }
        let p = std::mem::take(&mut cfg.progress.partial);
        let n = p.get("batches").copied().unwrap_or(1.0);
        let seconds = p.get("seconds").copied().unwrap_or(0.0) + started.elapsed().as_secs_f64();
        let log = EpochLog {
            epoch: epoch + 1,
            loss: p.get("loss").copied().unwrap_or(0.0) / n,
            image_loss: p.get("image_loss").copied().unwrap_or(0.0) / n,
            pixel_loss: p.get("pixel_loss").copied().unwrap_or(0.0) / n,
            lr,
            seconds,
            images_per_s: data.samples.len() as f64 / seconds.max(1e-9),
        };
        cfg.progress.epoch += 1;
        cfg.progress.batch = 0;
        cfg.log.push(log.clone());
        run::save(out, &mut cfg, &params.tensors(), &adam.export_state()?)?;
        obs.epoch(&log);
        if stop.load(Ordering::SeqCst) && cfg.progress.epoch < cfg.train.epochs {
            return Ok(Outcome::Interrupted { epoch: cfg.progress.epoch, batch: 0 });
        }
    }
    Ok(Outcome::Finished { epochs: cfg.progress.epoch })
}

/// Image BCE on the image score, and the per-stage segmentation losses on the
/// images that have pixel ground truth.
fn losses(out: &AfrOutput, batch: &super::data::Batch, size: usize) -> Result<(Tensor, Tensor), TrainError> {
    let image = bce_loss(&out.image_score, &batch.labels)?;
    let with_mask: Vec<u32> = batch.has_mask.iter().enumerate().filter(|(_, &m)| m).map(|(i, _)| i as u32).collect();
    let mut pixel = image.zeros_like()?;
    if !with_mask.is_empty() {
        let idx = Tensor::new(with_mask.as_slice(), image.device())?;
        let masks = batch.masks.index_select(&idx, 0)?;
        for map in &out.stage_maps {
            let up = bilinear_upsample(&map.index_select(&idx, 0)?, size, size)?;
            pixel = (pixel + stage_loss(&up, &masks)?)?;
        }
    }
    Ok((image, pixel))
}

/// The per-epoch log of a run.
pub fn read_log(run_dir: &Path) -> Vec<BTreeMap<String, f64>> {
    std::fs::read_to_string(run_dir.join(run::LOG))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
