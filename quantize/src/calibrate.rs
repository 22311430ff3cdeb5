//! Calibration: the value ranges of the activations that feed weighted
//! layers (MatMul and Conv with an initializer weight), observed by running
//! the fp32 graph in tract on a set of images preprocessed exactly as the
//! runtime does (`afr_runtime::preprocess::Resizer`, the model's mean, std
//! and input size), category row 0.
//!
//! Per tensor we keep the overall min/max, each image's min/max (how stable
//! the range is from image to image: what decides between a calibrated and a
//! dynamic scale) and an evenly strided sample of values (for percentile
//! ranges that clip rare outliers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use afr_runtime::model_info::ModelInfo;
use afr_runtime::preprocess::{renormalisation, renormalise, Resizer};
use tract_onnx::pb::ValueInfoProto;
use tract_onnx::prelude::*;

use crate::int8::weighted_layers;
use crate::onnx::Model;
use crate::QuantizeError;

/// Values sampled per tensor per image for the percentiles.
const SAMPLES_PER_IMAGE: usize = 4096;

/// What one tensor held over the calibration images.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub min: f32,
    pub max: f32,
    /// `(min, max)` of each image, in image order.
    pub per_image: Vec<(f32, f32)>,
    /// Up to [`SAMPLES_PER_IMAGE`] values per image at an even stride.
    sample: Vec<f32>,
}

impl Observed {
    fn new() -> Self {
        Self { min: f32::INFINITY, max: f32::NEG_INFINITY, per_image: Vec::new(), sample: Vec::new() }
    }

    fn add(&mut self, values: &[f32]) {
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.per_image.push((lo, hi));
        let stride = values.len().div_ceil(SAMPLES_PER_IMAGE).max(1);
        self.sample.extend(values.iter().step_by(stride));
    }

    /// The `(lo, hi)` quantiles `1 - p` and `p` of the sampled values.
    fn percentile(&self, p: f32) -> (f32, f32) {
        if self.sample.is_empty() {
            return (0.0, 0.0);
        }
        let mut s = self.sample.clone();
        s.sort_by(f32::total_cmp);
        let at = |q: f32| s[((s.len() - 1) as f32 * q).round() as usize];
        (at(1.0 - p), at(p))
    }
}

/// How a calibrated activation range is taken from what was observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The quantiles `1 - p` and `p` (e.g. 0.9999): rare outliers clip.
    Percentile(f32),
}

/// Activation ranges of the tensors that feed weighted layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    tensors: BTreeMap<String, Observed>,
    images: usize,
}

impl Calibration {
    /// Runs the fp32 `model` on `images`, reporting `progress(done, total)`
    /// after each. An image that cannot be read is an error naming it.
    pub fn collect(
        model: &Model,
        images: &[PathBuf],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Calibration, QuantizeError> {
        if images.is_empty() {
            return Err(QuantizeError::Calibration("no calibration images".into()));
        }
        let origin = Path::new("(model being quantized)");
        let info = ModelInfo::from_proto(origin, &model.proto, 0)?;
        let graph = model.proto.graph.as_ref().ok_or_else(|| QuantizeError::Input {
            path: origin.to_path_buf(),
            problem: "the model has no graph".into(),
        })?;
        let existing: BTreeSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let names: Vec<String> = weighted_layers(graph)
            .into_iter()
            .map(|l| l.input)
            .filter(|n| !existing.contains(n.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut proto = model.proto.clone();
        let g = proto.graph.as_mut().expect("checked above");
        let first = g.output.len();
        g.output.extend(names.iter().map(|n| ValueInfoProto { name: n.clone(), ..Default::default() }));

        let s = info.input_size;
        let tract = |e: TractError| QuantizeError::Tract(format!("{e:#}"));
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, s, s]).into()))
            .and_then(|m| m.with_input_fact(1, i64::fact([1]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(tract)?;
        drop(proto);

        let mut tensors: BTreeMap<String, Observed> = names.iter().map(|n| (n.clone(), Observed::new())).collect();
        let category = Tensor::from_shape(&[1], &[0i64]).map_err(tract)?;
        let affine = renormalisation(&info.mean, &info.std);
        for (done, path) in images.iter().enumerate() {
            let rgb = afr_runtime::image_io::load_rgb8(path)?;
            let (w, h) = (rgb.width() as usize, rgb.height() as usize);
            let mut pixels = Resizer::new((w, h), (s, s)).run(rgb.as_raw());
            if let Some(affine) = &affine {
                renormalise(&mut pixels, affine);
            }
            let image = Tensor::from_shape(&[1, 3, s, s], &pixels).map_err(tract)?;
            let outputs = plan.run(tvec![image.clone().into(), category.clone().into()]).map_err(tract)?;
            for (name, out) in names.iter().zip(&outputs[first..]) {
                let view = out.try_as_plain_ram().map_err(tract)?;
                let values = view.as_slice::<f32>().map_err(tract)?;
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(QuantizeError::Input {
                        path: path.clone(),
                        problem: format!("the fp32 model produced {v} in `{name}`"),
                    });
                }
                tensors.get_mut(name).expect("one entry per name").add(values);
            }
            progress(done + 1, images.len());
        }
        Ok(Calibration { tensors, images: images.len() })
    }

    /// A calibration from values already observed, per tensor and image
    /// (tests, and ranges computed elsewhere).
    pub fn from_values<'a>(tensors: impl IntoIterator<Item = (&'a str, Vec<&'a [f32]>)>) -> Calibration {
        let mut images = 0;
        let tensors = tensors
            .into_iter()
            .map(|(name, per_image)| {
                let mut o = Observed::new();
                images = images.max(per_image.len());
                per_image.into_iter().for_each(|v| o.add(v));
                (name.to_string(), o)
            })
            .collect();
        Calibration { tensors, images }
    }

    /// Number of images the ranges were observed on.
    pub fn images(&self) -> usize {
        self.images
    }

    pub fn observed(&self, tensor: &str) -> Option<&Observed> {
        self.tensors.get(tensor)
    }

    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The calibrated `(lo, hi)` range of `tensor`, widened to contain 0 (so
    /// that 0 is exact, as padding and ReLU outputs need).
    pub fn range(&self, tensor: &str, method: RangeMethod) -> Option<(f32, f32)> {
        let o = self.tensors.get(tensor).filter(|o| !o.per_image.is_empty())?;
        let (lo, hi) = match method {
            RangeMethod::MinMax => (o.min, o.max),
            RangeMethod::Percentile(p) => o.percentile(p),
        };
        Some((lo.min(0.0), hi.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_zero_and_percentiles_clip_outliers() {
        let mut o = Observed::new();
        let mut values: Vec<f32> = (0..1000).map(|i| 1.0 + i as f32 / 1000.0).collect();
        values[500] = 100.0;
        o.add(&values);
        o.add(&[1.5, 1.2]);
        assert_eq!((o.min, o.max), (1.0, 100.0));
        assert_eq!(o.per_image, vec![(1.0, 100.0), (1.2, 1.5)]);
        let c = Calibration { tensors: [("x".to_string(), o)].into(), images: 2 };
        assert_eq!(c.range("x", RangeMethod::MinMax), Some((0.0, 100.0)));
        let (lo, hi) = c.range("x", RangeMethod::Percentile(0.99)).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi < 2.0, "the single outlier is clipped: {hi}");
        assert_eq!(c.range("y", RangeMethod::MinMax), None);
        // An empty tensor: a degenerate but usable range.
        let c = Calibration::from_values([("e", vec![&[][..]])]);
        assert_eq!(c.range("e", RangeMethod::Percentile(0.99)), Some((0.0, 0.0)));
    }
}
