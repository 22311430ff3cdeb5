//! Initializer data: decoding an ONNX `TensorProto` to values and encoding
//! values of each element type we write (f32, f16, i8, u8, i32, i64).

use half::f16;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::TensorProto;

use crate::QuantizeError;

/// The f32 values of `t` (from `raw_data` or `float_data`), row-major.
pub fn f32_values(t: &TensorProto) -> Result<Vec<f32>, QuantizeError> {
    let bad = |problem: String| QuantizeError::Tensor { name: t.name.clone(), problem };
    if t.data_type != DataType::Float as i32 {
        return Err(bad(format!("element type {} is not float", t.data_type)));
    }
    let expected = element_count(t)?;
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != expected * 4 {
            return Err(bad(format!("{} bytes of raw data for {expected} floats", t.raw_data.len())));
        }
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        t.float_data.clone()
    };
    if values.len() != expected {
        return Err(bad(format!("{} values for dims {:?}", values.len(), t.dims)));
    }
    Ok(values)
}

/// Product of the dims, refusing negative or overflowing ones.
pub fn element_count(t: &TensorProto) -> Result<usize, QuantizeError> {
    t.dims.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| QuantizeError::Tensor { name: t.name.clone(), problem: format!("bad dims {:?}", t.dims) })
    })
}

pub fn dims_usize(t: &TensorProto) -> Vec<usize> {
    t.dims.iter().map(|&d| d.max(0) as usize).collect()
}

fn tensor(name: &str, dims: &[usize], data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    tensor(name, dims, DataType::Float, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Rounds each value to the nearest f16.
pub fn f16_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    tensor(name, dims, DataType::Float16, data.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect())
}

pub fn i8_tensor(name: &str, dims: &[usize], data: &[i8]) -> TensorProto {
    tensor(name, dims, DataType::Int8, data.iter().map(|v| *v as u8).collect())
}

pub fn u8_tensor(name: &str, dims: &[usize], data: &[u8]) -> TensorProto {
    tensor(name, dims, DataType::Uint8, data.to_vec())
}

pub fn i32_tensor(name: &str, dims: &[usize], data: &[i32]) -> TensorProto {
    tensor(name, dims, DataType::Int32, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

pub fn i64_tensor(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    tensor(name, dims, DataType::Int64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Bytes the initializer's data takes in the file.
pub fn data_bytes(t: &TensorProto) -> usize {
    t.raw_data.len()
        + 4 * t.float_data.len()
        + 4 * t.int32_data.len()
        + 8 * t.int64_data.len()
        + 8 * t.double_data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trips_and_f16_rounds() {
        let t = f32_tensor("w", &[2, 2], &[1.0, -2.5, 0.1, 3.0e5]);
        assert_eq!(f32_values(&t).unwrap(), vec![1.0, -2.5, 0.1, 3.0e5]);
        let h = f16_tensor("w", &[2, 2], &[1.0, -2.5, 0.1, 3.0e5]);
        assert_eq!(h.raw_data.len(), 8);
        assert_eq!(f16::from_le_bytes([h.raw_data[4], h.raw_data[5]]).to_f32(), 0.099975586);
        // Beyond f16's range (65504): infinity, which callers must check for.
        assert!(f16::from_le_bytes([h.raw_data[6], h.raw_data[7]]).is_infinite());
    }

    #[test]
    fn short_data_is_an_error_naming_the_tensor() {
        let mut t = f32_tensor("blocks/w", &[3], &[1.0, 2.0, 3.0]);
        t.raw_data.truncate(8);
        let e = f32_values(&t).unwrap_err().to_string();
        assert!(e.contains("blocks/w") && e.contains("8 bytes"), "{e}");
        let mut t = f32_tensor("d", &[2], &[1.0, 2.0]);
        t.dims = vec![-2];
        assert!(f32_values(&t).is_err());
    }
}
