#!/usr/bin/env python3
"""Independent check of an ONNX model written by ``afr-toolchain export``.

1. ``onnx.checker.check_model(model, full_check=True)`` (with shape inference).
2. The ``afr.*`` metadata of DESIGN.md section 3 is present, and
   ``afr.weights_sha256``, where the file has it, equals the hash recomputed
   here from the initializers (an implementation independent of the
   runtime's ``weights_sha256.rs``, following the layout stated there).
3. ONNX Runtime (CPU) replays the reference file written by
   ``afr-toolchain export --reference-out`` (Candle's outputs on seeded
   inputs) and must reproduce ``image_score`` and ``anomaly_map`` to within
   the tolerance (1e-4 max abs, DESIGN.md section 4).

A quantized model (``afr-quantize``) is checked against its fp32 source
instead: the checker and the metadata on the quantized file, then both
models run in ONNX Runtime on the same seeded inputs (every category row)
and the largest differences are reported against ``--tolerance`` (DESIGN.md
section 4: 5e-3 for fp16, 3e-2 for int8). The inputs and outputs must keep
the fp32 model's names, types and shapes, every metadata entry but
``afr.precision`` and ``afr.weights_sha256`` must be carried over unchanged,
and the latter must be present where the source has it and match the
quantized file's own weights.

Exits non-zero on any failure.

    pip install -r scripts/requirements-onnx.txt
    python scripts/check_onnx.py model.onnx reference.safetensors
    python scripts/check_onnx.py model.fp16.onnx --against model.onnx --tolerance 5e-3
"""

import argparse
import hashlib
import json
import struct
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
WEIGHTS_KEY = "afr.weights_sha256"


def weights_sha256(graph) -> str:
    """The hash of runtime/src/weights_sha256.rs: initializers sorted by name
    (bytes); per tensor, little-endian: name length (u64) and bytes, data
    type (i32), dim count (u64) and dims (i64), payload length (u64) and
    payload (raw_data, else float, int32, string, int64, double, uint64)."""
    h = hashlib.sha256()
    for t in sorted(graph.initializer, key=lambda t: t.name.encode()):
        name = t.name.encode()
        h.update(struct.pack("<Q", len(name)) + name)
        h.update(struct.pack("<iQ", t.data_type, len(t.dims)))
        h.update(struct.pack(f"<{len(t.dims)}q", *t.dims))
        if t.raw_data:
            payload = t.raw_data
        else:
            payload = b"".join([
                struct.pack(f"<{len(t.float_data)}f", *t.float_data),
                struct.pack(f"<{len(t.int32_data)}i", *t.int32_data),
                b"".join(struct.pack("<Q", len(x)) + x for x in t.string_data),
                struct.pack(f"<{len(t.int64_data)}q", *t.int64_data),
                struct.pack(f"<{len(t.double_data)}d", *t.double_data),
                struct.pack(f"<{len(t.uint64_data)}Q", *t.uint64_data),
            ])
        h.update(struct.pack("<Q", len(payload)) + payload)
    return h.hexdigest()


def weights_hash_status(model, meta: dict) -> str:
    """"ok", "absent" or a problem with ``afr.weights_sha256``."""
    stated = meta.get(WEIGHTS_KEY)
    if stated is None:
        return "absent"
    actual = weights_sha256(model.graph)
    return "ok" if actual == stated else f"{WEIGHTS_KEY} is {stated} but the weights hash to {actual}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the exported (or quantized) .onnx file")
    ap.add_argument("reference", nargs="?", help="the --reference-out safetensors file")
    ap.add_argument("--against", metavar="FP32.onnx", help="compare a quantized model with its fp32 source")
    ap.add_argument("--samples", type=int, default=4, help="seeded random images per category row (--against)")
    ap.add_argument("--tolerance", type=float, default=None, help="max abs difference (default 1e-4, or 5e-3 with --against)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = ap.parse_args()
    if (args.reference is None) == (args.against is None):
        ap.error("give either a reference safetensors file or --against FP32.onnx")
    if args.tolerance is None:
        args.tolerance = 5e-3 if args.against else 1e-4
    if args.against:
        return check_quantized(args)

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}.get("", None)
    meta = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        print(f"{args.model}: missing metadata {missing}", file=sys.stderr)
        return 1
    weights = weights_hash_status(model, meta)
    if weights not in ("ok", "absent"):
        print(f"{args.model}: {weights}", file=sys.stderr)
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
        "weights_sha256": weights,
        "max_abs_diff": {"image_score": d_score, "anomaly_map": d_map},
        "tolerance": args.tolerance,
        "ok": ok,
    }, indent=2))
    return 0 if ok else 1


def session(path: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def signature(values) -> list:
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]


def check_quantized(args) -> int:
    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    source = onnx.load(args.against, load_external_data=False)
    problems = []
    meta = {p.key: p.value for p in model.metadata_props}
    source_meta = {p.key: p.value for p in source.metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        problems.append(f"missing metadata {missing}")
    changed = sorted(
        k for k in source_meta if k not in ("afr.precision", WEIGHTS_KEY) and meta.get(k) != source_meta[k]
    )
    if changed:
        problems.append(f"metadata not carried over: {changed}")
    weights = weights_hash_status(model, meta)
    if weights == "absent" and WEIGHTS_KEY in source_meta:
        problems.append(f"{WEIGHTS_KEY} of the source was dropped")
    elif weights not in ("ok", "absent"):
        problems.append(weights)
    if meta.get("afr.precision") in (None, "fp32"):
        problems.append(f"afr.precision is {meta.get('afr.precision')!r}")
    for what, a, b in [("inputs", model.graph.input, source.graph.input), ("outputs", model.graph.output, source.graph.output)]:
        if signature(a) != signature(b):
            problems.append(f"graph {what} differ from the fp32 model: {signature(a)} vs {signature(b)}")
    size = int(meta.get("afr.input_size", "0"))
    categories = meta.get("afr.categories", "").split(",")
    del source

    quantized, reference = session(args.model, args.threads), session(args.against, args.threads)
    names = {x.name for x in quantized.get_inputs()}
    rng = np.random.default_rng(0)
    d_score, d_map, runs = 0.0, 0.0, 0
    for _ in range(args.samples):
        image = rng.standard_normal((1, 3, size, size)).astype(np.float32)
        for row in range(len(categories)):
            feeds = {"image": image, "category": np.array([row], dtype=np.int64)}
            feeds = {k: v for k, v in feeds.items() if k in names}
            qs, qm = quantized.run(["image_score", "anomaly_map"], feeds)
            rs, rm = reference.run(["image_score", "anomaly_map"], feeds)
            if not (np.isfinite(qs).all() and np.isfinite(qm).all()):
                problems.append("non-finite outputs")
            d_score = max(d_score, float(np.abs(qs - rs).max()))
            d_map = max(d_map, float(np.abs(qm - rm).max()))
            runs += 1

    ok = not problems and d_score <= args.tolerance and d_map <= args.tolerance
    print(json.dumps({
        "model": args.model,
        "against": args.against,
        "checker": "ok",
        "ir_version": model.ir_version,
        "opset": {o.domain: o.version for o in model.opset_import}.get("", None),
        "precision": meta.get("afr.precision"),
        "nodes": len(model.graph.node),
        "onnxruntime": ort.__version__,
        "inputs": f"{args.samples} seeded N(0,1) images x {len(categories)} category rows",
        "runs": runs,
        "weights_sha256": weights,
        "max_abs_diff": {"image_score": d_score, "anomaly_map": d_map},
        "tolerance": args.tolerance,
        "problems": problems,
        "ok": ok,
    }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
