#!/usr/bin/env python3
"""Independent check of an ONNX model written by ``afr-toolchain export``.

1. ``onnx.checker.check_model(model, full_check=True)`` (with shape inference).
2. The ``afr.*`` metadata of DESIGN.md section 3 is present.
3. ONNX Runtime (CPU) replays the reference file written by
   ``afr-toolchain export --reference-out`` (Candle's outputs on seeded
   inputs) and must reproduce ``image_score`` and ``anomaly_map`` to within
   the tolerance (1e-4 max abs, DESIGN.md section 4).

Exits non-zero on any failure.

    pip install -r scripts/requirements-onnx.txt
    python scripts/check_onnx.py model.onnx reference.safetensors
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors import safe_open
from safetensors.numpy import load_file

REQUIRED_METADATA = [
    "afr.format_version",
    "afr.preset",
    "afr.input_size",
    "afr.mean",
    "afr.std",
    "afr.resize",
    "afr.categories",
    "afr.precision",
    "afr.smoothing_sigma",
    "afr.source_sha256",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the exported .onnx file")
    ap.add_argument("reference", help="the --reference-out safetensors file")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = ap.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}.get("", None)
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        print(f"{args.model}: missing metadata {missing}", file=sys.stderr)
        return 1

    ref = load_file(args.reference)
    with safe_open(args.reference, framework="numpy") as f:
        ref_meta = f.metadata() or {}

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    d_score, d_map = 0.0, 0.0
    for i in range(ref["image"].shape[0]):
        feeds = {
            "image": ref["image"][i : i + 1].astype(np.float32),
            "category": ref["category"][i : i + 1].astype(np.int64),
        }
        # Only the inputs the graph declares (ONNX Runtime rejects others).
        names = {x.name for x in sess.get_inputs()}
        score, amap = sess.run(["image_score", "anomaly_map"], {k: v for k, v in feeds.items() if k in names})
        d_score = max(d_score, float(np.abs(score - ref["image_score"][i : i + 1]).max()))
        d_map = max(d_map, float(np.abs(amap - ref["anomaly_map"][i : i + 1]).max()))

    ok = d_score <= args.tolerance and d_map <= args.tolerance
    print(json.dumps({
        "model": args.model,
        "checker": "ok",
        "ir_version": model.ir_version,
        "opset": opset,
        "nodes": len(model.graph.node),
        "onnxruntime": ort.__version__,
        "reference_device": ref_meta.get("afr.device"),
        "samples": int(ref["image"].shape[0]),
        "max_abs_diff": {"image_score": d_score, "anomaly_map": d_map},
        "tolerance": args.tolerance,
        "ok": ok,
    }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
