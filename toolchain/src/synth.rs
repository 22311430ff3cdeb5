//! synth (placeholder; built on the data branch).
