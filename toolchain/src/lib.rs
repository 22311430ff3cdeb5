//! AFR-CLIP in Candle: backbones, the AFR modules, training and export.

pub mod afr;
pub mod benchmark;
pub mod clip;
pub mod demo;
pub mod device;
pub mod evaluate;
pub mod export;
pub mod nn;
pub mod onnx_graph;
pub mod paper;
pub mod precisions;
pub mod preset;
pub mod resnet;
pub mod synth;
pub mod train;
pub mod weights;
