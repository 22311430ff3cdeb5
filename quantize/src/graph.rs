//! Rewriting an exported graph: look up initializers and the nodes that use
//! a tensor, replace one node by several, add initializers under fresh
//! names, and drop what no node uses any more. The passes (`fp16`, `int8`)
//! are written on top of this.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

use crate::onnx::AttrValue;

/// A graph being rewritten. Nodes keep their topological order: a node's
/// replacement is spliced in where the node stood.
#[derive(Debug)]
pub struct Rewriter {
    graph: GraphProto,
    /// Initializer name -> index in `graph.initializer`.
    initializers: HashMap<String, usize>,
    taken: HashSet<String>,
}

impl Rewriter {
    pub fn new(graph: GraphProto) -> Self {
        let initializers = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let mut taken: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        taken.extend(graph.input.iter().map(|v| v.name.clone()));
        taken.extend(graph.output.iter().map(|v| v.name.clone()));
        for n in &graph.node {
            taken.insert(n.name.clone());
            taken.extend(n.output.iter().cloned());
        }
        Self { graph, initializers, taken }
    }

    pub fn nodes(&self) -> &[NodeProto] {
        &self.graph.node
    }

    pub fn initializers(&self) -> &[TensorProto] {
        &self.graph.initializer
    }

    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.initializers.get(name).map(|&i| &self.graph.initializer[i])
    }

    /// A name based on `base` that no tensor or node has yet.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        name
    }

    /// Adds `t` under a fresh name based on its own; returns the name.
    pub fn add_initializer(&mut self, mut t: TensorProto) -> String {
        t.name = self.fresh(&t.name);
        self.initializers.insert(t.name.clone(), self.graph.initializer.len());
        let name = t.name.clone();
        self.graph.initializer.push(t);
        name
    }

    /// A node `op(inputs)` with one fresh output named after `base`.
    pub fn new_node(&mut self, base: &str, op: &str, inputs: &[&str], attrs: &[(&str, AttrValue)]) -> NodeProto {
        self.new_node_n(base, op, inputs, 1, attrs)
    }

    /// A node with `outputs` fresh outputs, not yet in the graph.
    pub fn new_node_n(
        &mut self,
        base: &str,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: &[(&str, AttrValue)],
    ) -> NodeProto {
        let name = self.fresh(base);
        let output = (0..outputs).map(|i| self.fresh(&format!("{name}:{i}"))).collect();
        NodeProto {
            name,
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output,
            attribute: attrs.iter().map(|(n, v)| crate::onnx::attribute(n, v)).collect(),
            ..Default::default()
        }
    }

    /// Replaces the node at `index` by `nodes`, in order. Returns the index
    /// of the node after them.
    pub fn replace(&mut self, index: usize, nodes: Vec<NodeProto>) -> usize {
        let n = nodes.len();
        self.graph.node.splice(index..=index, nodes);
        index + n
    }

    /// Drops initializers that no node reads and that are not graph outputs.
    pub fn remove_unused_initializers(&mut self) {
        let used: HashSet<&str> = self
            .graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .chain(self.graph.output.iter().map(|o| o.name.as_str()))
            .collect();
        let keep: Vec<bool> = self.graph.initializer.iter().map(|t| used.contains(t.name.as_str())).collect();
        let mut i = 0;
        self.graph.initializer.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.initializers = self.graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    }

    /// Tensor name -> indices of the nodes that read it.
    pub fn consumers(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in self.graph.node.iter().enumerate() {
            for input in &n.input {
                map.entry(input.clone()).or_default().push(i);
            }
        }
        map
    }

    pub fn finish(mut self) -> GraphProto {
        self.remove_unused_initializers();
        self.graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::f32_tensor;

    #[test]
    fn replacing_a_node_keeps_order_and_names_stay_unique() {
        let mut g = GraphProto::default();
        g.initializer.push(f32_tensor("w", &[1], &[2.0]));
        g.node.push(NodeProto {
            name: "mul".into(),
            op_type: "Mul".into(),
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            ..Default::default()
        });
        g.node.push(NodeProto {
            name: "neg".into(),
            op_type: "Neg".into(),
            input: vec!["y".into()],
            output: vec!["z".into()],
            ..Default::default()
        });
        let mut r = Rewriter::new(g);
        assert_eq!(r.consumers()["y"], vec![1]);
        let w2 = r.add_initializer(f32_tensor("w", &[1], &[3.0]));
        assert_eq!(w2, "w_1");
        let mut a = r.new_node("mul", "Mul", &["x", &w2], &[]);
        assert_eq!(a.name, "mul_1");
        a.output = vec!["y".into()];
        let next = r.replace(0, vec![a]);
        assert_eq!(next, 1);
        let g = r.finish();
        assert_eq!(g.initializer.len(), 1, "the unused `w` is dropped");
        assert_eq!(g.initializer[0].name, "w_1");
        assert_eq!(g.node[1].op_type, "Neg");
    }
}
