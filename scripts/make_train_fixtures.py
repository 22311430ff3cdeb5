#!/usr/bin/env python3
"""Reference fixtures for afr-clip's training losses and Adam optimiser.

The losses are the ones the peers train with, written out below from their
PyTorch source (read there, re-expressed here; the arithmetic is theirs,
operation for operation):

- ``PeerFocalLoss`` and ``PeerBinaryDiceLoss``: ``FocalLoss`` and
  ``BinaryDiceLoss`` of AnomalyCLIP, ``loss.py``
  (https://github.com/zqhang/AnomalyCLIP, commit ff7ca47), the same classes
  APRIL-GAN / VAND ships (https://github.com/ByChelsea/VAND-APRIL-GAN); the
  focal loss itself is credited there to Hsuxu/Loss_ToolBox-PyTorch.
  Used as AnomalyCLIP's ``train.py`` does: ``FocalLoss()`` with its defaults
  (apply_nonlin None, alpha None, gamma 2, smooth 1e-5, size_average True) on
  the 2-channel [normal, abnormal] probability map, and ``BinaryDiceLoss()`` on
  the abnormal map against the mask and the normal map against 1 - mask.
- the image loss: ``torch.nn.functional.binary_cross_entropy`` on
  probabilities (PyTorch's own, log clamped at -100, gradient
  ``(p - y) / max(p (1 - p), 1e-12)``).
- Adam: ``torch.optim.Adam`` itself (CPU, single-tensor path).

Every loss case is computed in float32 and in float64, values and gradients
with respect to the inputs (autograd). The Rust tests read the files this
script writes and never need Python.

    pip install -r scripts/requirements-train-fixtures.txt
    python scripts/make_train_fixtures.py --out tests/fixtures/train

Deterministic: seeded generators, one CPU thread, no time stamps.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


class PeerFocalLoss:
    """AnomalyCLIP's ``FocalLoss`` with the defaults it is trained with.

    ``logit`` [N, C, d1, d2, ...] holds probabilities already (no nonlinearity
    is applied); ``target`` [N, d1, d2, ...] holds class indices (0 normal,
    1 abnormal). alpha is None, i.e. a column of ones indexed by the target.

    One deviation, only visible in float64: the peer builds the one-hot key as
    ``torch.FloatTensor`` (float32) whatever the input dtype; here it takes the
    input's dtype. For float32 inputs (the peer's case) the two are identical.
    """

    def __init__(self, gamma=2, smooth=1e-5):
        self.gamma = gamma
        self.smooth = smooth

    def __call__(self, logit, target):
        num_class = logit.shape[1]
        if logit.dim() > 2:
            # N,C,d1,d2 -> N*m, C
            logit = logit.view(logit.size(0), logit.size(1), -1)
            logit = logit.permute(0, 2, 1).contiguous()
            logit = logit.view(-1, logit.size(-1))
        target = torch.squeeze(target, 1)
        target = target.view(-1, 1)
        alpha = torch.ones(num_class, 1)
        idx = target.cpu().long()
        one_hot_key = torch.zeros(target.size(0), num_class, dtype=logit.dtype)
        one_hot_key = one_hot_key.scatter_(1, idx, 1)
        if self.smooth:
            one_hot_key = torch.clamp(one_hot_key, self.smooth / (num_class - 1), 1.0 - self.smooth)
        pt = (one_hot_key * logit).sum(1) + self.smooth
        logpt = pt.log()
        alpha = torch.squeeze(alpha[idx])
        loss = -1 * alpha * torch.pow((1 - pt), self.gamma) * logpt
        return loss.mean()


class PeerBinaryDiceLoss:
    """AnomalyCLIP's ``BinaryDiceLoss``: smooth 1, per sample, 1 - batch mean."""

    def __call__(self, input, targets):
        n = targets.size()[0]
        smooth = 1
        input_flat = input.view(n, -1)
        targets_flat = targets.view(n, -1)
        intersection = input_flat * targets_flat
        dice_eff = (2 * intersection.sum(1) + smooth) / (input_flat.sum(1) + targets_flat.sum(1) + smooth)
        return 1 - dice_eff.sum() / n


def stage_loss(p_abnormal, mask):
    """One stage's segmentation loss as AnomalyCLIP's ``train.py`` adds it up,
    with the 2-channel map [1 - p, p] (DESIGN.md section 2)."""
    probs = torch.stack([1 - p_abnormal, p_abnormal], dim=1)
    dice = PeerBinaryDiceLoss()
    return PeerFocalLoss()(probs, mask) + dice(p_abnormal, mask) + dice(1 - p_abnormal, 1 - mask)


def value_and_grad(fn, x, *rest):
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *rest)
    loss.backward()
    return loss.detach(), x.grad.detach()


def extreme_probs(shape, gen, dtype):
    """Probabilities piled up at the ends: exact 0 and 1, 1e-7, 1 - 1e-7,
    1e-3, 0.999, and a few ordinary values."""
    pool = torch.tensor([0.0, 1.0, 1e-7, 1 - 1e-7, 1e-3, 0.999, 0.5, 0.2, 0.93], dtype=torch.float64)
    pick = torch.randint(0, len(pool), shape, generator=gen)
    return pool[pick].to(dtype)


def binary(shape, gen, frac):
    return (torch.rand(shape, generator=gen, dtype=torch.float64) < frac).to(torch.float64)


def loss_cases():
    """(name, seed, builder) -> dict of float64 inputs; cast per dtype later."""

    def random_map(gen):
        p = torch.sigmoid(2 * torch.randn(2, 5, 7, generator=gen, dtype=torch.float64))
        return p, binary((2, 5, 7), gen, 0.3)

    def empty_mask(gen):
        p = torch.sigmoid(torch.randn(3, 4, 4, generator=gen, dtype=torch.float64))
        return p, torch.zeros(3, 4, 4, dtype=torch.float64)

    def full_mask(gen):
        p = torch.sigmoid(torch.randn(1, 3, 6, generator=gen, dtype=torch.float64))
        return p, torch.ones(1, 3, 6, dtype=torch.float64)

    def extremes(gen):
        p = extreme_probs((2, 6, 6), gen, torch.float64)
        return p, binary((2, 6, 6), gen, 0.5)

    def confident_right(gen):
        # Nearly perfect predictions: pt -> 1, (1 - pt)^2 -> 0.
        m = binary((2, 4, 5), gen, 0.4)
        p = (m * (1 - 1e-6) + (1 - m) * 1e-6).to(torch.float64)
        return p, m

    return [
        ("random", 1, random_map),
        ("empty_mask", 2, empty_mask),
        ("full_mask", 3, full_mask),
        ("extremes", 4, extremes),
        ("confident", 5, confident_right),
    ]


def bce_cases():
    def random_scores(gen):
        s = torch.sigmoid(2 * torch.randn(8, generator=gen, dtype=torch.float64))
        return s, binary((8,), gen, 0.5)

    def extremes(gen):
        # exact 0 and 1 against both labels: log clamp at -100 and the 1e-12
        # floor of the gradient's denominator
        s = torch.tensor([0.0, 0.0, 1.0, 1.0, 1e-7, 1 - 1e-7, 1e-3, 0.999, 1e-13, 0.5], dtype=torch.float64)
        y = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
        return s, y

    def single(gen):
        return torch.rand(1, generator=gen, dtype=torch.float64), torch.ones(1, dtype=torch.float64)

    return [("random", 11, random_scores), ("extremes", 12, extremes), ("single", 13, single)]


def make_loss_fixture():
    out = {}
    manifest = {"focal": [], "dice": [], "stage": [], "bce": []}
    dtypes = {"f32": torch.float32, "f64": torch.float64}
    for name, seed, build in loss_cases():
        gen = torch.Generator().manual_seed(seed)
        p64, m64 = build(gen)
        # an independent 2-channel map for the focal loss alone (channels need not sum to 1)
        probs64 = torch.softmax(torch.randn(p64.shape[0], 2, *p64.shape[1:], generator=gen, dtype=torch.float64), 1)
        if name == "extremes":
            probs64 = extreme_probs(probs64.shape, gen, torch.float64)
        for dn, dt in dtypes.items():
            p, m, probs = p64.to(dt), m64.to(dt), probs64.to(dt)
            loss, grad = value_and_grad(PeerFocalLoss(), probs, m)
            out.update({f"focal.{name}.{dn}.probs": probs, f"focal.{name}.{dn}.mask": m,
                        f"focal.{name}.{dn}.loss": loss, f"focal.{name}.{dn}.grad": grad})
            loss, grad = value_and_grad(PeerBinaryDiceLoss(), p, m)
            out.update({f"dice.{name}.{dn}.pred": p, f"dice.{name}.{dn}.target": m,
                        f"dice.{name}.{dn}.loss": loss, f"dice.{name}.{dn}.grad": grad})
            loss, grad = value_and_grad(stage_loss, p, m)
            out.update({f"stage.{name}.{dn}.p": p, f"stage.{name}.{dn}.mask": m,
                        f"stage.{name}.{dn}.loss": loss, f"stage.{name}.{dn}.grad": grad})
        for k in ("focal", "dice", "stage"):
            manifest[k].append(name)
    for name, seed, build in bce_cases():
        gen = torch.Generator().manual_seed(seed)
        s64, y64 = build(gen)
        for dn, dt in dtypes.items():
            s, y = s64.to(dt), y64.to(dt)
            loss, grad = value_and_grad(F.binary_cross_entropy, s, y)
            out.update({f"bce.{name}.{dn}.score": s, f"bce.{name}.{dn}.label": y,
                        f"bce.{name}.{dn}.loss": loss, f"bce.{name}.{dn}.grad": grad})
        manifest["bce"].append(name)
    for k, v in out.items():
        assert torch.isfinite(v).all(), k
    return out, manifest


ADAM_STEPS = 5
ADAM_SHAPES = {"w": (3, 4), "b": (5,), "p": (2, 3, 2)}
# Steps at which a parameter gets no gradient (p.grad = None: torch skips it
# and its own step count does not advance).
ADAM_NO_GRAD = {"b": {2}, "p": {0}}
GRAD_SCALE = [1.0, 0.1, 10.0, 1e-3, 1.0]


def adam_run(betas, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for n, s in ADAM_SHAPES.items()}
    out = {f"init.{n}": t.clone() for n, t in params.items()}
    tensors = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    opt = torch.optim.Adam(list(tensors.values()), lr=0.001, betas=betas, eps=1e-8, weight_decay=0,
                           foreach=False, fused=False)
    for step in range(ADAM_STEPS):
        for g in opt.param_groups:
            g["lr"] = 0.001 / (step + 1)
        for n, t in tensors.items():
            grad = (GRAD_SCALE[step] * torch.randn(ADAM_SHAPES[n], generator=gen, dtype=torch.float64)).to(dtype)
            if step in ADAM_NO_GRAD.get(n, ()):
                t.grad = None
            else:
                t.grad = grad
                out[f"grad.{step}.{n}"] = grad.clone()
        opt.step()
        for n, t in tensors.items():
            out[f"after.{step}.{n}"] = t.detach().clone()
            st = opt.state.get(t)
            if st:
                out[f"state.{step}.{n}.step"] = st["step"].detach().clone().to(torch.float64)
                out[f"state.{step}.{n}.exp_avg"] = st["exp_avg"].clone()
                out[f"state.{step}.{n}.exp_avg_sq"] = st["exp_avg_sq"].clone()
    return out


def make_adam_fixture():
    out = {}
    runs = []
    for bn, betas in (("b0.9", (0.9, 0.999)), ("b0.5", (0.5, 0.999))):
        for dn, dt in (("f32", torch.float32), ("f64", torch.float64)):
            run = f"{bn}.{dn}"
            seed = 100 + len(runs)
            for k, v in adam_run(betas, dt, seed).items():
                out[f"{run}.{k}"] = v
            runs.append({"run": run, "betas": list(betas), "dtype": dn, "seed": seed})
    return out, runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    losses, loss_manifest = make_loss_fixture()
    save_file({k: v.detach().clone().contiguous() for k, v in sorted(losses.items())}, args.out / "loss_reference.safetensors")
    adam, adam_runs = make_adam_fixture()
    save_file({k: v.detach().clone().contiguous() for k, v in sorted(adam.items())}, args.out / "adam_reference.safetensors")
    manifest = {
        "torch": torch.__version__.split("+")[0],
        "losses": loss_manifest,
        "adam": {
            "steps": ADAM_STEPS,
            "lr": "0.001 / (step + 1), step counted from 0",
            "eps": 1e-8,
            "params": {n: list(s) for n, s in ADAM_SHAPES.items()},
            "no_grad_steps": {n: sorted(s) for n, s in ADAM_NO_GRAD.items()},
            "grad_scale": GRAD_SCALE,
            "runs": adam_runs,
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(losses)} loss tensors, {len(adam)} adam tensors to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
