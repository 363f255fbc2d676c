"""Checkers of notebook 01_cross_entropy."""

from __future__ import annotations

import numpy as np

from .core import _close, _exercise


def _random_probs(rng, n=64):
    p = rng.uniform(0.01, 0.99, size=n)
    y = (rng.random(n) < 0.5).astype(float)
    return p, y


@_exercise("01.bce", "01_cross_entropy", "Write bce(p, y) -> mean BCE from probabilities (NumPy arrays in, float out).")
def _bce(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    for _ in range(5):
        p, y = _random_probs(rng)
        expected = F.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).item()
        got = float(fn(p, y))
        if not _close(got, expected):
            return False, f"for a random case you returned {got:.6f}, torch gives {expected:.6f}. Mind the minus sign on BOTH terms."
    return True, "matches torch.nn.functional.binary_cross_entropy on 5 random cases."


@_exercise("01.grad", "01_cross_entropy", "Write grad(z, y) -> dL/dz of the MEAN BCE-with-logits loss (NumPy arrays).")
def _grad(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    for _ in range(5):
        z = torch.tensor(rng.normal(0, 3, size=32), requires_grad=True)
        y = torch.tensor((rng.random(32) < 0.5).astype(float))
        F.binary_cross_entropy_with_logits(z, y).backward()
        got = np.asarray(fn(z.detach().numpy(), y.numpy()), dtype=float)
        if got.shape != (32,) or not _close(got, z.grad.numpy()):
            return False, "compare with autograd: the gradient of the mean is (sigmoid(z) - y) / N."
    return True, "matches autograd on 5 random cases: dL/dz = (σ(z) − y)/N."


@_exercise("01.pos_weight", "01_cross_entropy", "Write weighted_bce(z, y, w) -> mean BCE-with-logits where positives weigh w (stable for |z| = 100).")
def _pos_weight(fn):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    for w in (1.0, 3.0, 10.0):
        z = np.concatenate([rng.normal(0, 4, size=30), [100.0, -100.0]])
        y = np.concatenate([(rng.random(30) < 0.3).astype(float), [0.0, 1.0]])
        expected = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), pos_weight=torch.tensor(w)).item()
        got = float(fn(z, y, w))
        if not np.isfinite(got):
            return False, f"you returned {got} with logits ±100: use the stable form with log1p(exp(-|z|))."
        if not _close(got, expected):
            return False, f"with w={w} you returned {got:.6f}, torch gives {expected:.6f}."
    return True, "matches torch's pos_weight, and stays finite at ±100."
