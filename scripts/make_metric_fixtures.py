#!/usr/bin/env python3
"""Writes the metric fixtures tests/fixtures/metrics/{image,pixel}.json.

Expected values come from the libraries the Rust metrics must equal:
scikit-learn (roc_auc_score, average_precision_score, precision_recall_curve
for max-F1 as AnomalyCLIP / AdaCLIP take it) and anomalib's AUPRO
(anomalib.metrics.AUPRO, fpr_limit 0.3). Run from the repository root with the
packages of scripts/requirements-metrics.txt:

    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-metrics.txt
    .venv/bin/python scripts/make_metric_fixtures.py

Scores are stored as integers k meaning k * 2**-20: exact in f32 and f64, so
Rust and Python see bit-identical inputs, and far shorter in JSON than
round-trip decimals. Masks are stored as rows of '0'/'1'.
"""

import json
import platform
import sys
import types
import warnings
from pathlib import Path

import anomalib
import cv2
import numpy as np
import sklearn
import torch
import torchmetrics
from anomalib.metrics import AUPRO
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

SCALE_BITS = 20
SCALE = 2.0**-SCALE_BITS
FPR_LIMIT = 0.3
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"


def quantise(x, step=None):
    """Floats -> (ints, f32 values) with value = int * 2**-20 exactly."""
    x = np.asarray(x, dtype=np.float64)
    if step is not None:
        x = np.round(x / step) * step
    k = np.round(x / SCALE).astype(np.int64)
    assert np.all(np.abs(k) < 2**24), "value not exact in f32"
    v = (k * SCALE).astype(np.float32)
    assert np.array_equal(v.astype(np.float64) / SCALE, k.astype(np.float64))
    return k, v


def sklearn_metrics(labels, scores):
    """AUROC, AP, max-F1 or None (one class only: sklearn raises or warns)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0 or labels.min() == labels.max():
        if labels.size:
            # scikit-learn >= 1.6 warns and returns NaN here (older ones raise).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                assert np.isnan(roc_auc_score(labels, scores)), "sklearn defined AUROC on one class"
        return None, None, None
    auroc = roc_auc_score(labels, scores)
    ap = average_precision_score(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    max_f1 = np.max(f1[np.isfinite(f1)])
    return float(auroc), float(ap), float(max_f1)


def anomalib_aupro(maps, masks):
    metric = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=FPR_LIMIT)
    batch = types.SimpleNamespace(
        anomaly_map=torch.from_numpy(maps), gt_mask=torch.from_numpy(masks.astype(np.int64))
    )
    metric.update(batch)
    return float(metric.compute())


def cv2_labels(masks):
    """8-connected labels, ids unique across images, as anomalib's CPU path."""
    out, counts, offset = [], [], 0
    for m in masks:
        n, comp = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        comp = comp.astype(np.int64)
        comp[comp > 0] += offset
        offset += n - 1
        counts.append(int(n - 1))
        out.append(comp)
    return np.stack(out), counts


def aupro_f64(maps, masks):
    """anomalib 2.7.0's compute_pro + compute, re-done in float64: tells
    anomalib's float32 rounding apart from a real difference."""
    labels, counts = cv2_labels(masks)
    lab = labels.reshape(-1)
    s = maps.reshape(-1).astype(np.float64)
    background = lab == 0
    n_bg, n_regions = int(background.sum()), int(sum(counts))
    if n_bg == 0 or n_regions == 0:
        return None
    sizes = np.bincount(lab, minlength=n_regions + 1).astype(np.float64)
    pro_change = np.where(lab > 0, 1.0 / sizes[lab], 0.0)
    order = np.argsort(-s, kind="stable")
    fpr = np.minimum(np.cumsum(background[order].astype(np.float64)) / n_bg, 1.0)
    pro = np.minimum(np.cumsum(pro_change[order]) / n_regions, 1.0)
    ss = s[order]
    keep = np.r_[ss[:-1] != ss[1:], True]
    fpr = np.r_[0.0, fpr[keep]]
    pro = np.r_[0.0, pro[keep]]
    i = np.nonzero(fpr <= FPR_LIMIT)[0][-1]
    if fpr[i] < FPR_LIMIT and i + 1 < fpr.size:
        f1, f2, p1, p2 = fpr[i], fpr[i + 1], pro[i], pro[i + 1]
        p_lim = p1 + (p2 - p1) * (FPR_LIMIT - f1) / (f2 - f1)
        fpr = np.r_[fpr[: i + 1], FPR_LIMIT]
        pro = np.r_[pro[: i + 1], p_lim]
    else:
        fpr, pro = fpr[: i + 1], pro[: i + 1]
    return float(np.trapezoid(pro, fpr) / fpr[-1])


# ---------------------------------------------------------------- image cases


def image_cases(rng):
    cases = []

    def add(name, labels, raw, step=None):
        k, v = quantise(raw, step)
        auroc, ap, max_f1 = sklearn_metrics(labels, v)
        cases.append(
            {
                "name": name,
                "scores": k.tolist(),
                "labels": [int(x) for x in labels],
                "auroc": auroc,
                "ap": ap,
                "max_f1": max_f1,
            }
        )

    y = rng.random(200) < 0.3
    add("random", y, rng.normal(y * 1.0, 1.0) * 0.5)
    y = rng.random(300) < 0.4
    add("heavy_ties", y, rng.normal(y * 0.8, 1.0), step=0.5)
    y = rng.random(40) < 0.35
    add("all_tied", y, np.full(40, 0.5))
    y = np.r_[np.zeros(30, bool), np.ones(12, bool)]
    add("perfectly_separated", y, np.r_[rng.uniform(0, 0.4, 30), rng.uniform(0.6, 1, 12)])
    add("reversed", y, np.r_[rng.uniform(0.6, 1, 30), rng.uniform(0, 0.4, 12)])
    y = np.zeros(50, bool)
    y[17] = True
    add("single_positive", y, rng.uniform(-1, 1, 50))
    add("single_negative", ~y, rng.uniform(-1, 1, 50))
    y = rng.random(120) < 0.5
    add("negative_logits_ties", y, rng.normal(y * 2.0 - 1.0, 3.0), step=0.25)
    add("two_samples", [False, True], [0.3, 0.3])
    add("one_class_normal", np.zeros(20, bool), rng.random(20))
    add("one_class_anomalous", np.ones(20, bool), rng.random(20))
    add("empty", np.zeros(0, bool), np.zeros(0))
    return cases


# ---------------------------------------------------------------- pixel cases

H, W = 32, 40


def blank():
    return np.zeros((H, W), dtype=bool)


def mixed_masks():
    """8 masks: no anomaly, several regions, corner-only contact, border
    regions, one-pixel regions, a large region, diagonal lines, L/U shapes."""
    m = [blank() for _ in range(8)]
    # 1: two rectangles and a single pixel
    m[1][3:9, 4:12] = True
    m[1][20:26, 25:33] = True
    m[1][15, 18] = True
    # 2: an ellipse, and two squares touching only at a corner (one region)
    yy, xx = np.mgrid[0:H, 0:W]
    m[2] |= ((yy - 10) / 6.0) ** 2 + ((xx - 12) / 9.0) ** 2 <= 1
    m[2][18:22, 26:30] = True
    m[2][22:26, 30:34] = True
    # 3: regions on the border and in a corner
    m[3][0:4, 15:25] = True
    m[3][28:32, 36:40] = True
    m[3][10:20, 0:2] = True
    # 4: scattered one-pixel regions and a 2-pixel diagonal pair
    for y, x in [(2, 2), (2, 37), (29, 2), (29, 37), (16, 20), (8, 30), (24, 10), (12, 6)]:
        m[4][y, x] = True
    m[4][5, 20] = m[4][6, 21] = True
    # 5: one large region (about 30% of the image)
    m[5][4:26, 6:24] = True
    # 6: a diagonal and an anti-diagonal line, each one 8-connected region
    for i in range(12):
        m[6][2 + i, 3 + i] = True
        m[6][2 + i, 36 - i] = True
    # 7: an L and a U shape
    m[7][5:20, 5:8] = True
    m[7][17:20, 5:18] = True
    m[7][8:24, 24:27] = True
    m[7][8:24, 34:37] = True
    m[7][21:24, 24:37] = True
    # 0 stays empty: an image with no anomaly
    return np.stack(m)


def smooth_noise(rng, n):
    out = []
    for _ in range(n):
        z = rng.normal(0, 1, (H, W)).astype(np.float32)
        out.append(cv2.GaussianBlur(z, (0, 0), 1.5))
    return np.stack(out).astype(np.float64)


def anomaly_maps(rng, masks, strength):
    """Noise plus a per-region bump of random strength, so that some regions
    are found early and some late (AUPRO between 0 and 1)."""
    maps = smooth_noise(rng, len(masks))
    labels, _ = cv2_labels(masks)
    for r in range(1, labels.max() + 1):
        maps[labels == r] += rng.uniform(0, strength)
    return maps


def pixel_cases(rng):
    cases = []

    def add(name, maps_raw, masks, step=None):
        n, h, w = masks.shape
        k, v = quantise(maps_raw, step)
        v = v.reshape(n, h, w)
        labels = masks.reshape(-1)
        p_auroc, p_ap, p_f1 = sklearn_metrics(labels, v.reshape(-1))
        raw = anomalib_aupro(v, masks)
        ref = aupro_f64(v, masks)
        defined = masks.any() and not masks.all()
        if defined:
            assert ref is not None and abs(raw - ref) < 1e-5, (name, raw, ref)
        cases.append(
            {
                "name": name,
                "width": int(w),
                "height": int(h),
                "maps": k.reshape(n, h * w).tolist(),
                "masks": [["".join("1" if b else "0" for b in row) for row in mk] for mk in masks],
                "regions_per_image": cv2_labels(masks)[1],
                "pixel_auroc": p_auroc,
                "pixel_ap": p_ap,
                "pixel_max_f1": p_f1,
                # anomalib's value where the metric is defined; null where it
                # returns a number for an undefined case (kept as raw below).
                "aupro": raw if defined else None,
                "aupro_anomalib_raw": raw,
                "aupro_f64": ref,
            }
        )

    masks = mixed_masks()
    maps = anomaly_maps(rng, masks, 0.5)
    add("mixed_regions", maps, masks)
    add("mixed_regions_tied", maps, masks, step=0.125)
    add("all_scores_tied", np.full(masks.shape, 0.5), masks)
    add("mixed_regions_negated", -maps, masks)

    tiny = np.zeros((6, H, W), dtype=bool)
    for i in range(6):
        ys, xs = rng.integers(0, H, 15), rng.integers(0, W, 15)
        tiny[i, ys, xs] = True
        tiny[i, ys[:3], np.minimum(xs[:3] + 1, W - 1)] = True
    add("tiny_regions", anomaly_maps(rng, tiny, 0.4), tiny)

    perfect = masks[1:4]
    add("separated", np.where(perfect, rng.uniform(0.6, 1, perfect.shape), rng.uniform(0, 0.5, perfect.shape)), perfect)

    # FPR reaches exactly 0.3 (3 of 10 normal pixels) at a threshold where
    # PRO jumps: anomalib stops there without interpolating.
    lm = np.zeros((1, 4, 5), dtype=bool)
    lm[0, 2:4, :] = True  # the two bottom rows ...
    lm[0, 2, 0] = False  # ... less one pixel ...
    lm[0, 1, 4] = True  # ... plus one above them: one region, 10 of 20 pixels
    sc = np.zeros((1, 4, 5))
    bg_scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    fg_scores = [0.8, 0.85, 0.75, 0.8, 0.65, 0.3, 0.2, 0.1, 0.05, 0.8]
    sc[0][~lm[0]] = bg_scores
    sc[0][lm[0]] = fg_scores
    add("fpr_limit_hit_exactly", sc, lm)

    add("no_anomaly", smooth_noise(rng, 4), np.zeros((4, H, W), dtype=bool))
    add("all_anomalous", smooth_noise(rng, 2), np.ones((2, H, W), dtype=bool))
    return cases


def main():
    rng = np.random.default_rng(20261128)
    OUT.mkdir(parents=True, exist_ok=True)
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "anomalib": anomalib.__version__,
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "opencv": cv2.__version__,
    }
    for name, cases in [("image", image_cases(rng)), ("pixel", pixel_cases(rng))]:
        doc = {"generator": versions, "score_scale_bits": SCALE_BITS, "fpr_limit": FPR_LIMIT, "cases": cases}
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{path}: {len(cases)} cases, {path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
