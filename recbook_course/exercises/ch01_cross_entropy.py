"""Checkers of notebook 01_cross_entropy."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.core import _close, _exercise


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


@_exercise("01.seed_loss", "01_cross_entropy",
           "Train the logistic-regression recommender on the seed article's loss, evaluate it on the test users and compare "
           "its per-user AUC with the correct model's (paired, seed loss first); give the verdict.")
def _seed_loss(answer):
    from recbook_course.exercises.common import _dict_with, _paired_interval, _per_user_tables

    hint = _dict_with(answer, ("weights", "losses", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    weights = np.asarray(answer["weights"].detach() if hasattr(answer["weights"], "detach") else answer["weights"], dtype=float)
    if weights.ndim != 1 or not np.isfinite(weights).all():
        return False, f"weights must be one finite vector (one weight per column of X), got shape {weights.shape}."
    losses = np.asarray([float(v) for v in answer["losses"]])
    if len(losses) < 2:
        return False, "losses must hold the training loss at every step (a list of floats)."
    if losses.min() >= 0:
        return False, ("the loss never went below 0: that is the correct BCE, which is never negative. Train on the seed "
                       "formula, −y·log σ(z) + (1 − y)·log(1 − σ(z)) — from logits: y·softplus(−z) − (1 − y)·softplus(z).")
    hint = _per_user_tables(answer, "AUC", "evaluate_sampled(..., per_user=True)['per_user']")
    if hint:
        return False, hint
    hint, c = _paired_interval(answer["per_user"]["AUC"], answer["reference"]["AUC"], answer["diff_low"], answer["diff_high"],
                               answer["verdict"], "AUC, seed loss − correct", "paired_comparison(seed, correct), the seed loss first")
    if hint:
        return False, hint
    auc = float(answer["per_user"]["AUC"].mean())
    where = (f"below chance (0.5): a user's held-out item outranks only {auc:.0%} of its sampled negatives on average, where a "
             "random order gives 50% — the model learned something, backwards" if auc < 0.5 else "at or above chance")
    return True, (f"the seed loss's model has AUC {auc:.3f}, {where}; against the correct model {c.diff.mean:+.3f} "
                  f"[{c.diff.low:+.3f}, {c.diff.high:+.3f}] per user. Its training loss fell to {losses[-1]:.1f}: a loss "
                  "that is unbounded below keeps \"improving\" while the model gets worse, so a falling loss proves nothing "
                  "about the recommender.")
