//! Cross-modal feature rectification (CMFR, Eq. 3-6): each visual token
//! rectifies the stateless text embedding,
//! `M_v,i = Linear(Sigmoid(Conv1x1(ReLU(Conv1x1([F_v,i ; F_t^s])))))`,
//! `F^s_t,i = F_t^s + F_v,i * M_v,i`.
//!
//! Widths (the paper gives none): conv 2E -> E, conv E -> E, linear E -> E.
//! The paper's `M_t` (Eq. 5) is never used by Eq. 6, so the linear yields
//! `M_v` alone. A 1x1 convolution over tokens is a per-token linear map.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Module, Tensor, D};

use super::params::ParamStore;
use crate::nn::{sigmoid, Linear};
use crate::onnx_graph::{self, initializer};

/// The per-image text inputs of CMFR in an ONNX graph: the category's
/// stateless embedding and its folded text term, both `[1, E]`.
#[derive(Debug, Clone)]
pub struct CmfrOnnxText {
    pub f_s: String,
    pub text_term: String,
}

#[derive(Debug, Clone)]
pub struct Cmfr {
    /// `[E, 2E]`: its first E columns act on `F_v`, the last E on `F_t^s`.
    conv1: Linear,
    conv2: Linear,
    linear: Linear,
}

impl Cmfr {
    pub fn new(p: &mut ParamStore, e: usize) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: p.linear("cmfr.conv1", 2 * e, e, false)?,
            conv2: p.linear("cmfr.conv2", e, e, false)?,
            linear: p.linear("cmfr.linear", e, e, false)?,
        })
    }

    /// The text half of the first convolution plus its bias, `[.., E]`: a
    /// constant per category, which export folds into a table.
    pub fn text_term(&self, f_s: &Tensor) -> candle_core::Result<Tensor> {
        let e = f_s.dim(D::Minus1)?;
        let w_t = self.conv1.weight.narrow(1, e, e)?;
        Linear::new(w_t, self.conv1.bias.clone()).forward(f_s)
    }

    /// `F_v` `[B, T, E]`, `F_t^s` `[B, E]` (each image's category) -> `F^s_t,i` `[B, T, E]`.
    pub fn forward(&self, f_v: &Tensor, f_s: &Tensor) -> candle_core::Result<Tensor> {
        let e = f_v.dim(D::Minus1)?;
        // Conv1x1([F_v ; F_t^s]) = W_v F_v + (W_t F_t^s + b): Eq. 3-4 without
        // materialising the concatenation.
        let w_v = self.conv1.weight.narrow(1, 0, e)?;
        let h = Linear::new(w_v, None).forward(f_v)?.broadcast_add(&self.text_term(f_s)?.unsqueeze(1)?)?.relu()?;
        let m_v = self.linear.forward(&sigmoid(&self.conv2.forward(&h)?)?)?;
        f_v.mul(&m_v)?.broadcast_add(&f_s.unsqueeze(1)?) // Eq. 6
    }

    /// The stateless table `[C, E]` (after the text linear) and its
    /// `text_term` table as initializers, each row picked by Gather on the
    /// `category` input `[1]`.
    pub fn text_to_onnx(
        &self,
        g: &mut GraphBuilder,
        stateless: &Tensor,
        category: &str,
    ) -> onnx_graph::Result<CmfrOnnxText> {
        let table = initializer(g, "stateless_table", stateless)?;
        let terms = initializer(g, "text_term_table", &self.text_term(stateless)?)?;
        let gather = |g: &mut GraphBuilder, t: &str| g.node("Gather", &[t, category], &[("axis", 0i64.into())]);
        Ok(CmfrOnnxText { f_s: gather(g, &table), text_term: gather(g, &terms) })
    }

    /// `forward` in ONNX: `f_v` `[1, T, E]` -> `[1, T, E]`.
    pub fn to_onnx(&self, g: &mut GraphBuilder, f_v: &str, text: &CmfrOnnxText) -> onnx_graph::Result<String> {
        let e = self.conv1.out_dim();
        let w_v = Linear::new(self.conv1.weight.narrow(1, 0, e)?, None);
        let h = g.scoped("conv1", |g| w_v.to_onnx(g, f_v))?;
        let h = g.node("Add", &[&h, &text.text_term], &[]);
        let h = g.node("Relu", &[&h], &[]);
        let h = g.scoped("conv2", |g| self.conv2.to_onnx(g, &h))?;
        let h = g.node("Sigmoid", &[&h], &[]);
        let m_v = g.scoped("linear", |g| self.linear.to_onnx(g, &h))?;
        let y = g.node("Mul", &[f_v, &m_v], &[]);
        Ok(g.node("Add", &[&y, &text.f_s], &[]))
    }
}
