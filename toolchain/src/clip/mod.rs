//! CLIP: the vision transformer, the text transformer and the BPE tokenizer.

pub mod tokenizer;
