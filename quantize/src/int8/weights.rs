//! Per-channel symmetric int8 weights: each output channel gets its own
//! scale `max |w| / 127`, zero point 0, so that `w ~= q * scale` with
//! `|w - q * scale| <= scale / 2`. Symmetric weights keep the b zero point
//! out of the integer matmul (no `b0 * sum(a)` correction).

/// An int8 weight and one scale per output channel.
#[derive(Debug, Clone, PartialEq)]
pub struct PerChannel {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
}

/// Largest magnitude of a quantized value: -127..=127, leaving -128 out so
/// that the range is symmetric.
const QMAX: f32 = 127.0;

/// The scale of a channel whose values have largest magnitude `max_abs`.
/// An all-zero channel gets scale 1 (its values are all 0 either way), never
/// 0: a zero scale is a division by zero for any consumer that inverts it.
fn scale_for(max_abs: f32) -> f32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        max_abs / QMAX
    } else {
        1.0
    }
}

fn quantize(v: f32, scale: f32) -> i8 {
    (v / scale).round_ties_even().clamp(-QMAX, QMAX) as i8
}

/// A MatMul weight `[rows = in, cols = out]`, row-major: one scale per column.
pub fn per_column(w: &[f32], rows: usize, cols: usize) -> PerChannel {
    debug_assert_eq!(w.len(), rows * cols);
    let mut max_abs = vec![0f32; cols];
    for row in w.chunks_exact(cols) {
        for (m, v) in max_abs.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scales: Vec<f32> = max_abs.into_iter().map(scale_for).collect();
    let values = w.chunks_exact(cols).flat_map(|row| row.iter().zip(&scales).map(|(v, s)| quantize(*v, *s))).collect();
    PerChannel { values, scales }
}

/// A Conv weight `[out, in, kh, kw]` (or any tensor whose first axis is the
/// output channel): one scale per leading index.
pub fn per_leading_axis(w: &[f32], channels: usize) -> PerChannel {
    debug_assert!(channels > 0 && w.len().is_multiple_of(channels));
    let per = w.len() / channels;
    let mut values = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for chunk in w.chunks_exact(per) {
        let s = scale_for(chunk.iter().fold(0f32, |m, v| m.max(v.abs())));
        values.extend(chunk.iter().map(|v| quantize(*v, s)));
        scales.push(s);
    }
    PerChannel { values, scales }
}

/// Whether every value is finite (int8 cannot hold NaN or infinity).
pub fn all_finite(w: &[f32]) -> bool {
    w.iter().all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of values with channels of very different ranges.
    fn sample(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let col = i % cols;
                let x = ((i as u64 * 2_654_435_761) % 10_007) as f32 / 10_007.0 - 0.5;
                x * 10f32.powi(col as i32 % 5 - 2)
            })
            .collect()
    }

    #[test]
    fn per_column_round_trip_is_within_half_a_step() {
        let (rows, cols) = (37, 11);
        let w = sample(rows, cols);
        let q = per_column(&w, rows, cols);
        assert_eq!(q.scales.len(), cols);
        for (i, v) in w.iter().enumerate() {
            let s = q.scales[i % cols];
            let back = q.values[i] as f32 * s;
            assert!((back - v).abs() <= s * 0.5 + 1e-7 * v.abs(), "{i}: {v} -> {back} (scale {s})");
            assert!(q.values[i] != -128);
        }
        // Each column's largest value maps to +-127: the whole int8 range is used.
        for c in 0..cols {
            let m = (0..rows).map(|r| q.values[r * cols + c].unsigned_abs()).max().unwrap();
            assert_eq!(m, 127, "column {c}");
        }
        // A per-tensor scale would leave the smallest column (1e-2 range) at
        // about a step or two: per-column keeps its relative error at 1/254.
        let small = 0; // col % 5 - 2 = -2
        let rel = (0..rows)
            .map(|r| (q.values[r * cols + small] as f32 * q.scales[small] - w[r * cols + small]).abs())
            .fold(0f32, f32::max)
            / w.iter().skip(small).step_by(cols).fold(0f32, |m, v| m.max(v.abs()));
        assert!(rel <= 0.5 / 127.0 + 1e-6, "{rel}");
    }

    #[test]
    fn zero_channels_get_zeros_and_a_usable_scale() {
        let w = [0.0, 1.2, 0.0, -2.0, 0.0, 0.5];
        let q = per_column(&w, 3, 2);
        assert_eq!(q.scales[0], 1.0);
        assert_eq!(q.values, vec![0, 76, 0, -127, 0, 32]);
        let c = per_leading_axis(&[0.0, 0.0, 0.0, 0.0, 3.0, -3.0, 1.0, 0.0], 2);
        assert_eq!(c.scales, vec![1.0, 3.0 / 127.0]);
        assert_eq!(c.values, vec![0, 0, 0, 0, 127, -127, 42, 0]);
        assert!(!all_finite(&[1.0, f32::NAN]));
    }

    #[test]
    fn per_leading_axis_matches_per_column_of_the_transpose() {
        let (out, inner) = (5, 12);
        let w = sample(out, inner);
        let t: Vec<f32> = (0..inner * out).map(|i| w[(i % out) * inner + i / out]).collect();
        let a = per_leading_axis(&w, out);
        let b = per_column(&t, inner, out);
        assert_eq!(a.scales, b.scales);
        let bt: Vec<i8> = (0..out * inner).map(|i| b.values[(i % inner) * out + i / inner]).collect();
        assert_eq!(a.values, bt);
    }
}
