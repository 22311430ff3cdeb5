//! A run directory (DESIGN.md section 3): `checkpoint.safetensors` holds only
//! the trainable tensors, `optimizer.safetensors` the Adam state, and
//! `config.json` everything needed to rebuild the model and resume: the
//! preset, the AFR switches, the weight files with their sha256, the prompts,
//! the categories seen, how far training got and the log of every epoch.
//! A save is one transaction (`transaction.rs`): the tensor files of each
//! state have their own names (`checkpoint.N.safetensors`), and the rename of
//! `config.json`, which names them, commits it. The tensor files also carry the
//! progress they belong to, so a mix of states is refused, never trained on.
//! `log.jsonl` is rewritten from the log in `config.json` after each commit and
//! on resume. Runs saved before (fixed file names, no log in the config) load.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::afr::prompts::PromptSet;
use crate::afr::AfrConfig;
use crate::preset::Preset;

use super::transaction::{self, Transaction};

pub const CONFIG: &str = "config.json";
pub const LOG: &str = "log.jsonl";
/// The tensor files' names before the first save; each save numbers its own.
const CHECKPOINT: &str = "checkpoint.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
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

impl TrainSettings {
    /// What is out of range; `name` turns a field (`batch_size`) into what the
    /// user wrote (`--batch-size`, or `train.batch_size` in a run's config).
    pub fn check(&self, name: impl Fn(&str) -> String) -> Result<(), String> {
        for (field, value) in [("epochs", self.epochs), ("batch_size", self.batch_size)] {
            if value == 0 {
                return Err(format!("{} is 0; it must be at least 1", name(field)));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("{} is {}; it must be a number > 0", name("lr"), self.lr));
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(format!("{} are {b1},{b2}; each must be in [0, 1)", name("betas")));
        }
        Ok(())
    }
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
    /// The tensor files of this state, in the run directory.
    pub checkpoint: String,
    pub optimizer: String,
    /// How many states were saved (0 in runs saved before states were numbered).
    #[serde(default)]
    pub state: u64,
    /// One entry per completed epoch; `log.jsonl` shows the same.
    #[serde(default)]
    pub log: Vec<EpochLog>,
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub image_loss: f64,
    pub pixel_loss: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_s: f64,
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
            state: 0,
            log: Vec::new(),
        }
    }

    /// The run's configuration, every field checked before anything uses it.
    pub fn read(run: &Path) -> Result<Self, RunError> {
        let path = run.join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut cfg: Self = serde_json::from_str(&text)
            .map_err(|e| RunError::Invalid { path: path.clone(), message: format!("not a run configuration: {e}") })?;
        cfg.check().map_err(|message| RunError::Invalid { path, message })?;
        if cfg.log.is_empty() && cfg.progress.epoch > 0 {
            // A run saved before the log moved into config.json: its log.jsonl, up to the state.
            cfg.log = read_log_file(run).into_iter().take(cfg.progress.epoch).collect();
        }
        Ok(cfg)
    }

    /// What is wrong with the configuration, naming the field.
    fn check(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!("format version {} (this build reads {FORMAT_VERSION})", self.format_version));
        }
        self.afr.check().map_err(|message| format!("afr: {message}"))?;
        self.preset.check().map_err(|message| format!("preset: {message}"))?;
        self.train.check(|field| format!("train.{field}"))?;
        if self.categories.is_empty() || self.categories.iter().any(|c| c.is_empty()) {
            return Err(format!("categories {:?}: a run needs at least one category, each named", self.categories));
        }
        for (field, name) in [("checkpoint", &self.checkpoint), ("optimizer", &self.optimizer)] {
            if Path::new(name).file_name().and_then(|n| n.to_str()) != Some(name.as_str()) || name == ".." {
                return Err(format!("{field} is {name:?}; it must be a file name inside the run directory"));
            }
        }
        if self.log.len() > self.progress.epoch {
            return Err(format!("log has {} epochs but progress.epoch is {}", self.log.len(), self.progress.epoch));
        }
        Ok(())
    }

    /// The progress stamp the tensor files carry.
    fn stamp(&self) -> String {
        format!("{}:{}", self.progress.epoch, self.progress.batch)
    }
}

/// Saves the trainable tensors, the optimizer state and the configuration as
/// one transaction: the run is at the previous state or at this one, whatever
/// stops the process or fills the disk. On success `cfg` names the new files.
pub fn save(
    run: &Path,
    cfg: &mut RunConfig,
    params: &BTreeMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> Result<(), RunError> {
    let mut next = cfg.clone();
    next.state += 1;
    next.checkpoint = format!("checkpoint.{}.safetensors", next.state);
    next.optimizer = format!("optimizer.{}.safetensors", next.state);
    let meta = HashMap::from([("afr.progress".to_string(), next.stamp())]);
    let mut tx = Transaction::begin(run).map_err(io(run))?;
    for (name, tensors) in [
        (&next.checkpoint, tensor_bytes(params.iter(), &meta)),
        (&next.optimizer, tensor_bytes(optimizer.iter(), &meta)),
    ] {
        let path = run.join(name);
        let bytes = tensors.map_err(|message| RunError::Invalid { path: path.clone(), message })?;
        tx.write(name, &bytes).map_err(io(&path))?;
    }
    let path = run.join(CONFIG);
    let json = serde_json::to_string_pretty(&next).expect("config serialises");
    tx.commit(CONFIG, json.as_bytes(), is_state_file).map_err(io(&path))?;
    *cfg = next;
    write_log(run, &cfg.log)
}

/// Puts a run's directory in agreement with its committed state after a save
/// that was stopped: removes the files of other states and rewrites the log.
pub fn recover(run: &Path, cfg: &RunConfig) -> Result<(), RunError> {
    transaction::sweep(run, &[&cfg.checkpoint, &cfg.optimizer], is_state_file).map_err(io(run))?;
    write_log(run, &cfg.log)
}

/// Files a save replaces: tensor files of any state, and temporaries a killed save left.
fn is_state_file(name: &str) -> bool {
    let bare = name.strip_prefix('.').unwrap_or(name);
    let tensors = (bare.starts_with("checkpoint.") || bare.starts_with("optimizer.")) && bare.contains(".safetensors");
    let temporary =
        name.starts_with('.') && name.contains(".tmp") && (bare.starts_with(CONFIG) || bare.starts_with(LOG));
    tensors || temporary
}

/// Rewrites `log.jsonl` to show `log`, one line per epoch.
pub fn write_log(run: &Path, log: &[EpochLog]) -> Result<(), RunError> {
    let text: String = log.iter().map(|l| serde_json::to_string(l).expect("log serialises") + "\n").collect();
    let path = run.join(LOG);
    transaction::write_synced(&path, text.as_bytes()).map_err(io(&path))
}

/// The lines of `log.jsonl` that parse (a run saved before the log moved into its config).
fn read_log_file(run: &Path) -> Vec<EpochLog> {
    std::fs::read_to_string(run.join(LOG))
        .unwrap_or_default()
        .lines()
        .map_while(|l| serde_json::from_str(l).ok())
        .collect()
}

fn tensor_bytes<'a>(
    tensors: impl Iterator<Item = (&'a String, &'a Tensor)>,
    meta: &HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let owned: Vec<(String, Tensor)> = tensors
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| e.to_string())?;
    safetensors::serialize(owned.iter().map(|(k, t)| (k.as_str(), t)), Some(meta.clone())).map_err(|e| e.to_string())
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
            "written at progress {} but {CONFIG} says {}: the file belongs to another state of the run \
             (copied in by hand, or left by a version that saved without transactions); restore a consistent copy",
            stamp.as_deref().unwrap_or("(none)"),
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
