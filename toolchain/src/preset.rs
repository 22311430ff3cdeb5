//! preset
