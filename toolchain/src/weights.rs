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
    fn bad_spec_is_an_error() {
        assert!(matches!(Weights::open("random:x", &Device::Cpu), Err(WeightError::Spec(_))));
    }
}
