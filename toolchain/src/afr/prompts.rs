//! The text side (toolchain only): normal and abnormal prototypes from
//! state-word x template ensembles about the universal object, and one
//! stateless prompt per category (DESIGN.md section 2, step 3). CLIP's text
//! encoder is frozen, so these embeddings are computed once; the trainable
//! text linear is applied in the model's forward.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::scoring::l2_normalize;
use super::AfrError;
use crate::clip::tokenizer::Tokenizer;
use crate::clip::TextTransformer;

const BUILTIN: &str = include_str!("../../../models/prompts.json");

/// The category every table holds, used for anything unseen.
pub const DEFAULT_CATEGORY: &str = "object";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSet {
    #[serde(default)]
    pub description: String,
    /// The universal object the state prompts are about.
    pub object: String,
    pub normal_states: Vec<String>,
    pub abnormal_states: Vec<String>,
    pub templates: Vec<String>,
    /// Templates of the stateless prompt, filled with the category name.
    pub stateless_templates: Vec<String>,
}

impl PromptSet {
    /// `models/prompts.json` as shipped.
    pub fn builtin() -> Self {
        serde_json::from_str(BUILTIN).expect("models/prompts.json is valid")
    }

    pub fn from_file(path: &Path) -> Result<Self, AfrError> {
        let bad = |m: String| AfrError::Prompts(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let set: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (what, list) in [
            ("normal_states", &set.normal_states),
            ("abnormal_states", &set.abnormal_states),
            ("templates", &set.templates),
            ("stateless_templates", &set.stateless_templates),
        ] {
            if list.is_empty() || list.iter().any(|s| !s.contains("{}")) {
                return Err(bad(format!("`{what}` must be a non-empty list of strings each holding `{{}}`")));
            }
        }
        Ok(set)
    }

    fn fill(template: &str, word: &str) -> String {
        template.replacen("{}", word, 1)
    }

    fn stateful(&self, states: &[String]) -> Vec<String> {
        states
            .iter()
            .flat_map(|s| self.templates.iter().map(move |t| Self::fill(t, &Self::fill(s, &self.object))))
            .collect()
    }

    pub fn normal_texts(&self) -> Vec<String> {
        self.stateful(&self.normal_states)
    }

    pub fn abnormal_texts(&self) -> Vec<String> {
        self.stateful(&self.abnormal_states)
    }

    /// `metal_nut` is spoken of as "metal nut".
    pub fn stateless_texts(&self, category: &str) -> Vec<String> {
        let name = category.replace('_', " ");
        self.stateless_templates.iter().map(|t| Self::fill(t, &name)).collect()
    }
}

/// CLIP text embeddings of the prompts, before the trainable linear.
#[derive(Debug, Clone)]
pub struct TextTables {
    /// `[E]`
    pub normal: Tensor,
    /// `[E]`
    pub abnormal: Tensor,
    /// `[C, E]`, one row per entry of `categories`.
    pub stateless: Tensor,
    /// Category names in row order; always holds [`DEFAULT_CATEGORY`].
    pub categories: Vec<String>,
}

impl TextTables {
    pub fn encode(
        text: &TextTransformer,
        tokenizer: &Tokenizer,
        prompts: &PromptSet,
        categories: &[String],
        device: &Device,
    ) -> candle_core::Result<Self> {
        let ctx = text.config().context_length;
        // Each ensemble: normalise every embedding, average, normalise.
        let ensemble = |texts: Vec<String>| -> candle_core::Result<Tensor> {
            let mut sum: Option<Tensor> = None;
            for chunk in texts.chunks(64) {
                // Padded to the chunk's longest prompt, not to the context
                // length: under the causal mask the end token never sees
                // the padding after it, and the prompts are ~10 of 77 tokens.
                let len = chunk.iter().map(|t| tokenizer.tokenize(t, ctx).len()).max().unwrap_or(1);
                let ids: Vec<u32> = chunk.iter().flat_map(|t| tokenizer.tokenize_padded(t, len)).collect();
                let ids = Tensor::from_vec(ids, (chunk.len(), len), device)?;
                let e = l2_normalize(&text.text_embeds(&ids)?)?.sum(0)?;
                sum = Some(match sum {
                    Some(s) => (s + e)?,
                    None => e,
                });
            }
            l2_normalize(&(sum.expect("non-empty ensemble") / texts.len() as f64)?)
        };
        let mut names: Vec<String> = categories.to_vec();
        if !names.iter().any(|c| c == DEFAULT_CATEGORY) {
            names.push(DEFAULT_CATEGORY.to_string());
        }
        let stateless =
            names.iter().map(|c| ensemble(prompts.stateless_texts(c))).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            normal: ensemble(prompts.normal_texts())?,
            abnormal: ensemble(prompts.abnormal_texts())?,
            stateless: Tensor::stack(&stateless, 0)?,
            categories: names,
        })
    }

    /// The row of `category`, or of [`DEFAULT_CATEGORY`] when it is unseen.
    pub fn index_of(&self, category: &str) -> usize {
        let find = |c: &str| self.categories.iter().position(|x| x == c);
        find(category).or_else(|| find(DEFAULT_CATEGORY)).expect("tables hold the default category")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prompts_expand_to_ensembles() {
        let p = PromptSet::builtin();
        assert_eq!(p.normal_texts().len(), p.normal_states.len() * p.templates.len());
        assert!(p.abnormal_texts().contains(&"a photo of a damaged object.".to_string()));
        assert_eq!(p.stateless_texts("metal_nut"), vec!["a photo of a metal nut.".to_string()]);
    }
}
