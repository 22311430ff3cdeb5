//! Multi-patch feature aggregation (MPFA, Eq. 19-21): each patch feature is
//! averaged with its m x m neighbourhood on the patch grid; stride 1, padding
//! m/2, borders averaged over the cells that exist (`count_include_pad =
//! false`). The class token is not pooled.

use afr_quantize::onnx::GraphBuilder;
use candle_core::{Device, Tensor};

use crate::onnx_graph::{self, reshape, transpose};

#[derive(Debug, Clone)]
pub struct Mpfa {
    m: usize,
}

impl Mpfa {
    /// `m` odd (1 turns MPFA off); the paper's default is 3.
    pub fn new(m: usize) -> Self {
        assert!(m % 2 == 1, "MPFA window must be odd, got {m}");
        Self { m }
    }

    pub fn window(&self) -> usize {
        self.m
    }

    /// Patch tokens `[B, h*w, E]` (row-major grid) to pooled tokens of the same shape.
    pub fn forward(&self, patches: &Tensor, h: usize, w: usize) -> candle_core::Result<Tensor> {
        if self.m == 1 {
            return Ok(patches.clone());
        }
        let (b, n, e) = patches.dims3()?;
        debug_assert_eq!(n, h * w);
        let pad = self.m / 2;
        let grid = patches.transpose(1, 2)?.reshape((b, e, h, w))?;
        // A separable box sum over the zero-padded grid (candle's avg_pool2d
        // has no gradient for stride 1), then divided by the cells that exist.
        let padded = grid.pad_with_zeros(2, pad, pad)?.pad_with_zeros(3, pad, pad)?;
        let box_sum = |x: &Tensor, dim: usize, len: usize| -> candle_core::Result<Tensor> {
            let mut acc = x.narrow(dim, 0, len)?;
            for k in 1..self.m {
                acc = (acc + x.narrow(dim, k, len)?)?;
            }
            Ok(acc)
        };
        let rows = box_sum(&padded, 3, w)?;
        let sums = box_sum(&rows, 2, h)?;
        let pooled = sums.broadcast_mul(&self.inverse_count(h, w, patches.device())?)?;
        pooled.reshape((b, e, n))?.transpose(1, 2)?.contiguous()
    }

    /// `forward` in ONNX: AveragePool with `count_include_pad = 0` on the grid.
    pub fn to_onnx(&self, g: &mut GraphBuilder, patches: &str, h: usize, w: usize) -> onnx_graph::Result<String> {
        if self.m == 1 {
            return Ok(patches.to_string());
        }
        let (m, pad) = (self.m as i64, (self.m / 2) as i64);
        let grid = transpose(g, patches, &[0, 2, 1]);
        let grid = reshape(g, &grid, &[0, 0, h as i64, w as i64])?;
        let attrs = [
            ("kernel_shape", vec![m, m].into()),
            ("strides", vec![1i64, 1].into()),
            ("pads", vec![pad, pad, pad, pad].into()),
            ("count_include_pad", 0i64.into()),
        ];
        let pooled = g.node("AveragePool", &[&grid], &attrs);
        let pooled = reshape(g, &pooled, &[0, 0, -1])?;
        Ok(transpose(g, &pooled, &[0, 2, 1]))
    }

    /// `1 / count` per cell, `[1, 1, h, w]`.
    fn inverse_count(&self, h: usize, w: usize, dev: &Device) -> candle_core::Result<Tensor> {
        let r = (self.m / 2) as i64;
        let span = |i: usize, n: usize| ((i as i64 + r).min(n as i64 - 1) - (i as i64 - r).max(0) + 1) as f32;
        let v: Vec<f32> = (0..h).flat_map(|y| (0..w).map(move |x| 1.0 / (span(y, h) * span(x, w)))).collect();
        Tensor::from_vec(v, (1, 1, h, w), dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_average_only_the_cells_that_exist() {
        // One channel on a 3x3 grid, values 0..9.
        let x = Tensor::arange(0f32, 9., &Device::Cpu).unwrap().reshape((1, 9, 1)).unwrap();
        let y = Mpfa::new(3).forward(&x, 3, 3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Corner (0,0): mean of 0,1,3,4 = 2; centre: mean of all = 4; edge (0,1): mean of 0,1,2,3,4,5 = 2.5.
        assert!((y[0] - 2.0).abs() < 1e-6 && (y[4] - 4.0).abs() < 1e-6 && (y[1] - 2.5).abs() < 1e-6, "{y:?}");
        let same = Mpfa::new(1).forward(&x, 3, 3).unwrap();
        assert_eq!(same.flatten_all().unwrap().to_vec1::<f32>().unwrap(), (0..9).map(|v| v as f32).collect::<Vec<_>>());
    }
}
