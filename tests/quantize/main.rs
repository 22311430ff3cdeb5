//! Quantized models against their fp32 source (DESIGN.md section 4): the
//! tiny preset, and a seeded random `vit-b16` at 224 built once per run.
//! One test binary, so the large model is built only once.

mod common;
mod fp16;
mod int8;
