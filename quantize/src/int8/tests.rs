//! The int8 rewrite on small graphs run in tract against their fp32 source.

use std::collections::HashMap;

use tract_onnx::prelude::*;

use super::*;
use crate::calibrate::Calibration;
use crate::onnx::{AttrValue, ElemType, GraphBuilder};

/// Deterministic values in [-amp, amp) with a per-index pattern.
fn values(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    (0..n).map(|i| ((((i as u64 + seed) * 2_654_435_761) % 10_007) as f32 / 10_007.0 - 0.5) * 2.0 * amp).collect()
}

fn run(model: &Model, inputs: &[(&[usize], Vec<f32>)]) -> Vec<Vec<f32>> {
    let mut m = tract_onnx::onnx().model_for_proto_model(&model.proto).unwrap();
    for (i, (shape, _)) in inputs.iter().enumerate() {
        m = m.with_input_fact(i, f32::fact(*shape).into()).unwrap();
    }
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    let tensors = inputs.iter().map(|(s, v)| Tensor::from_shape(s, v).unwrap().into()).collect();
    plan.run(tensors)
        .unwrap()
        .iter()
        .map(|t| t.to_plain_array_view::<f32>().unwrap().iter().copied().collect())
        .collect()
}

fn ops(model: &Model) -> Vec<String> {
    model.proto.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.clone()).collect()
}

/// `y = x W + b` with `x [1, m, k]` as one ViT block linear.
fn one_linear(m: usize, k: usize, n: usize) -> (Model, Vec<f32>, Vec<f32>) {
    let mut g = GraphBuilder::new("t");
    let x = g.input("x", ElemType::F32, &[1, m, k]).unwrap();
    let w = values(k * n, 3, 0.2);
    // One output column is all zeros, one is 100x larger than the others.
    let w: Vec<f32> = w
        .iter()
        .enumerate()
        .map(|(i, v)| match i % n {
            0 => 0.0,
            1 => v * 100.0,
            _ => *v,
        })
        .collect();
    let y = g.scoped("vision/block1/fc", |g| {
        let wn = g.initializer_f32("weight_t", &[k, n], &w).unwrap();
        let b = g.initializer_f32("bias", &[n], &values(n, 7, 1.0)).unwrap();
        let mm = g.node("MatMul", &[&x, &wn], &[]);
        g.node("Add", &[&mm, &b], &[])
    });
    g.output(&y, "y", ElemType::F32, &[1, m, n]).unwrap();
    g.metadata("afr.precision", "fp32");
    let xs: Vec<f32> = values(m * k, 11, 3.0).iter().map(|v| v.max(-1.0)).collect();
    (g.finish(), w, xs)
}

/// The worst error of `x W` with x on a u8 grid of step `sx` and W on int8
/// grids of step `sw[j]`: |dx| <= sx/2, |dW| <= sw/2 per element.
fn bound(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, sx: f32, sw: &[f32]) -> Vec<f32> {
    let mut b = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            b[i * n + j] = (0..k)
                .map(|p| x[i * k + p].abs() * sw[j] / 2.0 + w[p * n + j].abs() * sx / 2.0 + sx * sw[j] / 4.0)
                .sum::<f32>()
                * 1.001
                + 1e-5;
        }
    }
    b
}

fn check_within(got: &[f32], want: &[f32], bound: &[f32]) -> f32 {
    let mut worst = 0f32;
    for (i, ((g, w), b)) in got.iter().zip(want).zip(bound).enumerate() {
        assert!((g - w).abs() <= *b, "element {i}: {g} vs {w}, bound {b}");
        worst = worst.max((g - w).abs() / b);
    }
    worst
}

#[test]
fn dynamic_linear_runs_in_tract_within_the_int8_bound() {
    let (m, k, n) = (10, 48, 24);
    let (model, w, x) = one_linear(m, k, n);
    let (q, choices) = convert_with(&model, None, &KeepFp32::default(), &Int8Options::default()).unwrap();
    assert_eq!(choices[0].choice, "int8 dynamic");
    assert_eq!(choices[0].weight_bytes_before, 4 * k * n);
    assert_eq!(choices[0].weight_bytes_after, k * n + 4 * n);
    let o = ops(&q);
    for op in ["ReduceMin", "ReduceMax", "Clip", "MatMulInteger", "Cast", "Mul", "Add"] {
        assert!(o.contains(&op.to_string()), "{op} in {o:?}");
    }
    assert!(!o.contains(&"MatMul".to_string()));
    let want = &run(&model, &[(&[1, m, k], x.clone())])[0];
    let got = &run(&q, &[(&[1, m, k], x.clone())])[0];
    let (lo, hi) = x.iter().fold((0f32, 0f32), |(a, b), v| (a.min(*v), b.max(*v)));
    let sw = weights::per_column(&w, k, n).scales;
    let worst = check_within(got, want, &bound(&x, &w, m, k, n, (hi - lo) / 255.0, &sw));
    // Not trivially inside: the error is a real fraction of the bound.
    assert!(worst > 0.01, "{worst}");
    // The zero column is exactly the bias.
    for i in 0..m {
        assert_eq!(got[i * n], want[i * n]);
    }
}

#[test]
fn calibrated_linear_uses_the_fixed_range() {
    let (m, k, n) = (10, 48, 24);
    let (model, w, x) = one_linear(m, k, n);
    let name = "vision/block1/fc/MatMul";
    let input = &model.proto.graph.as_ref().unwrap().node[0].input[0];
    // Calibrated on a wider range than this input's: a coarser step.
    let (lo, hi) = (-2.0f32, 4.0f32);
    let calib = Calibration::from_values([(input.as_str(), vec![&[lo, hi][..], &x[..]])]);
    let options = Int8Options { activations: ActivationMode::Calibrated, range: RangeMethod::MinMax };
    let (q, choices) = convert_with(&model, Some(&calib), &KeepFp32::default(), &options).unwrap();
    assert_eq!((choices[0].node.as_str(), choices[0].choice.as_str()), (name, "int8 calibrated"));
    let o = ops(&q);
    // A fixed scale: no range scan per frame.
    assert!(o.contains(&"MatMulInteger".to_string()) && !o.contains(&"ReduceMax".to_string()), "{o:?}");
    let want = &run(&model, &[(&[1, m, k], x.clone())])[0];
    let got = &run(&q, &[(&[1, m, k], x.clone())])[0];
    let sw = weights::per_column(&w, k, n).scales;
    check_within(got, want, &bound(&x, &w, m, k, n, (hi - lo) / 255.0, &sw));
    // Auto quantizes per frame even with a calibration (see the rules).
    let (_, auto) = convert(&model, Some(&calib), &KeepFp32::default()).unwrap();
    assert_eq!(auto[0].choice, "int8 dynamic", "{}", auto[0].reason);
    assert_eq!(auto[0].reason, rules::AUTO_REASON);
    // Calibrated without a calibration is an error naming the problem.
    let e = convert_with(&model, None, &KeepFp32::default(), &options).unwrap_err().to_string();
    assert!(e.contains("calibration"), "{e}");
}

/// Input shapes and values.
type Feeds = Vec<(Vec<usize>, Vec<f32>)>;

/// A graph with one layer of each role, a text table and a keep pattern.
fn mixed() -> (Model, Feeds) {
    let mut g = GraphBuilder::new("t");
    let x = g.input("x", ElemType::F32, &[1, 6, 64]).unwrap();
    let img = g.input("img", ElemType::F32, &[1, 3, 8, 8]).unwrap();
    let block = |g: &mut GraphBuilder, scope: &str, input: &str, k: usize, n: usize, seed: u64| {
        g.scoped(scope, |g| {
            let w = g.initializer_f32("weight_t", &[k, n], &values(k * n, seed, 0.1)).unwrap();
            g.node("MatMul", &[input, &w], &[])
        })
    };
    let h = block(&mut g, "vision/block1/fc", &x, 64, 128, 1);
    let h = g.node("Relu", &[&h], &[]);
    let h = block(&mut g, "vision/block1/proj", &h, 128, 64, 2);
    let h = block(&mut g, "vision/block2/fc", &h, 64, 64, 3);
    let h = block(&mut g, "stage1/proj", &h, 64, 96, 4);
    let table = g.initializer_f32("text/stateless_table", &[96, 96], &values(96 * 96, 5, 0.3)).unwrap();
    let y = g.node("MatMul", &[&h, &table], &[]);
    g.output(&y, "y", ElemType::F32, &[1, 6, 96]).unwrap();
    let c = g.scoped("resnet/conv", |g| {
        let w = g.initializer_f32("weight", &[8, 3, 3, 3], &values(8 * 27, 6, 0.5)).unwrap();
        g.node("Conv", &[&img, &w], &[("pads", AttrValue::Ints(vec![1, 1, 1, 1]))])
    });
    g.output(&c, "c", ElemType::F32, &[1, 8, 8, 8]).unwrap();
    let inputs = vec![(vec![1, 6, 64], values(6 * 64, 9, 2.0)), (vec![1, 3, 8, 8], values(3 * 64, 4, 2.0))];
    (g.finish(), inputs)
}

#[test]
fn each_role_gets_its_plan_and_the_graph_stays_close_to_fp32() {
    let (model, inputs) = mixed();
    let keep = KeepFp32::new(["vision/block2/*"]);
    let (q, choices) = convert(&model, None, &keep).unwrap();
    let by_node: HashMap<&str, &LayerChoice> = choices.iter().map(|c| (c.node.as_str(), c)).collect();
    assert_eq!(by_node["vision/block1/fc/MatMul"].choice, "int8 dynamic");
    assert_eq!(by_node["vision/block1/proj/MatMul"].choice, "int8 dynamic");
    assert_eq!(by_node["vision/block2/fc/MatMul"].choice, "fp32 (kept)");
    assert_eq!(by_node["vision/block2/fc/MatMul"].weight_bytes_after, 4 * 64 * 64);
    assert_eq!(by_node["stage1/proj/MatMul"].choice, "fp32 (f16 weights)");
    assert_eq!(by_node["stage1/proj/MatMul"].weight_bytes_after, 2 * 64 * 96);
    assert_eq!(by_node["resnet/conv/Conv"].choice, "int8 weights only");
    assert_eq!(by_node["resnet/conv/Conv"].weight_bytes_after, 8 * 27 + 4 * 8);
    // The text table is not a weighted layer's weight to quantize... but it
    // is a MatMul weight: it must stay f32 and bit-identical.
    let table = |m: &Model| {
        m.proto.graph.as_ref().unwrap().initializer.iter().find(|t| t.name == "text/stateless_table").cloned()
    };
    assert_eq!(table(&q), table(&model));
    assert_eq!(q.proto.metadata_props, model.proto.metadata_props);

    let feeds: Vec<(&[usize], Vec<f32>)> = inputs.iter().map(|(s, v)| (&s[..], v.clone())).collect();
    let want = run(&model, &feeds);
    let got = run(&q, &feeds);
    for (name, (w, g)) in ["y", "c"].iter().zip(want.iter().zip(&got)) {
        let range = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let drift = w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Two int8 layers in a row: a few steps of 1/127 relative each.
        assert!(drift <= 0.03 * range, "{name}: drift {drift}, range {range}");
        assert!(drift > 0.0, "{name}: quantization must change something");
    }
}

/// A weight over tract's 4 MiB folding budget as f32, stored int8 in slices:
/// it must be dequantized once at load (no conversion left in the plan) and
/// give the same product as the dequantized weight.
#[test]
fn a_large_weights_only_layer_is_folded_at_load() {
    let (k, n) = (1100, 1000);
    let mut g = GraphBuilder::new("t");
    let x = g.input("x", ElemType::F32, &[1, k]).unwrap();
    let w = values(k * n, 5, 0.3);
    let y = g.scoped("sp/visual", |g| {
        let wn = g.initializer_f32("weight_t", &[k, n], &w).unwrap();
        g.node("MatMul", &[&x, &wn], &[])
    });
    g.output(&y, "y", ElemType::F32, &[1, n]).unwrap();
    let model = g.finish();
    let (q, choices) = convert(&model, None, &KeepFp32::default()).unwrap();
    assert_eq!(choices[0].choice, "int8 weights only");
    assert_eq!(choices[0].weight_bytes_after, k * n + 4 * n);
    let o = ops(&q);
    assert_eq!(o.iter().filter(|op| *op == "DequantizeLinear").count(), 2, "{o:?}");
    assert!(o.contains(&"Concat".to_string()));
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&q.proto)
        .unwrap()
        .with_input_fact(0, f32::fact([1, k]).into())
        .unwrap()
        .into_optimized()
        .unwrap();
    let left: Vec<String> = plan.nodes().iter().map(|n| n.op().name().to_string()).collect();
    assert!(left.iter().all(|op| ["Source", "Const", "OptMatMulPack", "OptMatMul"].contains(&op.as_str())), "{left:?}");
    let xs = values(k, 8, 1.0);
    let want = &run(&model, &[(&[1, k], xs.clone())])[0];
    let got = &run(&q, &[(&[1, k], xs.clone())])[0];
    let sw = weights::per_column(&w, k, n).scales;
    let l1: f32 = xs.iter().map(|v| v.abs()).sum();
    for j in 0..n {
        let bound = l1 * sw[j] / 2.0 * 1.001 + 1e-5;
        assert!((got[j] - want[j]).abs() <= bound, "{j}: {} vs {}, bound {bound}", got[j], want[j]);
    }
}
