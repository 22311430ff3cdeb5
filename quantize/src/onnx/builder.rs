//! Building an ONNX graph by hand with readable names: every tensor and node
//! is named `scope/prefix` (scopes nest, e.g. `vision/block3/attn/qkv`), made
//! unique with a counter, so a graph viewer shows where each op came from.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use super::{Model, OnnxError, Result};

/// Element types of graph inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    I64,
}

impl ElemType {
    fn data_type(self) -> DataType {
        match self {
            Self::F32 => DataType::Float,
            Self::I64 => DataType::Int64,
        }
    }
}

/// A node attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    String(String),
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Vec<i64>> for AttrValue {
    fn from(v: Vec<i64>) -> Self {
        Self::Ints(v)
    }
}

impl From<f32> for AttrValue {
    fn from(v: f32) -> Self {
        Self::Float(v)
    }
}

impl From<Vec<f32>> for AttrValue {
    fn from(v: Vec<f32>) -> Self {
        Self::Floats(v)
    }
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_string())
    }
}

pub(crate) fn attribute(name: &str, value: &AttrValue) -> AttributeProto {
    let mut a = AttributeProto { name: name.to_string(), ..Default::default() };
    let ty = match value {
        AttrValue::Int(v) => {
            a.i = *v;
            AttributeType::Int
        }
        AttrValue::Ints(v) => {
            a.ints = v.clone();
            AttributeType::Ints
        }
        AttrValue::Float(v) => {
            a.f = *v;
            AttributeType::Float
        }
        AttrValue::Floats(v) => {
            a.floats = v.clone();
            AttributeType::Floats
        }
        AttrValue::String(v) => {
            a.s = v.clone().into_bytes();
            AttributeType::String
        }
    };
    a.r#type = ty as i32;
    a
}

fn value_info(name: &str, elem: ElemType, dims: &[usize]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), ..Default::default() })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem.data_type() as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn check_len(name: &str, dims: &[usize], found: usize) -> Result<()> {
    let expected = dims.iter().product::<usize>();
    if expected != found {
        return Err(OnnxError::DataLength { name: name.to_string(), dims: dims.to_vec(), expected, found });
    }
    Ok(())
}

#[derive(Debug)]
pub struct GraphBuilder {
    graph: GraphProto,
    scopes: Vec<String>,
    /// Next counter per full name, to keep names unique.
    counters: HashMap<String, usize>,
    taken: HashSet<String>,
    metadata: Vec<(String, String)>,
}

impl GraphBuilder {
    pub fn new(graph_name: &str) -> Self {
        Self {
            graph: GraphProto { name: graph_name.to_string(), ..Default::default() },
            scopes: Vec::new(),
            counters: HashMap::new(),
            taken: HashSet::new(),
            metadata: Vec::new(),
        }
    }

    /// Runs `f` with names prefixed by `scope/`.
    pub fn scoped<T>(&mut self, scope: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(scope.to_string());
        let out = f(self);
        self.scopes.pop();
        out
    }

    /// A name not used before: `scope/prefix`, then `scope/prefix_1`, ...
    pub fn fresh(&mut self, prefix: &str) -> String {
        let base =
            if self.scopes.is_empty() { prefix.to_string() } else { format!("{}/{prefix}", self.scopes.join("/")) };
        loop {
            let n = self.counters.entry(base.clone()).or_insert(0);
            let name = if *n == 0 { base.clone() } else { format!("{base}_{n}") };
            *n += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }

    /// An f32 initializer named after `prefix`; returns its name.
    pub fn initializer_f32(&mut self, prefix: &str, dims: &[usize], data: &[f32]) -> Result<String> {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(prefix, dims, DataType::Float, data.len(), raw)
    }

    /// An i64 initializer (shapes, axes, indices); returns its name.
    pub fn initializer_i64(&mut self, prefix: &str, dims: &[usize], data: &[i64]) -> Result<String> {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(prefix, dims, DataType::Int64, data.len(), raw)
    }

    /// Adds `len` little-endian elements of `data_type` as an initializer.
    fn initializer(
        &mut self,
        prefix: &str,
        dims: &[usize],
        data_type: DataType,
        len: usize,
        raw_data: Vec<u8>,
    ) -> Result<String> {
        let name = self.fresh(prefix);
        check_len(&name, dims, len)?;
        self.graph.initializer.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data,
            ..Default::default()
        });
        Ok(name)
    }

    /// A rank-0 f32 constant.
    pub fn scalar_f32(&mut self, prefix: &str, v: f32) -> Result<String> {
        self.initializer_f32(prefix, &[], &[v])
    }

    /// A 1-D i64 constant (a shape, axes, starts, ...).
    pub fn ints(&mut self, prefix: &str, v: &[i64]) -> Result<String> {
        self.initializer_i64(prefix, &[v.len()], v)
    }

    /// A node of `op` with one output, named after `op`; returns the output.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, AttrValue)]) -> String {
        self.node_n(op, inputs, 1, attrs).remove(0)
    }

    /// A node with `outputs` outputs; returns their names.
    pub fn node_n(&mut self, op: &str, inputs: &[&str], outputs: usize, attrs: &[(&str, AttrValue)]) -> Vec<String> {
        let name = self.fresh(op);
        let output: Vec<String> = match outputs {
            1 => vec![format!("{name}:0")],
            n => (0..n).map(|i| format!("{name}:{i}")).collect(),
        };
        self.taken.extend(output.iter().cloned());
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            name,
            op_type: op.to_string(),
            attribute: attrs.iter().map(|(n, v)| attribute(n, v)).collect(),
            ..Default::default()
        });
        output
    }

    /// Declares a graph input of fixed shape; returns its name (used as is).
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[usize]) -> Result<String> {
        if !self.taken.insert(name.to_string()) {
            return Err(OnnxError::DuplicateInput(name.to_string()));
        }
        self.graph.input.push(value_info(name, elem, dims));
        Ok(name.to_string())
    }

    /// Declares `tensor` as the graph output `name` (through an Identity when
    /// the names differ).
    pub fn output(&mut self, tensor: &str, name: &str, elem: ElemType, dims: &[usize]) -> Result<()> {
        if self.graph.output.iter().any(|o| o.name == name) {
            return Err(OnnxError::DuplicateOutput(name.to_string()));
        }
        if tensor != name {
            if !self.taken.insert(name.to_string()) {
                return Err(OnnxError::DuplicateOutput(name.to_string()));
            }
            let node = self.fresh("output");
            self.graph.node.push(NodeProto {
                input: vec![tensor.to_string()],
                output: vec![name.to_string()],
                name: node,
                op_type: "Identity".into(),
                ..Default::default()
            });
        }
        self.graph.output.push(value_info(name, elem, dims));
        Ok(())
    }

    /// A `metadata_props` entry of the model.
    pub fn metadata(&mut self, key: &str, value: impl Into<String>) {
        self.metadata.push((key.to_string(), value.into()));
    }

    pub fn num_nodes(&self) -> usize {
        self.graph.node.len()
    }

    pub fn finish(self) -> Model {
        Model::new(self.graph, self.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_are_scoped_and_unique() {
        let mut g = GraphBuilder::new("t");
        let a = g.scoped("block0", |g| g.fresh("w"));
        let b = g.scoped("block0", |g| g.fresh("w"));
        let c = g.fresh("w");
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("block0/w", "block0/w_1", "w"));
    }

    #[test]
    fn wrong_data_length_is_an_error() {
        let mut g = GraphBuilder::new("t");
        let e = g.initializer_f32("w", &[2, 3], &[0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("hold 6 values"), "{e}");
    }

    /// A graph written, read back and run by tract: y = x * 2 + 1.
    #[test]
    fn a_built_model_round_trips_and_runs_in_tract() {
        use tract_onnx::prelude::*;
        let mut g = GraphBuilder::new("t");
        let x = g.input("x", ElemType::F32, &[1, 3]).unwrap();
        let two = g.scalar_f32("two", 2.0).unwrap();
        let one = g.initializer_f32("one", &[3], &[1.0, 1.0, 1.0]).unwrap();
        let m = g.node("Mul", &[&x, &two], &[]);
        let y = g.node("Add", &[&m, &one], &[]);
        g.output(&y, "y", ElemType::F32, &[1, 3]).unwrap();
        g.metadata("afr.test", "yes");
        let model = g.finish();
        let dir = std::env::temp_dir().join(format!("afr-onnx-builder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        model.write(&path).unwrap();
        let back = Model::read(&path).unwrap();
        assert_eq!(back, model);
        assert_eq!(back.metadata("afr.test"), Some("yes"));
        assert_eq!(back.proto.opset_import[0].version, 17);
        let plan = tract_onnx::onnx().model_for_path(&path).unwrap().into_optimized().unwrap().into_runnable().unwrap();
        let input = tract_ndarray::arr2(&[[1f32, 2.0, -3.0]]).into_tensor();
        let out = plan.run(tvec!(input.into())).unwrap();
        let y: Vec<f32> = out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        assert_eq!(y, vec![3.0, 5.0, -5.0]);
        std::fs::remove_dir_all(&dir).unwrap();
        let err = Model::from_bytes(b"\xff\xff\xff", Path::new("junk.onnx")).unwrap_err();
        assert!(err.to_string().contains("junk.onnx"), "{err}");
    }
}
