//! What a quantization run is asked for: the precision, and the layers the
//! user keeps in fp32 (`--keep-fp32 PATTERN`).

use std::fmt;
use std::str::FromStr;

/// `afr.precision` of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Self::Fp32),
            "fp16" => Ok(Self::Fp16),
            "int8" => Ok(Self::Int8),
            other => Err(format!("unknown precision `{other}` (expected fp32, fp16 or int8)")),
        }
    }
}

/// Node-name patterns with `*` wildcards, e.g. `vision/block1/*` or
/// `*/attn/qkv/*`: nodes that match stay in fp32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepFp32 {
    patterns: Vec<String>,
}

impl KeepFp32 {
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { patterns: patterns.into_iter().map(Into::into).collect() }
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn matches(&self, name: &str) -> bool {
        self.matching(name).is_some()
    }

    /// The first pattern that matches `name` (for the report).
    pub fn matching(&self, name: &str) -> Option<&str> {
        self.patterns.iter().map(String::as_str).find(|p| glob(p.as_bytes(), name.as_bytes()))
    }
}

/// `*` matches any run of characters (including `/`); everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_node_names() {
        let k = KeepFp32::new(["vision/block1/*", "*/qkv/*"]);
        assert!(k.matches("vision/block1/attn/MatMul"));
        assert!(k.matches("vision/block7/attn/qkv/MatMul_2"));
        assert!(!k.matches("vision/block10/fc/MatMul"));
        assert!(!KeepFp32::default().matches("anything"));
        assert_eq!(k.matching("vision/block7/attn/qkv/MatMul_2"), Some("*/qkv/*"));
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert!("bf16".parse::<Precision>().unwrap_err().contains("bf16"));
    }
}
