//! Image and mask decoding with limits.
