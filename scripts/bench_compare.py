#!/usr/bin/env python3
"""tract (``afr bench --model-only``) against ONNX Runtime on the same ONNX
files, same thread count, measured side by side in one run: rounds go
engine after engine and model after model, so machine noise hits all alike.

    pip install -r scripts/requirements-onnx.txt
    cargo build --release -p afr-runtime --bin afr
    python scripts/bench_compare.py --afr target/release/afr \
        model.onnx model.fp16.onnx model.int8.onnx

Prints a Markdown table (median ms per frame, and ratios to the first model
and tract / ORT); ``--json FILE`` also writes the figures.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def afr_bench(afr, models, threads, frames, warmup):
    cmd = [afr, "bench", "--model-only", "--json", "--threads", str(threads),
           "--frames", str(frames), "--rounds", "1", "--warmup", str(warmup)]
    for m in models:
        cmd += ["--model", m]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {r["model"]: r for r in json.loads(out.stdout)["models"]}


def ort_session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="AFR ONNX files (ratios are to the first)")
    ap.add_argument("--afr", default="target/release/afr", help="the afr binary (build it in release)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=5, help="timed frames per model, engine and round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()

    sessions, inputs = {}, {}
    for m in a.models:
        meta = {p.key: p.value for p in onnx.load(m, load_external_data=False).metadata_props}
        s = int(meta["afr.input_size"])
        sessions[m] = ort_session(m, a.threads)
        rng = np.random.default_rng(0)
        inputs[m] = {"image": rng.standard_normal((1, 3, s, s), dtype=np.float32),
                     "category": np.zeros((1,), dtype=np.int64)}
        for _ in range(a.warmup):
            sessions[m].run(None, inputs[m])

    tract = {m: [] for m in a.models}
    onnxrt = {m: [] for m in a.models}
    info = {}
    for _ in range(a.rounds):
        for m, r in afr_bench(a.afr, a.models, a.threads, a.frames, a.warmup).items():
            info[m] = r
            # afr reports the median of the round's frames; weight it per frame.
            tract[m] += [r["median_ms"]] * a.frames
        for m in a.models:
            for _ in range(a.frames):
                t = time.perf_counter()
                sessions[m].run(None, inputs[m])
                onnxrt[m].append((time.perf_counter() - t) * 1e3)

    first = a.models[0]
    rows = []
    for m in a.models:
        t, o = statistics.median(tract[m]), statistics.median(onnxrt[m])
        rows.append({
            "model": m, "precision": info[m]["precision"], "size_mb": info[m]["file_bytes"] / 1e6,
            "tract_ms": t, "ort_ms": o,
            "tract_vs_first": t / statistics.median(tract[first]),
            "ort_vs_first": o / statistics.median(onnxrt[first]),
            "tract_over_ort": t / o,
        })
    print(f"onnxruntime {ort.__version__}, threads={a.threads} rounds={a.rounds} frames={a.frames}\n")
    print("| model | precision | size MB | tract ms | x first | ORT ms | x first | tract / ORT |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['precision']} | {r['size_mb']:.1f} | {r['tract_ms']:.1f} | "
              f"{r['tract_vs_first']:.2f} | {r['ort_ms']:.1f} | {r['ort_vs_first']:.2f} | {r['tract_over_ort']:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "onnxruntime": ort.__version__, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
