//! The deployable detector: an AFR ONNX model loaded once into tract, then
//! scored frame after frame into caller-owned memory (DESIGN.md section 3).
//!
//! Everything a frame needs is allocated at load or on the first frame of a
//! new image size (warm-up): the plan, its state, the input tensors, the
//! resizer, the upsampler and their scratch. After that, [`Detector::score`]
//! allocates nothing in this crate's code; tract itself still allocates its
//! intermediate tensors per run (see `tests/no_alloc.rs` for the counts).
//!
//! Threads: tract runs single-threaded by default. Built with this crate's
//! `multithread` feature (tract-linalg's `multithread-mm`, rayon),
//! [`DetectorOptions::threads`] > 1 gives the model its own rayon pool, used
//! for matrix products and large element-wise ops through tract's executor
//! scope; without the feature asking for more than one thread is an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::image_io::frame_size_problem;
use crate::model_info::{decode_proto, read_proto, ModelError, ModelInfo};
use crate::postprocess::Upsampler;
use crate::preprocess::{renormalisation, renormalise, Resizer};
use crate::weights_sha256;

/// Source sizes (and output sizes) kept prepared at once; a camera has one.
const CACHED_SIZES: usize = 4;

/// What a frame scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// The model's `image_score`.
    pub image: f32,
    /// Largest value of the map written for the caller.
    pub map_max: f32,
}

/// How to run the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// Gaussian smoothing of the output map with the model's sigma.
    pub smoothing: bool,
    /// Threads for tract (1: the caller's thread only).
    pub threads: usize,
    /// Check the weights against the file's `afr.weights_sha256` at load
    /// (off for firmware whose storage verifies itself; a file without the
    /// key loads unchecked either way).
    pub check_weights: bool,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self { smoothing: true, threads: 1, check_weights: true }
    }
}

/// Why loading or scoring failed. Load errors name the model file.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: tract cannot load the model: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("{path}: inference failed: {detail}")]
    Inference { path: PathBuf, detail: String },
    #[error("{what} buffer has {len} elements, expected {expected} ({width}x{height}{per_pixel})")]
    BufferSize { what: &'static str, len: usize, expected: usize, width: usize, height: usize, per_pixel: &'static str },
    #[error("{what} size {width}x{height} is invalid: {problem}")]
    BadSize { what: &'static str, width: usize, height: usize, problem: String },
    #[error("category index {index} is out of range: the model has {count} categories")]
    UnknownCategory { index: usize, count: usize },
    #[error("{path}: the model produced a non-finite {what} ({value})")]
    NonFinite { path: PathBuf, what: &'static str, value: f32 },
    #[error("{threads} threads requested but afr-runtime was built without its `multithread` feature")]
    Threads { threads: usize },
    #[error("0 threads requested: at least 1 is needed")]
    NoThreads,
}

/// A loaded AFR model with all per-frame memory.
pub struct Detector {
    info: ModelInfo,
    options: DetectorOptions,
    state: TypedSimpleState,
    image: Arc<Tensor>,
    category: Arc<Tensor>,
    /// Whether the optimised graph reads `category` (a model exported
    /// without CMFR does not, and tract then keeps the unused input alive
    /// between runs, so it cannot be written in place).
    category_used: bool,
    score_output: usize,
    map_output: usize,
    grid: (usize, usize),
    grid_map: Vec<f32>,
    /// Per channel `(a, b)`: model input = CLIP-normalised * a + b, for a model
    /// whose mean and std are not CLIP's.
    renormalise: Option<[(f32, f32); 3]>,
    resizers: Vec<Resizer>,
    resize_scratch: Vec<f32>,
    upsamplers: Vec<(f32, Upsampler)>,
    upsample_scratch: Vec<f32>,
    #[cfg(feature = "multithread")]
    executor: Option<tract_onnx::tract_core::internal::tract_linalg::multithread::Executor>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("info", &self.info).field("options", &self.options).finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads `path` with default options (smoothing on, one thread).
    pub fn load(path: &Path) -> Result<Detector, DetectorError> {
        Self::load_with(path, DetectorOptions::default())
    }

    pub fn load_with(path: &Path, options: DetectorOptions) -> Result<Detector, DetectorError> {
        check_threads(options)?;
        let proto = read_proto(path)?;
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Self::from_proto(path, proto, file_bytes, options)
    }

    /// Loads a model held in memory (firmware that keeps it in flash, or a
    /// caller that read it itself); `name` stands for its path in messages.
    /// The bytes are only read during the call.
    pub fn load_bytes(bytes: &[u8], name: &Path, options: DetectorOptions) -> Result<Detector, DetectorError> {
        check_threads(options)?;
        let proto = decode_proto(name, bytes)?;
        Self::from_proto(name, proto, bytes.len() as u64, options)
    }

    fn from_proto(
        path: &Path,
        proto: ModelProto,
        file_bytes: u64,
        options: DetectorOptions,
    ) -> Result<Detector, DetectorError> {
        let info = ModelInfo::from_proto(path, &proto, file_bytes)?;
        if options.check_weights {
            weights_sha256::verify(path, &proto)?;
        }
        let load =
            |e: TractError| DetectorError::Load { path: path.to_path_buf(), detail: one_line(&format!("{e:#}")) };
        let s = info.input_size;
        let outputs: Vec<&str> =
            proto.graph.as_ref().map(|g| g.output.iter().map(|o| o.name.as_str()).collect()).unwrap_or_default();
        let score_output = outputs.iter().position(|&n| n == "image_score").unwrap_or(0);
        let map_output = outputs.iter().position(|&n| n == "anomaly_map").unwrap_or(1);
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(load)?
            .with_input_fact(0, f32::fact([1, 3, s, s]).into())
            .map_err(load)?
            .with_input_fact(1, i64::fact([1]).into())
            .map_err(load)?
            .into_optimized()
            .map_err(load)?;
        drop(proto);
        let category_used = model
            .input_outlets()
            .ok()
            .and_then(|inputs| inputs.get(1).copied())
            .is_some_and(|outlet| !model.outlet_successors(outlet).is_empty());
        let map_fact = model.output_fact(map_output).map_err(load)?.clone();
        let dims: Vec<usize> =
            map_fact.shape.as_concrete().map(|d| d.to_vec()).ok_or_else(|| ModelError::Contract {
                path: path.to_path_buf(),
                problem: format!("anomaly_map shape {:?} is not static", map_fact.shape),
            })?;
        let grid = match dims[..] {
            [1, h, w] if h > 0 && w > 0 => (w, h),
            _ => {
                return Err(ModelError::Contract {
                    path: path.to_path_buf(),
                    problem: format!("anomaly_map is {dims:?}, expected [1, h, w]"),
                }
                .into())
            }
        };
        let plan = model.into_runnable().map_err(load)?;
        let state = TypedSimpleState::new(&plan).map_err(load)?;
        let renormalise = renormalisation(&info.mean, &info.std);
        #[cfg(feature = "multithread")]
        let executor = (options.threads > 1).then(|| {
            tract_onnx::tract_core::internal::tract_linalg::multithread::Executor::multithread(options.threads)
        });
        Ok(Detector {
            image: Arc::new(Tensor::zero::<f32>(&[1, 3, s, s]).map_err(load)?),
            category: Arc::new(Tensor::zero::<i64>(&[1]).map_err(load)?),
            category_used,
            info,
            options,
            state,
            score_output,
            map_output,
            grid,
            grid_map: vec![0.0; grid.0 * grid.1],
            renormalise,
            resizers: Vec::with_capacity(CACHED_SIZES),
            resize_scratch: Vec::new(),
            upsamplers: Vec::with_capacity(CACHED_SIZES),
            upsample_scratch: Vec::new(),
            #[cfg(feature = "multithread")]
            executor,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn options(&self) -> DetectorOptions {
        self.options
    }

    /// Turns the output map's Gaussian smoothing on or off.
    pub fn set_smoothing(&mut self, on: bool) {
        self.options.smoothing = on;
    }

    /// Patch grid (width, height) of the model's map.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// The patch-resolution map of the last frame, row-major.
    pub fn patch_map(&self) -> &[f32] {
        &self.grid_map
    }

    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.info.category_index(name)
    }

    /// Row of `name`, else of `object` (for categories the model was not given).
    pub fn category_or_default(&self, name: &str) -> Option<usize> {
        self.info.category_or_default(name)
    }

    /// Allocates what frames of `width x height` need, so that the first
    /// such frame does not (optional: [`Self::score`] prepares on demand).
    pub fn prepare(&mut self, width: usize, height: usize) -> Result<(), DetectorError> {
        check_size("image", width, height)?;
        self.resizer_index(width, height);
        self.upsampler_index(width, height);
        Ok(())
    }

    /// Scores one interleaved RGB8 frame of `width x height` against table row
    /// `category` and writes the anomaly map at the frame's size into
    /// `map_out` (`width * height`, row-major).
    pub fn score(
        &mut self,
        rgb8: &[u8],
        width: usize,
        height: usize,
        category: usize,
        map_out: &mut [f32],
    ) -> Result<Scores, DetectorError> {
        self.score_to(rgb8, width, height, category, map_out, (width, height))
    }

    /// As [`Self::score`] with the map written at `map_size` (width, height)
    /// instead of the frame's size (evaluation compares at the input size).
    pub fn score_to(
        &mut self,
        rgb8: &[u8],
        width: usize,
        height: usize,
        category: usize,
        map_out: &mut [f32],
        map_size: (usize, usize),
    ) -> Result<Scores, DetectorError> {
        check_size("image", width, height)?;
        check_size("map", map_size.0, map_size.1)?;
        check_len("image", rgb8.len(), width, height, 3, " x 3 bytes")?;
        check_len("map", map_out.len(), map_size.0, map_size.1, 1, "")?;
        let count = self.info.categories.len();
        if category >= count {
            return Err(DetectorError::UnknownCategory { index: category, count });
        }
        self.preprocess(rgb8, width, height, category)?;
        let image = self.infer()?;
        let u = self.upsampler_index(map_size.0, map_size.1);
        let up = &self.upsamplers[u].1;
        let scratch = &mut self.upsample_scratch[..up.scratch_len()];
        up.run(&self.grid_map, map_out, scratch);
        let map_max = map_out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Ok(Scores { image, map_max })
    }

    /// Runs tract alone on the input tensors as they stand and drops the
    /// outputs: what a frame costs inside tract, for benches and the
    /// allocation test.
    pub fn run_model_only(&mut self) -> Result<(), DetectorError> {
        let outputs = self.run_tract()?;
        drop(outputs);
        Ok(())
    }

    fn preprocess(&mut self, rgb8: &[u8], width: usize, height: usize, category: usize) -> Result<(), DetectorError> {
        let r = self.resizer_index(width, height);
        let resizer = &self.resizers[r];
        let scratch = &mut self.resize_scratch[..resizer.scratch_len()];
        let internal =
            |detail: &str| DetectorError::Inference { path: self.info.path.clone(), detail: detail.to_string() };
        // tract drops its references to the inputs at the end of each run.
        let image = Arc::get_mut(&mut self.image).ok_or_else(|| internal("input tensor still shared"))?;
        let mut plain = image.try_as_plain_ram_mut().map_err(|e| internal(&e.to_string()))?;
        let pixels = plain.as_slice_mut::<f32>().map_err(|e| internal(&e.to_string()))?;
        resizer.resize_normalize(rgb8, pixels, scratch);
        if let Some(affine) = &self.renormalise {
            renormalise(pixels, affine);
        }
        if !self.category_used {
            return Ok(());
        }
        let cat = Arc::get_mut(&mut self.category).ok_or_else(|| internal("category tensor still shared"))?;
        let mut plain = cat.try_as_plain_ram_mut().map_err(|e| internal(&e.to_string()))?;
        plain.as_slice_mut::<i64>().map_err(|e| internal(&e.to_string()))?[0] = category as i64;
        Ok(())
    }

    fn run_tract(&mut self) -> Result<TVec<TValue>, DetectorError> {
        let inputs = tvec![TValue::from_const(self.image.clone()), TValue::from_const(self.category.clone())];
        let state = &mut self.state;
        #[cfg(feature = "multithread")]
        let result = match &self.executor {
            Some(pool) => tract_onnx::tract_core::internal::tract_linalg::multithread::multithread_tract_scope(
                pool.clone(),
                || state.run(inputs),
            ),
            None => state.run(inputs),
        };
        #[cfg(not(feature = "multithread"))]
        let result = state.run(inputs);
        result.map_err(|e| DetectorError::Inference { path: self.info.path.clone(), detail: format!("{e:#}") })
    }

    /// Runs the model, copies the patch map out and checks every value.
    fn infer(&mut self) -> Result<f32, DetectorError> {
        let outputs = self.run_tract()?;
        let internal =
            |e: TractError| DetectorError::Inference { path: self.info.path.clone(), detail: format!("{e:#}") };
        let score_view = outputs[self.score_output].try_as_plain_ram().map_err(internal)?;
        let score = *score_view.as_slice::<f32>().map_err(internal)?.first().unwrap_or(&f32::NAN);
        let map_view = outputs[self.map_output].try_as_plain_ram().map_err(internal)?;
        let map = map_view.as_slice::<f32>().map_err(internal)?;
        if map.len() != self.grid_map.len() {
            return Err(DetectorError::Inference {
                path: self.info.path.clone(),
                detail: format!("anomaly_map has {} values, expected {}", map.len(), self.grid_map.len()),
            });
        }
        self.grid_map.copy_from_slice(map);
        drop(outputs);
        if !score.is_finite() {
            return Err(DetectorError::NonFinite { path: self.info.path.clone(), what: "image_score", value: score });
        }
        if let Some(v) = self.grid_map.iter().find(|v| !v.is_finite()) {
            return Err(DetectorError::NonFinite { path: self.info.path.clone(), what: "anomaly_map", value: *v });
        }
        Ok(score)
    }

    /// The cached resizer from `width x height` (built on a size's first frame).
    fn resizer_index(&mut self, width: usize, height: usize) -> usize {
        let s = self.info.input_size;
        let found = self.resizers.iter().position(|r| r.src() == (width, height));
        let i = found.unwrap_or_else(|| {
            let r = Resizer::new((width, height), (s, s));
            evict_into(&mut self.resizers, r)
        });
        let need = self.resizers[i].scratch_len();
        if self.resize_scratch.len() < need {
            self.resize_scratch.resize(need, 0.0);
        }
        i
    }

    /// The cached upsampler to `width x height` for the current smoothing.
    fn upsampler_index(&mut self, width: usize, height: usize) -> usize {
        let sigma = self.output_sigma(width, height);
        let found = self.upsamplers.iter().position(|(s, u)| *s == sigma && u.size() == (width, height));
        let i = found.unwrap_or_else(|| {
            let u = Upsampler::new(self.grid, (width, height), sigma);
            evict_into(&mut self.upsamplers, (sigma, u))
        });
        let need = self.upsamplers[i].1.scratch_len();
        if self.upsample_scratch.len() < need {
            self.upsample_scratch.resize(need, 0.0);
        }
        i
    }

    /// The model's sigma (in input pixels) scaled to an output of
    /// `width x height`: by the mean of the two scale factors.
    pub fn output_sigma(&self, width: usize, height: usize) -> f32 {
        if !self.options.smoothing {
            return 0.0;
        }
        let s = self.info.input_size as f32;
        self.info.smoothing_sigma * (width + height) as f32 / (2.0 * s)
    }
}

/// Pushes `item`, dropping the oldest entry when the cache is full; returns its index.
fn evict_into<T>(cache: &mut Vec<T>, item: T) -> usize {
    if cache.len() == CACHED_SIZES {
        cache.remove(0);
    }
    cache.push(item);
    cache.len() - 1
}

fn check_threads(options: DetectorOptions) -> Result<(), DetectorError> {
    if options.threads == 0 {
        return Err(DetectorError::NoThreads);
    }
    #[cfg(not(feature = "multithread"))]
    if options.threads > 1 {
        return Err(DetectorError::Threads { threads: options.threads });
    }
    #[cfg(feature = "multithread")]
    let _ = options;
    Ok(())
}

fn check_size(what: &'static str, width: usize, height: usize) -> Result<(), DetectorError> {
    match frame_size_problem(width as u64, height as u64) {
        Some(problem) => Err(DetectorError::BadSize { what, width, height, problem }),
        None => Ok(()),
    }
}

/// Longest load error kept from tract: its shape errors can dump a whole
/// node, over many lines.
const MAX_DETAIL: usize = 300;

/// `detail` on one line, whitespace runs collapsed, cut at [`MAX_DETAIL`].
fn one_line(detail: &str) -> String {
    let mut out = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(" ...");
    }
    out
}

fn check_len(
    what: &'static str,
    len: usize,
    width: usize,
    height: usize,
    per: usize,
    per_pixel: &'static str,
) -> Result<(), DetectorError> {
    let expected = width * height * per;
    if len != expected {
        return Err(DetectorError::BufferSize { what, len, expected, width, height, per_pixel });
    }
    Ok(())
}
