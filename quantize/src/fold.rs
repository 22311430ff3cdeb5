//! Weights stored small and widened to f32 when tract loads the model (an
//! f16 `Cast`, an int8 `DequantizeLinear`): both passes rely on tract
//! folding such a constant op into an f32 constant once, at load.
//!
//! tract-core 0.23.9 folds a constant op only while its output stays under
//! `max(input bytes, CONST_FOLD_MEM_BUDGET = 4 MiB)`; a larger weight widened
//! in one piece is converted again on every frame (measured: slower than
//! fp32). So large weights are split along axis 0 into slices of at most
//! [`FOLD_ELEMENTS`] values, each widened alone, then concatenated (a Concat
//! folds: its output is as large as its inputs).

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::NodeProto;

use crate::graph::Rewriter;
use crate::onnx::AttrValue;
use crate::tensor::{data_bytes, f16_tensor};

/// At most this many f32 values per widened slice: 4 MiB.
pub const FOLD_ELEMENTS: usize = 1 << 20;

/// `[lo, hi)` ranges of axis 0 of `dims` (a rank-0 tensor is one row) whose
/// slices hold at most `max_elements` values, a whole row at least; and the
/// number of values per row.
pub fn slices(dims: &[usize], max_elements: usize) -> (Vec<(usize, usize)>, usize) {
    let rows = dims.first().copied().unwrap_or(1).max(1);
    let row = dims.iter().skip(1).product::<usize>().max(1);
    let per = (max_elements / row).clamp(1, rows);
    ((0..rows).step_by(per).map(|lo| (lo, (lo + per).min(rows))).collect(), row)
}

/// The one tensor of `parts` (axis-0 slices, in order): the part itself, or
/// a Concat of them added to `nodes`.
pub fn join(rw: &mut Rewriter, base: &str, mut parts: Vec<String>, nodes: &mut Vec<NodeProto>) -> String {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let concat = rw.new_node(&format!("{base}/Concat"), "Concat", &refs, &[("axis", AttrValue::Int(0))]);
    let out = concat.output[0].clone();
    nodes.push(concat);
    out
}

/// `values` (of shape `dims`) stored as f16 initializers `{name}_f16` (or
/// `{name}_f16/K` per slice of at most `max_elements`), each behind a Cast to
/// f32, joined. Returns the new nodes, the f32 tensor's name and the f16
/// bytes stored.
pub fn f16_as_f32(
    rw: &mut Rewriter,
    name: &str,
    dims: &[usize],
    values: &[f32],
    max_elements: usize,
) -> (Vec<NodeProto>, String, usize) {
    let (ranges, row) = slices(dims, max_elements);
    let single = ranges.len() == 1;
    let mut nodes = Vec::with_capacity(ranges.len() + 1);
    let mut parts = Vec::with_capacity(ranges.len());
    let mut bytes = 0;
    for (k, (lo, hi)) in ranges.into_iter().enumerate() {
        let mut part_dims = dims.to_vec();
        if let Some(d) = part_dims.first_mut() {
            *d = hi - lo;
        }
        let part = if single { format!("{name}_f16") } else { format!("{name}_f16/{k}") };
        let half = rw.add_initializer(f16_tensor(&part, &part_dims, &values[lo * row..(hi * row).min(values.len())]));
        bytes += data_bytes(rw.initializer(&half).expect("just added"));
        let cast =
            rw.new_node(&format!("{part}/Cast"), "Cast", &[&half], &[("to", AttrValue::Int(DataType::Float as i64))]);
        parts.push(cast.output[0].clone());
        nodes.push(cast);
    }
    let out = join(rw, &format!("{name}_f16"), parts, &mut nodes);
    (nodes, out, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_hold_whole_rows_within_the_budget() {
        assert_eq!(slices(&[7, 3], 6), (vec![(0, 2), (2, 4), (4, 6), (6, 7)], 3));
        assert_eq!(slices(&[7, 3], usize::MAX), (vec![(0, 7)], 3));
        // A row larger than the budget still makes a slice of its own.
        assert_eq!(slices(&[2, 10], 4), (vec![(0, 1), (1, 2)], 10));
        assert_eq!(slices(&[], 4), (vec![(0, 1)], 1));
    }
}
