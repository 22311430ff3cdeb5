//! Where model weights come from: a safetensors file people already have, or
//! `random:SEED`, a seeded random model of a preset's shape (tests, the demo).
//!
//! Every tensor is asked for by name and expected shape; a missing tensor or a
//! shape that differs is an error naming the file, the tensor and both shapes.
//! Files are memory-mapped and their header validated by `safetensors` (header
//! size capped, offsets checked against the file length), so a truncated or
//! hostile file is an error, not a crash.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{path}: cannot read weight file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{origin}: tensor `{name}` is missing{hint}")]
    Missing { origin: String, name: String, hint: String },
    #[error(
        "{origin}: tensor `{name}` has shape {found:?}, the preset expects {expected:?} \
         (do the weights match the preset?)"
    )]
    Shape { origin: String, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{origin}: tensor `{name}` has unsupported dtype {dtype}")]
    Dtype { origin: String, name: String, dtype: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{origin}: {count} tensors are not used by the preset{hint}, e.g. {examples:?}; do the weights match the preset?")]
    Unused { origin: String, count: usize, hint: String, examples: Vec<String> },
    #[error("bad weight spec `{0}`: expected a file path or `random:SEED`")]
    Spec(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, WeightError>;

/// How a tensor is drawn when the weights are `random:SEED`. Ignored for files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal(f64),
    Ones,
    Zeros,
    /// `1 + N(0, std)`: a layer-norm gain that is not exactly one.
    NearOne(f64),
    /// Uniform in `[lo, hi)`: positive values such as a BatchNorm variance.
    Uniform(f64, f64),
}

enum Source {
    File { path: PathBuf, data: memmap2::Mmap, header_len: usize, metadata: Metadata },
    Random { seed: u64 },
}

/// A source of named tensors on one device.
pub struct Weights {
    source: Source,
    device: Device,
    prefix: String,
    /// Names handed out so far, for `inspect` and for the unused-tensor count.
    used: RefCell<BTreeSet<String>>,
    params: RefCell<usize>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Weights({})", self.origin())
    }
}

impl Weights {
    /// `random:SEED`, or a path to a safetensors file (or a directory holding
    /// `model.safetensors`, as Hugging Face saves it).
    pub fn open(spec: &str, device: &Device) -> Result<Self> {
        if let Some(seed) = spec.strip_prefix("random:") {
            let seed = seed.parse::<u64>().map_err(|_| WeightError::Spec(spec.to_string()))?;
            return Ok(Self::random(seed, device));
        }
        if spec.is_empty() {
            return Err(WeightError::Spec(spec.to_string()));
        }
        Self::from_file(&resolve_file(Path::new(spec)), device)
    }

    pub fn random(seed: u64, device: &Device) -> Self {
        Self::with_source(Source::Random { seed }, device)
    }

    pub fn from_file(path: &Path, device: &Device) -> Result<Self> {
        let io = |source| WeightError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives as long as `Weights`; a file
        // changed underneath us while loading is the caller's race to avoid.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let (header_len, metadata) = SafeTensors::read_metadata(&data)
            .map_err(|e| WeightError::Format { path: path.to_path_buf(), reason: e.to_string() })?;
        let source = Source::File { path: path.to_path_buf(), data, header_len, metadata };
        Ok(Self::with_source(source, device))
    }

    fn with_source(source: Source, device: &Device) -> Self {
        Self {
            source,
            device: device.clone(),
            prefix: String::new(),
            used: RefCell::default(),
            params: RefCell::new(0),
        }
    }

    /// Prepends `prefix` to every name asked for from now on.
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn is_random(&self) -> bool {
        matches!(self.source, Source::Random { .. })
    }

    /// The file path, or `random:SEED`.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::File { path, .. } => path.display().to_string(),
            Source::Random { seed } => format!("random:{seed}"),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File { path, .. } => Some(path),
            Source::Random { .. } => None,
        }
    }

    /// Every tensor name in the file (empty for random weights).
    pub fn names(&self) -> Vec<String> {
        match &self.source {
            Source::File { metadata, .. } => {
                let mut names: Vec<String> = metadata.tensors().into_keys().collect();
                names.sort();
                names
            }
            Source::Random { .. } => Vec::new(),
        }
    }

    /// Whether the file holds `name` (after the prefix). Random weights hold
    /// everything.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::File { metadata, .. } => metadata.info(&self.full(name)).is_some(),
            Source::Random { .. } => true,
        }
    }

    /// (tensors handed out, their element count) so far.
    pub fn loaded(&self) -> (usize, usize) {
        (self.used.borrow().len(), *self.params.borrow())
    }

    /// Tensors in the file that no model asked for (e.g. a classifier head),
    /// leaving out BatchNorm's `num_batches_tracked` counters.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        self.names().into_iter().filter(|n| !used.contains(n) && !n.ends_with("num_batches_tracked")).collect()
    }

    /// Every tensor of the file was used, but for `ignorable` ones (names under the
    /// prefix, e.g. a classifier head the model has no use for). A file with more
    /// layers or blocks than the preset would otherwise load and compute the wrong thing.
    pub fn check_all_used(&self, ignorable: &[&str]) -> Result<()> {
        let ignorable: Vec<String> = ignorable.iter().map(|n| self.full(n)).collect();
        let leftovers: Vec<String> = self.unused().into_iter().filter(|n| !ignorable.contains(n)).collect();
        if leftovers.is_empty() {
            return Ok(());
        }
        Err(WeightError::Unused {
            origin: self.origin(),
            count: leftovers.len(),
            hint: stack_hint(&leftovers, &self.names(), &self.used.borrow()),
            examples: leftovers.into_iter().take(3).collect(),
        })
    }

    fn full(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The f32 tensor `name` of exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let full = self.full(name);
        let tensor = match &self.source {
            Source::Random { seed } => random_tensor(*seed, &full, shape, init, &self.device)?,
            Source::File { path, data, header_len, metadata } => {
                let origin = path.display().to_string();
                let info = metadata.info(&full).ok_or_else(|| WeightError::Missing {
                    origin: origin.clone(),
                    name: full.clone(),
                    hint: missing_hint(metadata, &full),
                })?;
                if info.shape != shape {
                    return Err(WeightError::Shape {
                        origin,
                        name: full,
                        expected: shape.to_vec(),
                        found: info.shape.clone(),
                    });
                }
                let start = 8 + header_len + info.data_offsets.0;
                let end = 8 + header_len + info.data_offsets.1;
                let bytes = &data[start..end];
                let values = decode_f32(bytes, info.dtype).ok_or_else(|| WeightError::Dtype {
                    origin,
                    name: full.clone(),
                    dtype: format!("{:?}", info.dtype),
                })?;
                Tensor::from_vec(values, shape, &self.device)?
            }
        };
        *self.params.borrow_mut() += tensor.elem_count();
        self.used.borrow_mut().insert(full);
        Ok(tensor)
    }

    /// The shape stored for `name`, if the file has it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        match &self.source {
            Source::File { metadata, .. } => metadata.info(&self.full(name)).map(|i| i.shape.clone()),
            Source::Random { .. } => None,
        }
    }

    /// An error about this source that is not about one tensor.
    pub fn invalid(&self, message: impl Into<String>) -> WeightError {
        WeightError::Invalid { origin: self.origin(), message: message.into() }
    }
}

/// A directory stands for the `model.safetensors` inside it.
fn resolve_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    }
}

fn missing_hint(metadata: &Metadata, name: &str) -> String {
    let n = metadata.tensors().len();
    let leaf = name.rsplit('.').take(2).collect::<Vec<_>>();
    let similar = metadata
        .tensors()
        .into_keys()
        .filter(|k| leaf.len() == 2 && k.ends_with(&format!("{}.{}", leaf[1], leaf[0])))
        .take(3)
        .collect::<Vec<_>>();
    if similar.is_empty() {
        format!(" (the file has {n} tensors; is it the right model and naming?)")
    } else {
        format!(" (the file has {n} tensors, e.g. {similar:?}; another naming or prefix?)")
    }
}

/// `visual.transformer.resblocks.5.attn.in_proj_weight` -> (`visual.transformer.resblocks`, 5):
/// the stack of numbered layers (or blocks) a tensor belongs to.
fn stack_of(name: &str) -> Option<(&str, usize)> {
    let mut start = 0;
    for part in name.split('.') {
        if let Ok(i) = part.parse::<usize>() {
            return Some((name[..start].strip_suffix('.')?, i));
        }
        start += part.len() + 1;
    }
    None
}

/// For the stacks the leftovers belong to: how many layers the file has and the preset used,
/// e.g. " (the file has 5 layers in visual.transformer.resblocks, the preset 4)".
fn stack_hint(leftovers: &[String], all: &[String], used: &BTreeSet<String>) -> String {
    let count = |names: &mut dyn Iterator<Item = &String>, stack: &str| {
        names.filter_map(|n| stack_of(n)).filter(|(s, _)| *s == stack).map(|(_, i)| i + 1).max().unwrap_or(0)
    };
    let stacks: BTreeSet<&str> = leftovers.iter().filter_map(|n| stack_of(n)).map(|(s, _)| s).collect();
    let parts: Vec<String> = stacks
        .into_iter()
        .map(|stack| {
            let (file, preset) = (count(&mut all.iter(), stack), count(&mut used.iter(), stack));
            format!("the file has {file} layers in {stack}, the preset {preset}")
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

fn decode_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    let v = match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => {
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap()) as f32).collect()
        }
        _ => return None,
    };
    Some(v)
}

/// Deterministic in (seed, name, shape) alone, so the order in which a model
/// asks for its tensors does not change them.
pub(crate) fn random_tensor(seed: u64, name: &str, shape: &[usize], init: Init, dev: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let t = match init {
        Init::Zeros => Tensor::zeros(shape, DType::F32, dev)?,
        Init::Ones => Tensor::ones(shape, DType::F32, dev)?,
        Init::Normal(std) | Init::NearOne(std) => {
            let mut rng = rng_for(seed, name);
            let base = if matches!(init, Init::NearOne(_)) { 1.0 } else { 0.0 };
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (base + std * z) as f32
                })
                .collect();
            Tensor::from_vec(v, shape, dev)?
        }
        Init::Uniform(lo, hi) => {
            let mut rng = rng_for(seed, name);
            let v: Vec<f32> = (0..n).map(|_| (lo + (hi - lo) * rand::Rng::random::<f64>(&mut rng)) as f32).collect();
            Tensor::from_vec(v, shape, dev)?
        }
    };
    Ok(t)
}

fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_depend_on_seed_and_name_only() {
        let dev = Device::Cpu;
        let a = Weights::random(7, &dev);
        let b = Weights::random(7, &dev);
        let x = a.get("x", &[3, 4], Init::Normal(1.0)).unwrap();
        let _ = b.get("other", &[5], Init::Normal(1.0)).unwrap();
        let y = b.get("x", &[3, 4], Init::Normal(1.0)).unwrap();
        assert_eq!(x.to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
        let z = Weights::random(8, &dev).get("x", &[3, 4], Init::Normal(1.0)).unwrap();
        assert_ne!(x.to_vec2::<f32>().unwrap(), z.to_vec2::<f32>().unwrap());
        assert_eq!(a.loaded(), (1, 12));
    }

    #[test]
    fn leftovers_name_the_stack_and_both_layer_counts() {
        assert_eq!(
            stack_of("visual.transformer.resblocks.5.attn.in_proj_weight"),
            Some(("visual.transformer.resblocks", 5))
        );
        assert_eq!(stack_of("layer1.0.conv1.weight"), Some(("layer1", 0)));
        assert_eq!(stack_of("logit_scale"), None);
        let all: Vec<String> = (0..5).map(|i| format!("t.blocks.{i}.w")).collect();
        let used: BTreeSet<String> = all[..4].iter().cloned().collect();
        let hint = stack_hint(&all[4..], &all, &used);
        assert_eq!(hint, " (the file has 5 layers in t.blocks, the preset 4)");
    }

    #[test]
    fn bad_spec_is_an_error() {
        assert!(matches!(Weights::open("random:x", &Device::Cpu), Err(WeightError::Spec(_))));
    }
}
