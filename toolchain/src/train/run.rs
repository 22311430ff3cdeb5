//! A run directory (DESIGN.md section 3): `checkpoint.safetensors` holds only
//! the trainable tensors, `optimizer.safetensors` the Adam state, and
//! `config.json` everything needed to rebuild the model and resume: the
//! preset, the AFR switches, the weight files with their sha256, the prompts,
//! the categories seen and how far training got. Every file is written to a
//! temporary name and renamed, and the two tensor files carry the progress
//! they belong to, so a run killed between renames is detected on resume.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::afr::prompts::PromptSet;
use crate::afr::AfrConfig;
use crate::preset::Preset;

pub const CONFIG: &str = "config.json";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

/// A weight file and its digest (`random:SEED` has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightRef {
    pub spec: String,
    pub sha256: Option<String>,
}

impl WeightRef {
    pub fn new(spec: &str) -> Result<Self, RunError> {
        let sha256 = if spec.starts_with("random:") {
            None
        } else {
            let p = Path::new(spec);
            let file = if p.is_dir() { p.join("model.safetensors") } else { p.to_path_buf() };
            Some(sha256_file(&file)?)
        };
        Ok(Self { spec: spec.to_string(), sha256 })
    }
}

pub fn sha256_file(path: &Path) -> Result<String, RunError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// How training is set up; fixed for the life of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub data: PathBuf,
    pub format: String,
    pub epochs: usize,
    pub batch_size: usize,
    /// lr of epoch e is `lr / (e + 1)`.
    pub lr: f64,
    pub betas: (f64, f64),
    pub seed: u64,
}

/// How far training got: `epoch` epochs are complete, and `batch` batches of
/// the next one (non-zero only after an interruption).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    pub batch: usize,
    /// Sums over the batches done in the current epoch (to resume its mean).
    pub partial: BTreeMap<String, f64>,
    pub images_seen: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub format_version: u32,
    pub preset: Preset,
    pub afr: AfrConfig,
    pub clip: WeightRef,
    pub resnet: WeightRef,
    pub prompts: PromptSet,
    /// The categories trained on (the model's table adds `object`).
    pub categories: Vec<String>,
    pub train: TrainSettings,
    pub progress: Progress,
    pub checkpoint: String,
    pub optimizer: String,
}

impl RunConfig {
    pub fn new(
        preset: Preset,
        afr: AfrConfig,
        clip: WeightRef,
        resnet: WeightRef,
        prompts: PromptSet,
        categories: Vec<String>,
        train: TrainSettings,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            preset,
            afr,
            clip,
            resnet,
            prompts,
            categories,
            train,
            progress: Progress::default(),
            checkpoint: CHECKPOINT.into(),
            optimizer: OPTIMIZER.into(),
        }
    }

    pub fn read(run: &Path) -> Result<Self, RunError> {
        let path = run.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| RunError::Invalid { path: path.clone(), message: format!("not a run configuration: {e}") })?;
        if cfg.format_version != FORMAT_VERSION {
            return Err(RunError::Invalid {
                path,
                message: format!("format version {} (this build reads {FORMAT_VERSION})", cfg.format_version),
            });
        }
        cfg.afr.check().map_err(|message| RunError::Invalid { path, message: format!("afr: {message}") })?;
        Ok(cfg)
    }

    /// The progress stamp the tensor files carry.
    fn stamp(&self) -> String {
        format!("{}:{}", self.progress.epoch, self.progress.batch)
    }
}

/// Saves tensors, optimizer state and config, each atomically, config last.
pub fn save(
    run: &Path,
    cfg: &RunConfig,
    params: &BTreeMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> Result<(), RunError> {
    std::fs::create_dir_all(run).map_err(io(run))?;
    let meta = HashMap::from([("afr.progress".to_string(), cfg.stamp())]);
    write_tensors(&run.join(&cfg.checkpoint), params.iter(), &meta)?;
    write_tensors(&run.join(&cfg.optimizer), optimizer.iter(), &meta)?;
    let path = run.join(CONFIG);
    let json = serde_json::to_string_pretty(cfg).expect("config serialises");
    afr_runtime::atomic::write_atomic(&path, json.as_bytes()).map_err(io(&path))
}

fn write_tensors<'a>(
    path: &Path,
    tensors: impl Iterator<Item = (&'a String, &'a Tensor)>,
    meta: &HashMap<String, String>,
) -> Result<(), RunError> {
    let invalid = |message: String| RunError::Invalid { path: path.to_path_buf(), message };
    let owned: Vec<(String, Tensor)> = tensors
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| invalid(e.to_string()))?;
    let bytes = safetensors::serialize(owned.iter().map(|(k, t)| (k.as_str(), t)), Some(meta.clone()))
        .map_err(|e| invalid(e.to_string()))?;
    afr_runtime::atomic::write_atomic(path, &bytes).map_err(io(path))
}

/// Reads a tensor file of the run, checking it belongs to `cfg`'s progress.
pub fn load_tensors(
    run: &Path,
    file: &str,
    cfg: &RunConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>, RunError> {
    let path = run.join(file);
    let invalid = |message: String| RunError::Invalid { path: path.clone(), message };
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| invalid(format!("not a valid safetensors file: {e}")))?;
    let stamp = meta.metadata().as_ref().and_then(|m| m.get("afr.progress").cloned());
    if stamp.as_deref() != Some(cfg.stamp().as_str()) {
        return Err(invalid(format!(
            "written at progress {stamp:?} but {CONFIG} says {}: the run was interrupted while saving; \
             delete the run or restore a consistent copy",
            cfg.stamp()
        )));
    }
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        let train = TrainSettings {
            data: PathBuf::from("data"),
            format: "mvtec".into(),
            epochs: 1,
            batch_size: 1,
            lr: 1e-3,
            betas: (0.9, 0.999),
            seed: 0,
        };
        RunConfig::new(
            Preset::resolve("tiny").unwrap(),
            AfrConfig::default(),
            WeightRef::new("random:0").unwrap(),
            WeightRef::new("random:1").unwrap(),
            PromptSet::builtin(),
            vec!["a".into()],
            train,
        )
    }

    #[test]
    fn a_run_saved_before_sp_stages_reads_as_one_stage_and_a_bad_switch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut json: serde_json::Value = serde_json::to_value(config()).unwrap();
        json["afr"].as_object_mut().unwrap().remove("sp_stages");
        std::fs::write(dir.path().join(CONFIG), json.to_string()).unwrap();
        assert_eq!(RunConfig::read(dir.path()).unwrap().afr.sp_stages, 1);

        json["afr"]["sp_stages"] = 5.into();
        std::fs::write(dir.path().join(CONFIG), json.to_string()).unwrap();
        let err = RunConfig::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CONFIG) && err.contains("--sp-stages must be 1, 2, 3 or 4"), "{err}");
    }
}
