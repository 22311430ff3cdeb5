//! The front door: one fp32 AFR model file in, one quantized file out, and
//! the report of what was done and how far the outputs moved.
//!
//! The quantized model is first written under a temporary name beside the
//! output and measured in tract from there; only a model that loads and
//! runs is renamed to the output, so the output path never holds half a
//! file nor a model that does not run.

use std::path::{Path, PathBuf};

use afr_runtime::model_info::{read_proto, ModelInfo};
use afr_runtime::weights_sha256;

use crate::calibrate::Calibration;
use crate::drift::{self, DriftImages};
use crate::fp16::{self, Fp16Compute};
use crate::images::calibration_images;
use crate::int8::{self, ActivationMode, Int8Options};
use crate::onnx::Model;
use crate::report::Report;
use crate::{KeepFp32, Precision, QuantizeError};

/// Calibration images used when the caller does not say.
pub const DEFAULT_MAX_CALIBRATION_IMAGES: usize = 32;

/// What to make of the input model.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `Fp16` or `Int8`.
    pub precision: Precision,
    /// A folder of images: the drift measurement, and the activation ranges
    /// of int8 with `ActivationMode::Calibrated`.
    pub calibration: Option<PathBuf>,
    /// At most this many images from `calibration` (spread over the folder).
    pub max_calibration_images: usize,
    /// Nodes whose weights stay f32.
    pub keep_fp32: KeepFp32,
    /// Where an fp16 model computes (ignored for int8).
    pub fp16_compute: Fp16Compute,
    /// How an int8 model quantizes activations (ignored for fp16); only
    /// `Calibrated` runs the calibration images through the fp32 model.
    pub int8_activations: ActivationMode,
    /// Measure the drift against the fp32 model (two tract runs per image).
    pub drift: bool,
}

impl Options {
    /// Defaults: no calibration folder, 32 images, nothing kept, fp16
    /// storage, drift measured.
    pub fn new(precision: Precision) -> Self {
        Self {
            precision,
            calibration: None,
            max_calibration_images: DEFAULT_MAX_CALIBRATION_IMAGES,
            keep_fp32: KeepFp32::default(),
            fp16_compute: Fp16Compute::default(),
            int8_activations: ActivationMode::default(),
            drift: true,
        }
    }
}

/// What `progress` is counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Calibration images run through the fp32 model (int8).
    Calibration,
    /// Images scored by both models.
    Drift,
}

/// Images named one by one (rather than a folder), with the words the
/// report describes them by.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub paths: Vec<PathBuf>,
    /// e.g. `the training images of bolt and wood`.
    pub source: String,
}

/// Quantizes the AFR model at `input` into `output` as `opts` says.
/// `progress(phase, done, total)` is called as images are processed.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(Phase, usize, usize),
) -> Result<Report, QuantizeError> {
    let images = match &opts.calibration {
        Some(dir) => Some(ImageSet {
            paths: calibration_images(dir, opts.max_calibration_images.max(1))?,
            source: format!("from {}", dir.display()),
        }),
        None => None,
    };
    quantize_with_images(input, output, opts, images, progress)
}

/// As [`quantize_file`], calibrating and measuring on `images` (all of
/// them) instead of `opts.calibration`; `None`: no calibration, and drift
/// on seeded random images.
pub fn quantize_with_images(
    input: &Path,
    output: &Path,
    opts: &Options,
    images: Option<ImageSet>,
    progress: &mut dyn FnMut(Phase, usize, usize),
) -> Result<Report, QuantizeError> {
    let refuse = |path: &Path, problem: String| QuantizeError::Input { path: path.to_path_buf(), problem };
    if opts.precision == Precision::Fp32 {
        return Err(refuse(input, "fp32 is the export's own precision: ask for fp16 or int8".into()));
    }
    if input.is_dir() {
        return Err(refuse(input, "is a folder, not a model file".into()));
    }
    if !input.is_file() {
        return Err(refuse(input, "no such file".into()));
    }
    if same_file(input, output) {
        return Err(refuse(output, "the output would overwrite the input model".into()));
    }
    let bytes_before = std::fs::metadata(input).map_err(|e| refuse(input, e.to_string()))?.len();
    let model = Model { proto: read_proto(input)? };
    let info = ModelInfo::from_proto(input, &model.proto, bytes_before)?;
    // Quantizing altered weights would stamp them as genuine.
    weights_sha256::verify(input, &model.proto)?;
    if info.precision != Precision::Fp32.as_str() {
        return Err(refuse(
            input,
            format!("already quantized (afr.precision = {}): quantize the fp32 export instead", info.precision),
        ));
    }
    if let Some(set) = images.as_ref().filter(|s| s.paths.is_empty()) {
        return Err(refuse(input, format!("no calibration images ({})", set.source)));
    }
    if opts.precision == Precision::Int8 && opts.int8_activations.needs_calibration() && images.is_none() {
        return Err(refuse(input, "int8 with calibrated activation ranges needs calibration images".into()));
    }
    let (mut quantized, layers) = match opts.precision {
        Precision::Fp16 => fp16::convert_with(&model, &opts.keep_fp32, opts.fp16_compute)?,
        Precision::Int8 => {
            let calibration = match &images {
                Some(set) if opts.int8_activations.needs_calibration() => {
                    Some(Calibration::collect(&model, &set.paths, &mut |i, n| progress(Phase::Calibration, i, n))?)
                }
                _ => None,
            };
            let int8_options = Int8Options { activations: opts.int8_activations, ..Int8Options::default() };
            int8::convert_with(&model, calibration.as_ref(), &opts.keep_fp32, &int8_options)?
        }
        Precision::Fp32 => unreachable!("refused above"),
    };
    drop(model);
    quantized.set_metadata("afr.precision", opts.precision.as_str());
    weights_sha256::stamp(&mut quantized.proto);

    let staging = staging_path(output)?;
    quantized.write(&staging)?;
    drop(quantized);
    let checked = (|| {
        let drift = if opts.drift {
            let images = match images {
                Some(set) => DriftImages::Files { paths: set.paths, source: set.source },
                None => DriftImages::Random { count: drift::RANDOM_IMAGES },
            };
            Some(drift::measure(input, &staging, &images, &mut |i, n| progress(Phase::Drift, i, n))?)
        } else {
            // At least load it the way the runtime will.
            afr_runtime::detector::Detector::load(&staging)?;
            None
        };
        let bytes_after = std::fs::metadata(&staging).map_err(|e| refuse(output, e.to_string()))?.len();
        std::fs::rename(&staging, output).map_err(|e| refuse(output, e.to_string()))?;
        Ok::<_, QuantizeError>((drift, bytes_after))
    })();
    let (drift, bytes_after) = match checked {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(refuse(
                output,
                format!("the quantized model was not written: it failed its check in tract: {e}"),
            ));
        }
    };
    Ok(Report {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        precision: opts.precision,
        bytes_before,
        bytes_after,
        layers,
        drift,
    })
}

/// `.NAME.unchecked-PID.onnx` beside `output`.
fn staging_path(output: &Path) -> Result<PathBuf, QuantizeError> {
    let name = output.file_name().and_then(|n| n.to_str()).ok_or_else(|| QuantizeError::Input {
        path: output.to_path_buf(),
        problem: "the output path has no file name".into(),
    })?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(QuantizeError::Input {
            path: output.to_path_buf(),
            problem: format!("folder {} does not exist", dir.display()),
        });
    }
    Ok(dir.join(format!(".{name}.unchecked-{}.onnx", std::process::id())))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
