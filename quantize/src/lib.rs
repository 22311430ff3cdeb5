//! AFR-CLIP quantization, and the one place that knows the ONNX protobuf
//! (`onnx`: reading, writing and building models).

pub mod onnx;
