//! The fp16 pass: the backbone's weights (MatMul and Conv) stored as f16,
//! halving the file; everything else left as exported.
//!
//! Where the arithmetic happens is a choice ([`Fp16Compute`]):
//! - `Storage` (the default): each f16 weight goes through a `Cast` to f32,
//!   which tract folds into a constant at load (see [`crate::fold`]), so the
//!   model computes in f32 as before, on rounded weights.
//! - `Matmul`: the MatMuls with f16 weights also take f16 activations (a
//!   `Cast` before, one back to f32 after), for CPUs with native f16
//!   arithmetic (aarch64 with FEAT_FP16, where tract has f16 kernels).
//!
//! Measured on x86-64 (tract 0.23.9, one thread, vit-b16 at 224, CPU
//! seconds per frame): fp32 0.58-0.68; storage 0.58-0.70 (the same plan
//! once folded); storage with unfolded Casts 0.81-0.93; f16 MatMuls
//! 0.72-0.88, a quarter slower (tract has no f16 kernels on x86 and
//! converts inside each product); f16 MatMuls and f16 Convs 18.5-19.7.
//! So convolutions stay f32 in both modes (tract's f16 convolution is a
//! generic kernel), and storage is the default.
//!
//! Always f32, in both modes: graph inputs and outputs (the runtime's
//! contract), LayerNormalization and Softmax (their inputs are f32 tensors
//! in both modes), the text tables (`text/*`, kept bit-identical), and the
//! scoring head after each stage's projection (adapter, CMFR, scoring):
//! small layers whose rounding would go straight into the map. A weight
//! with a value beyond f16's range (65504) stays f32 rather than become
//! infinite, and so do weights of nodes matched by `--keep-fp32`.

use std::fmt;
use std::str::FromStr;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::NodeProto;

use crate::fold;
use crate::graph::Rewriter;
use crate::onnx::{AttrValue, Model};
use crate::tensor::{data_bytes, dims_usize, f16_tensor, f32_values};
use crate::{KeepFp32, LayerChoice, QuantizeError};

/// Largest finite f16.
pub const F16_MAX: f32 = 65504.0;

/// Where an fp16 model computes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fp16Compute {
    /// f16 weights, f32 arithmetic: fastest where tract has no f16 kernels (x86-64).
    #[default]
    Storage,
    /// MatMuls in f16 as well: for aarch64 CPUs with native f16 arithmetic.
    Matmul,
}

impl Fp16Compute {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Storage => "storage",
            Self::Matmul => "matmul",
        }
    }
}

impl fmt::Display for Fp16Compute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Fp16Compute {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "storage" => Ok(Self::Storage),
            "matmul" => Ok(Self::Matmul),
            other => Err(format!("unknown fp16 compute mode `{other}` (expected storage or matmul)")),
        }
    }
}

/// The fp16 model of `model` in the default mode ([`Fp16Compute::Storage`]).
pub fn convert(model: &Model, keep: &KeepFp32) -> Result<(Model, Vec<LayerChoice>), QuantizeError> {
    convert_with(model, keep, Fp16Compute::default())
}

/// The fp16 model of `model`, computing as `compute` says, and what was
/// decided for each node with weights. Metadata is copied unchanged (the
/// caller sets `afr.precision`) but for `afr.weights_sha256`, recomputed
/// when present.
pub fn convert_with(
    model: &Model,
    keep: &KeepFp32,
    compute: Fp16Compute,
) -> Result<(Model, Vec<LayerChoice>), QuantizeError> {
    let graph = model.proto.graph.clone().unwrap_or_default();
    let mut r = Rewriter::new(graph);
    let consumers = r.consumers();
    let mut layers = Vec::new();
    let mut i = 0;
    while i < r.nodes().len() {
        let node = r.nodes()[i].clone();
        let Some(weight) = weight_input(&r, &node) else {
            i += 1;
            continue;
        };
        let t = r.initializer(&weight).expect("weight_input checks the initializer");
        let bytes = data_bytes(t);
        let choice = |choice: &str, reason: String, after: usize| LayerChoice {
            node: node.name.clone(),
            op: node.op_type.clone(),
            choice: choice.into(),
            reason,
            weight_bytes_before: bytes,
            weight_bytes_after: after,
        };
        let kept = |reason: String| choice("fp32 (kept)", reason, bytes);
        if node.op_type == "Gather" {
            layers.push(kept("category table: kept bit-identical".into()));
            i += 1;
            continue;
        }
        if is_head(&node.name) {
            layers.push(kept("scoring head: full precision after the stage projection".into()));
            i += 1;
            continue;
        }
        if let Some(p) = keep.matching(&node.name) {
            layers.push(kept(format!("--keep-fp32 `{p}`")));
            i += 1;
            continue;
        }
        let readers = consumers.get(&weight).map_or(0, Vec::len);
        if readers > 1 {
            layers.push(kept(format!("weight `{weight}` is shared by {readers} nodes")));
            i += 1;
            continue;
        }
        let values = f32_values(t)?;
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        if values.is_empty() {
            layers.push(kept("empty weight".into()));
            i += 1;
            continue;
        }
        if values.iter().any(|v| !v.is_finite()) {
            layers.push(kept("non-finite values".into()));
            i += 1;
            continue;
        }
        if largest > F16_MAX {
            layers.push(kept(format!("values up to {largest:e} are beyond f16's range ({F16_MAX})")));
            i += 1;
            continue;
        }
        let dims = dims_usize(t);
        let in_f16 = compute == Fp16Compute::Matmul && node.op_type == "MatMul";
        let replacement = if in_f16 {
            let half = r.add_initializer(f16_tensor(&format!("{weight}_f16"), &dims, &values));
            let after = data_bytes(r.initializer(&half).expect("just added"));
            layers.push(choice("fp16 compute", "MatMul in f16 (--fp16-compute matmul)".into(), after));
            f16_matmul(&mut r, node, &half)
        } else {
            let (mut nodes, widened, after) = fold::f16_as_f32(&mut r, &weight, &dims, &values, fold::FOLD_ELEMENTS);
            layers.push(choice("fp16 storage", "f16 weight, cast to f32 at load".into(), after));
            let mut node = node;
            node.input[1] = widened;
            nodes.push(node);
            nodes
        };
        i = r.replace(i, replacement);
    }
    let mut out = model.clone();
    out.proto.graph = Some(r.finish());
    afr_runtime::weights_sha256::refresh(&mut out.proto);
    Ok((out, layers))
}

/// The weight a node reads: a MatMul's right-hand side, a Conv's kernel or
/// a Gather's table, when it is an f32 initializer.
fn weight_input(r: &Rewriter, node: &NodeProto) -> Option<String> {
    let slot = match node.op_type.as_str() {
        "MatMul" | "Conv" => 1,
        "Gather" => 0,
        _ => return None,
    };
    let name = node.input.get(slot)?;
    let t = r.initializer(name)?;
    (t.data_type == DataType::Float as i32).then(|| name.clone())
}

/// The nodes after each stage's projection: `stageN/...` other than
/// `stageN/proj/...` and `stageN/ln_post/...`, and the mean over stages.
fn is_head(name: &str) -> bool {
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    let stage = first.strip_prefix("stage").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (stage && !matches!(second, "proj" | "ln_post")) || first == "mean" || first == "text"
}

fn to(t: DataType) -> AttrValue {
    AttrValue::Int(t as i64)
}

/// `Cast(a -> f16) -> MatMul(., half) -> Cast(-> f32)`, the last one writing
/// the MatMul's original output.
fn f16_matmul(r: &mut Rewriter, mut node: NodeProto, half: &str) -> Vec<NodeProto> {
    let output = node.output[0].clone();
    let input =
        r.new_node(&format!("{}/to_f16", node.name), "Cast", &[&node.input[0]], &[("to", to(DataType::Float16))]);
    let product = r.fresh(&format!("{output}/f16"));
    let mut back = r.new_node(&format!("{}/to_f32", node.name), "Cast", &[&product], &[("to", to(DataType::Float))]);
    back.output = vec![output];
    node.input = vec![input.output[0].clone(), half.to_string()];
    node.output = vec![product];
    vec![input, node, back]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{ElemType, GraphBuilder};
    use crate::tensor::f32_tensor;

    /// `y = x @ w` in the backbone, then `stage1/adapter` (head) and a text
    /// table gathered by `category`.
    fn small_model(w: &[f32]) -> Model {
        let mut g = GraphBuilder::new("test");
        let x = g.input("image", ElemType::F32, &[1, 2]).unwrap();
        let c = g.input("category", ElemType::I64, &[1]).unwrap();
        let w = g.scoped("vision/fc", |g| g.initializer_f32("weight_t", &[2, 2], w)).unwrap();
        let y = g.scoped("vision/fc", |g| g.node("MatMul", &[&x, &w], &[]));
        let a = g.scoped("stage1/adapter", |g| g.initializer_f32("weight_t", &[2, 2], &[1.0, 0.0, 0.0, 1.0])).unwrap();
        let z = g.scoped("stage1/adapter", |g| g.node("MatMul", &[&y, &a], &[]));
        let table = g.scoped("text", |g| g.initializer_f32("table", &[1, 2], &[0.125, 0.3])).unwrap();
        let row = g.scoped("text", |g| g.node("Gather", &[&table, &c], &[]));
        let s = g.node("Add", &[&z, &row], &[]);
        g.output(&s, "anomaly_map", ElemType::F32, &[1, 2]).unwrap();
        g.metadata("afr.precision", "fp32");
        g.finish()
    }

    fn run(m: &Model, x: [f32; 2]) -> Vec<f32> {
        use tract_onnx::prelude::*;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&m.proto)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x = tract_ndarray::arr2(&[x]).into_tensor();
        let c = tract_ndarray::arr1(&[0i64]).into_tensor();
        let out = plan.run(tvec![x.into(), c.into()]).unwrap();
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    fn choice<'a>(layers: &'a [LayerChoice], prefix: &str) -> &'a LayerChoice {
        layers.iter().find(|l| l.node.starts_with(prefix)).unwrap_or_else(|| panic!("no layer {prefix}: {layers:?}"))
    }

    #[test]
    fn backbone_weights_become_f16_and_head_and_tables_stay_f32() {
        let m = small_model(&[0.1, 2.0, -3.0, 0.5]);
        for compute in [Fp16Compute::Storage, Fp16Compute::Matmul] {
            let (q, layers) = convert_with(&m, &KeepFp32::default(), compute).unwrap();
            let g = q.proto.graph.as_ref().unwrap();
            let types: Vec<(String, i32)> = g.initializer.iter().map(|t| (t.name.clone(), t.data_type)).collect();
            assert!(types.contains(&("vision/fc/weight_t_f16".into(), DataType::Float16 as i32)), "{types:?}");
            assert!(!types.iter().any(|(n, _)| n == "vision/fc/weight_t"), "the f32 original is dropped: {types:?}");
            let table = g.initializer.iter().find(|t| t.name == "text/table").unwrap();
            assert_eq!(
                table,
                m.proto.graph.as_ref().unwrap().initializer.iter().find(|t| t.name == "text/table").unwrap()
            );
            assert_eq!(choice(&layers, "vision/fc").weight_bytes_after, 8);
            assert_eq!(choice(&layers, "stage1/adapter").choice, "fp32 (kept)");
            assert_eq!(choice(&layers, "text/").choice, "fp32 (kept)");
            let expected = if compute == Fp16Compute::Matmul { "fp16 compute" } else { "fp16 storage" };
            assert_eq!(choice(&layers, "vision/fc").choice, expected);
            // x @ w with w rounded to f16: 0.1 -> 0.099975586.
            let y = run(&q, [1.0, 1.0]);
            let want = [0.099975586 - 3.0 + 0.125, 2.0 + 0.5 + 0.3];
            assert!((y[0] - want[0]).abs() < 1e-3 && (y[1] - want[1]).abs() < 1e-3, "{compute}: {y:?}");
            assert_ne!(y, run(&m, [1.0, 1.0]), "the weights were rounded");
        }
    }

    #[test]
    fn out_of_range_weights_and_kept_patterns_stay_f32() {
        let m = small_model(&[1.0e5, 0.0, 0.0, 1.0]);
        let (q, layers) = convert(&m, &KeepFp32::default()).unwrap();
        let fc = choice(&layers, "vision/fc");
        assert_eq!(fc.choice, "fp32 (kept)");
        assert!(fc.reason.contains("65504"), "{}", fc.reason);
        assert_eq!(run(&q, [1.0, 0.0])[0], 1.0e5 + 0.125);
        let (_, layers) = convert(&small_model(&[f32::NAN, 0.0, 0.0, 1.0]), &KeepFp32::default()).unwrap();
        assert_eq!(choice(&layers, "vision/fc").reason, "non-finite values");
        let m = small_model(&[0.1, 2.0, -3.0, 0.5]);
        let (q, layers) = convert(&m, &KeepFp32::new(["vision/*"])).unwrap();
        assert!(choice(&layers, "vision/fc").reason.contains("vision/*"));
        assert_eq!(q, m, "nothing converted, nothing changed");
    }

    #[test]
    fn shared_weights_stay_f32() {
        let mut m = small_model(&[0.1, 2.0, -3.0, 0.5]);
        let g = m.proto.graph.as_mut().unwrap();
        g.initializer.push(f32_tensor("extra", &[2], &[1.0, 1.0]));
        let reader = NodeProto {
            name: "vision/other/MatMul".into(),
            op_type: "MatMul".into(),
            input: vec!["extra".into(), g.node[0].input[1].clone()],
            output: vec!["unused".into()],
            ..Default::default()
        };
        g.node.push(reader);
        let (_, layers) = convert(&m, &KeepFp32::default()).unwrap();
        assert!(choice(&layers, "vision/fc").reason.contains("shared by 2"), "{layers:?}");
    }

    /// A backbone MatMul `[1, k] @ [k, n]` with weights `w(i)`.
    fn big_model(k: usize, n: usize) -> Model {
        let mut g = GraphBuilder::new("test");
        let x = g.input("image", ElemType::F32, &[1, k]).unwrap();
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
        let w = g.scoped("vision/fc", |g| g.initializer_f32("weight_t", &[k, n], &w)).unwrap();
        let y = g.scoped("vision/fc", |g| g.node("MatMul", &[&x, &w], &[]));
        g.output(&y, "anomaly_map", ElemType::F32, &[1, n]).unwrap();
        g.finish()
    }

    fn optimized_ops(m: &Model) -> Vec<String> {
        use tract_onnx::prelude::{Framework, InferenceModelExt};
        let model = tract_onnx::onnx().model_for_proto_model(&m.proto).unwrap().into_optimized().unwrap();
        model.nodes().iter().map(|n| n.op.name().to_string()).collect()
    }

    #[test]
    fn large_weights_are_cast_in_blocks_that_tract_folds() {
        // 1100 x 1024 f32 = 4.3 MiB: over tract's folding budget as one Cast.
        let m = big_model(1100, 1024);
        let (q, layers) = convert(&m, &KeepFp32::default()).unwrap();
        let g = q.proto.graph.as_ref().unwrap();
        let blocks: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(blocks, ["vision/fc/weight_t_f16/0", "vision/fc/weight_t_f16/1"]);
        assert_eq!(layers[0].weight_bytes_after, 1100 * 1024 * 2);
        assert!(g.node.iter().any(|n| n.op_type == "Concat"));
        let ops = optimized_ops(&q);
        assert!(!ops.iter().any(|o| o.contains("Cast") || o.contains("Concat")), "not folded: {ops:?}");
        // The same weight as one Cast stays a Cast in tract: why blocks exist.
        let mut r = Rewriter::new(m.proto.graph.clone().unwrap());
        let w = r.nodes()[0].input[1].clone();
        let values = f32_values(r.initializer(&w).unwrap()).unwrap();
        let (mut nodes, widened, _) = fold::f16_as_f32(&mut r, &w, &[1100, 1024], &values, usize::MAX);
        assert_eq!(nodes.len(), 1);
        let mut matmul = r.nodes()[0].clone();
        matmul.input[1] = widened;
        nodes.push(matmul);
        r.replace(0, nodes);
        let mut one = m.clone();
        one.proto.graph = Some(r.finish());
        assert!(optimized_ops(&one).iter().any(|o| o.contains("Cast")), "tract now folds large casts: drop the blocks");
    }

    #[test]
    fn blocks_rebuild_the_weight_in_order() {
        let m = big_model(7, 3);
        let mut r = crate::graph::Rewriter::new(m.proto.graph.clone().unwrap());
        let w = r.nodes()[0].input[1].clone();
        let values = f32_values(r.initializer(&w).unwrap()).unwrap();
        // 2 rows of 3 f32 per block: 4 blocks (2, 2, 2, 1 rows) and a Concat.
        let (nodes, widened, bytes) = fold::f16_as_f32(&mut r, &w, &[7, 3], &values, 6);
        assert_eq!(nodes.len(), 5);
        assert_eq!(bytes, 7 * 3 * 2);
        let last = r.initializer(&format!("{w}_f16/3")).unwrap();
        assert_eq!(last.dims, [1, 3]);
        let mut q = m.clone();
        let mut matmul = r.nodes()[0].clone();
        assert_eq!(widened, nodes.last().unwrap().output[0]);
        matmul.input[1] = widened;
        let mut all = nodes;
        all.push(matmul);
        r.replace(0, all);
        q.proto.graph = Some(r.finish());
        use tract_onnx::prelude::*;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&q.proto)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x = tract_ndarray::arr2(&[[1f32, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]]).into_tensor();
        let out = plan.run(tvec![x.into()]).unwrap();
        let y = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        let want: Vec<f32> = (0..3).map(|j| values[j] + 2.0 * values[18 + j]).collect();
        assert_eq!(y, want, "rows 0 and 6 (values exact in f16)");
    }

    #[test]
    fn head_names() {
        assert!(is_head("stage3/cmfr/conv1/MatMul"));
        assert!(is_head("stage12/scoring/MatMul"));
        assert!(is_head("text/Gather_1"));
        assert!(!is_head("stage2/proj/MatMul"));
        assert!(!is_head("vision/block3/fc/MatMul"));
        assert!(!is_head("stagex/adapter/MatMul"));
        assert_eq!("matmul".parse::<Fp16Compute>(), Ok(Fp16Compute::Matmul));
        assert!("all".parse::<Fp16Compute>().is_err());
    }
}
