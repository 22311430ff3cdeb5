//! A torchvision-layout ResNet (ResNet-18/34 with basic blocks, ResNet-50 with
//! bottlenecks, stride on the 3x3 conv as in torchvision's "v1.5"), returning
//! the global-average-pooled feature `F_cnn` that SP turns into prompts.
//! timm's ResNets use the same tensor names. BatchNorm runs in inference mode
//! (running statistics): the ResNet is frozen.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use crate::onnx_graph::{self, initializer};
use crate::weights::{Init, Result, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

impl BlockKind {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks in each of the four stages.
    pub layers: [usize; 4],
    /// Channels of the 7x7 stem convolution.
    pub stem_width: usize,
    /// `planes` of each stage (outputs are `planes * expansion`).
    pub planes: [usize; 4],
}

impl ResNetConfig {
    pub fn resnet18() -> Self {
        Self { block: BlockKind::Basic, layers: [2, 2, 2, 2], stem_width: 64, planes: [64, 128, 256, 512] }
    }

    pub fn resnet50() -> Self {
        Self { block: BlockKind::Bottleneck, layers: [3, 4, 6, 3], stem_width: 64, planes: [64, 128, 256, 512] }
    }

    /// Width of the pooled feature.
    pub fn out_dim(&self) -> usize {
        self.planes[3] * self.block.expansion()
    }
}

/// Convolution without bias followed by inference-mode BatchNorm, folded into
/// a per-channel scale and shift.
#[derive(Debug, Clone)]
struct ConvBn {
    weight: Tensor,
    scale: Tensor,
    shift: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvBn {
    fn load(w: &Weights, conv: &str, bn: &str, c_in: usize, c_out: usize, k: usize, stride: usize) -> Result<Self> {
        let fan_in = (c_in * k * k) as f64;
        let weight = w.get(&format!("{conv}.weight"), &[c_out, c_in, k, k], Init::Normal((2.0 / fan_in).sqrt()))?;
        let gamma = w.get(&format!("{bn}.weight"), &[c_out], Init::Ones)?;
        let beta = w.get(&format!("{bn}.bias"), &[c_out], Init::Zeros)?;
        let mean = w.get(&format!("{bn}.running_mean"), &[c_out], Init::Zeros)?;
        let var = w.get(&format!("{bn}.running_var"), &[c_out], Init::Ones)?;
        // torchvision's BatchNorm eps.
        let scale = gamma.div(&(var + 1e-5)?.sqrt()?)?;
        let shift = (beta - mean.mul(&scale)?)?;
        Ok(Self {
            weight,
            scale: scale.reshape((1, c_out, 1, 1))?,
            shift: shift.reshape((1, c_out, 1, 1))?,
            stride,
            padding: k / 2,
        })
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

impl ConvBn {
    /// `forward` in ONNX, the BatchNorm folded into the convolution: the
    /// scale multiplies the kernel, the shift is the bias.
    fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let c_out = self.weight.dim(0)?;
        let w = self.weight.broadcast_mul(&self.scale.reshape((c_out, 1, 1, 1))?)?;
        let w = initializer(g, "weight", &w)?;
        let b = initializer(g, "bias", &self.shift.flatten_all()?)?;
        let (k, s, p) = (self.weight.dim(2)? as i64, self.stride as i64, self.padding as i64);
        let attrs =
            [("kernel_shape", vec![k, k].into()), ("strides", vec![s, s].into()), ("pads", vec![p, p, p, p].into())];
        Ok(g.node("Conv", &[x, &w, &b], &attrs))
    }
}

#[derive(Debug, Clone)]
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn load(w: &Weights, p: &str, kind: BlockKind, c_in: usize, planes: usize, stride: usize) -> Result<Self> {
        let out = planes * kind.expansion();
        let cb = |i: usize, c_in, c_out, k, s| {
            ConvBn::load(w, &format!("{p}.conv{i}"), &format!("{p}.bn{i}"), c_in, c_out, k, s)
        };
        let convs = match kind {
            BlockKind::Basic => vec![cb(1, c_in, planes, 3, stride)?, cb(2, planes, planes, 3, 1)?],
            BlockKind::Bottleneck => {
                vec![cb(1, c_in, planes, 1, 1)?, cb(2, planes, planes, 3, stride)?, cb(3, planes, out, 1, 1)?]
            }
        };
        let downsample = if stride != 1 || c_in != out {
            Some(ConvBn::load(w, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), c_in, out, 1, stride)?)
        } else {
            None
        };
        Ok(Self { convs, downsample })
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let last = self.convs.len() - 1;
        let mut y = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            y = conv.forward(&y)?;
            if i < last {
                y = y.relu()?;
            }
        }
        let identity = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (y + identity)?.relu()
    }
}

impl Block {
    /// `forward` in ONNX.
    fn to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let last = self.convs.len() - 1;
        let mut y = x.to_string();
        for (i, conv) in self.convs.iter().enumerate() {
            y = g.scoped(&format!("conv{}", i + 1), |g| conv.to_onnx(g, &y))?;
            if i < last {
                y = g.node("Relu", &[&y], &[]);
            }
        }
        let identity = match &self.downsample {
            Some(d) => g.scoped("downsample", |g| d.to_onnx(g, x))?,
            None => x.to_string(),
        };
        let sum = g.node("Add", &[&y, &identity], &[]);
        Ok(g.node("Relu", &[&sum], &[]))
    }
}

#[derive(Debug, Clone)]
pub struct ResNet {
    stem: ConvBn,
    stages: Vec<Vec<Block>>,
    cfg: ResNetConfig,
}

impl ResNet {
    /// Names as torchvision and timm save them (`conv1`, `bn1`,
    /// `layer{1..4}.{i}.conv{j}`, `downsample.{0,1}`). A leading prefix such as
    /// `model.` is found and skipped; the classifier `fc` is not loaded.
    pub fn load(w: &mut Weights, cfg: &ResNetConfig) -> Result<Self> {
        if !w.is_random() && !w.contains("conv1.weight") {
            let prefix = w
                .names()
                .iter()
                .find_map(|n| {
                    n.strip_suffix("conv1.weight")
                        .filter(|p| p.ends_with('.') && !p.contains("layer"))
                        .map(str::to_string)
                })
                .ok_or_else(|| w.invalid("no `conv1.weight`: not a torchvision/timm ResNet"))?;
            w.set_prefix(&prefix);
        }
        let w: &Weights = w;
        let stem = ConvBn::load(w, "conv1", "bn1", 3, cfg.stem_width, 7, 2)?;
        let mut c_in = cfg.stem_width;
        let mut stages = Vec::with_capacity(4);
        for (s, (&n, &planes)) in cfg.layers.iter().zip(&cfg.planes).enumerate() {
            let stage = (0..n)
                .map(|i| {
                    let stride = if s > 0 && i == 0 { 2 } else { 1 };
                    let b = Block::load(w, &format!("layer{}.{i}", s + 1), cfg.block, c_in, planes, stride);
                    c_in = planes * cfg.block.expansion();
                    b
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(stage);
        }
        // The ImageNet classifier is the one part self prompting does without.
        w.check_all_used(&["fc.weight", "fc.bias"])?;
        Ok(Self { stem, stages, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    /// `[B, 3, H, W]` (ImageNet-normalised) to the pooled feature `[B, C]`.
    pub fn pooled(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.stem.forward(x)?.relu()?;
        // 3x3/2 max pool with padding 1. The input is post-ReLU (>= 0) and each
        // window holds at least one real value, so zero padding equals -inf.
        let mut x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 2)?;
        for block in self.stages.iter().flatten() {
            x = block.forward(&x)?;
        }
        x.mean((2, 3))
    }

    /// `pooled` in ONNX: `[1, 3, H, W]` to `[1, C]`.
    pub fn pooled_to_onnx(&self, g: &mut GraphBuilder, x: &str) -> onnx_graph::Result<String> {
        let x = g.scoped("stem", |g| self.stem.to_onnx(g, x))?;
        let x = g.node("Relu", &[&x], &[]);
        let attrs = [
            ("kernel_shape", vec![3i64, 3].into()),
            ("strides", vec![2i64, 2].into()),
            ("pads", vec![1i64, 1, 1, 1].into()),
        ];
        let mut x = g.node("MaxPool", &[&x], &attrs);
        for (s, stage) in self.stages.iter().enumerate() {
            for (i, block) in stage.iter().enumerate() {
                x = g.scoped(&format!("layer{}.{i}", s + 1), |g| block.to_onnx(g, &x))?;
            }
        }
        let x = g.node("GlobalAveragePool", &[&x], &[]);
        Ok(g.node("Flatten", &[&x], &[("axis", 1i64.into())]))
    }
}
