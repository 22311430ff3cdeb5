"""Tiny ONNX models that honour the runtime's file contract (DESIGN.md section 3),
for the afr-runtime tests until a real exported model exists, plus expected outputs
computed here with numpy.

Contract: inputs `image` f32 [1,3,32,32] and `category` i64 [1]; outputs
`image_score` f32 [1] and `anomaly_map` f32 [1,4,4]; every `afr.*` metadata key.
Graph: channel mean -> AveragePool 8x8 -> + bias[category] (Gather) -> Sigmoid is the
map; the score is its ReduceMax. model.onnx also keeps normal and abnormal prototypes
(`text/normal_prototype`, `text/abnormal_prototype`, [4 stages, 3]) as an export does,
for `afr info`; this stand-in graph does not read them.

Writes tests/fixtures/runtime/: model.onnx, not_ours.onnx (no afr metadata),
future_version.onnx (afr.format_version 999), nan.onnx (adds NaN to the map),
many_categories.onnx (200 categories), expected.json.

    pip install -r scripts/requirements-runtime-fixtures.txt
    python scripts/make_runtime_fixtures.py
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "runtime")
S, GRID = 32, 4
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SIGMA = 4.0 * S / 518.0
BIAS = np.array([-0.5, 0.25, 1.0], dtype=np.float32)  # a, b, object
# One row per stage; rows differ so that a reader cannot assume they are equal.
NORMAL = np.array([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], dtype=np.float32)
ABNORMAL = np.array([[0.0, 0.8, 0.6], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 4.0]], dtype=np.float32)


def build(bias, categories, metadata=True, version="1", post=None, prototypes=False):
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["pooled", "grid_shape"], ["grid"]),
        helper.make_node("Gather", ["bias", "category"], ["cat_bias"], axis=0),
        helper.make_node("Add", ["grid", "cat_bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["anomaly_map" if post is None else "sig"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["image_score"], axes=[1, 2], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.asarray(bias, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1, GRID, GRID], dtype=np.int64), "grid_shape"),
    ]
    if prototypes:
        inits.append(numpy_helper.from_array(NORMAL, "text/normal_prototype"))
        inits.append(numpy_helper.from_array(ABNORMAL, "text/abnormal_prototype"))
    if post is not None:
        # Added after the Sigmoid: tract's sigmoid maps NaN to a finite value.
        nodes.insert(-1, helper.make_node("Add", ["sig", "post"], ["anomaly_map"]))
        inits.append(numpy_helper.from_array(np.array([post], dtype=np.float32), "post"))
    graph = helper.make_graph(
        nodes,
        "afr_tiny",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, S, S]),
            helper.make_tensor_value_info("category", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("image_score", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, GRID, GRID]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_runtime_fixtures")
    model.ir_version = 8
    if metadata:
        meta = {
            "afr.format_version": version,
            "afr.preset": "tiny-test",
            "afr.input_size": str(S),
            "afr.mean": ",".join(repr(m) for m in MEAN),
            "afr.std": ",".join(repr(s) for s in STD),
            "afr.resize": "bicubic",
            "afr.categories": ",".join(categories),
            "afr.precision": "fp32",
            "afr.smoothing_sigma": repr(SIGMA),
            "afr.source_sha256": "0" * 64,
        }
        onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def bilinear(grid, out_h, out_w):
    """PyTorch's bilinear interpolate, align_corners=False, no antialiasing."""

    def taps(n_in, n_out):
        scale = n_in / n_out
        src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    r0, r1, fy = taps(grid.shape[0], out_h)
    c0, c1, fx = taps(grid.shape[1], out_w)
    top = grid[r0][:, c0] * (1 - fx) + grid[r0][:, c1] * fx
    bottom = grid[r1][:, c0] * (1 - fx) + grid[r1][:, c1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def reference(rgb, category):
    """The model's outputs for an S x S RGB8 image (preprocessing at the same size is the
    identity, so no resampling is involved)."""
    x = rgb.astype(np.float64) / 255.0
    x = (x - np.array(MEAN)) / np.array(STD)  # H, W, 3
    gray = x.mean(axis=2)
    pooled = gray.reshape(GRID, 8, GRID, 8).mean(axis=(1, 3))
    grid = 1.0 / (1.0 + np.exp(-(pooled + BIAS[category])))
    return grid, grid.max()


def main():
    os.makedirs(OUT, exist_ok=True)
    cats = ["a", "b", "object"]
    onnx.save(build(BIAS, cats, prototypes=True), os.path.join(OUT, "model.onnx"))
    onnx.save(build(BIAS, cats, metadata=False), os.path.join(OUT, "not_ours.onnx"))
    onnx.save(build(BIAS, cats, version="999"), os.path.join(OUT, "future_version.onnx"))
    onnx.save(build(BIAS, cats, post=np.nan), os.path.join(OUT, "nan.onnx"))
    many = [f"c{i}" for i in range(200)]
    onnx.save(build(np.zeros(200), many), os.path.join(OUT, "many_categories.onnx"))

    rng = np.random.default_rng(7)
    cases = []
    for category, kind in [(0, "random"), (1, "gradient"), (2, "random")]:
        if kind == "random":
            rgb = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
        else:
            yy, xx = np.mgrid[0:S, 0:S]
            rgb = np.stack([xx * 8, yy * 8, (xx + yy) * 4], axis=2).clip(0, 255).astype(np.uint8)
        grid, score = reference(rgb, category)
        cases.append(
            {
                "category": category,
                "rgb": rgb.reshape(-1).tolist(),
                "grid": grid.reshape(-1).tolist(),
                "score": float(score),
                # Bilinear only (smoothing off) to a non-square caller size.
                "upsampled_width": 12,
                "upsampled_height": 7,
                "upsampled": bilinear(grid, 7, 12).reshape(-1).tolist(),
            }
        )
    expected = {"input_size": S, "grid": GRID, "categories": cats, "smoothing_sigma": SIGMA, "parameters": 3 + 3 + NORMAL.size + ABNORMAL.size, "cases": cases}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
