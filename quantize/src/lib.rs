//! AFR-CLIP quantization.
