//! Cross-crate tests, benches and examples live in this root package.
