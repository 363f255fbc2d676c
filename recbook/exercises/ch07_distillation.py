"""Checkers of notebook 07_distillation."""

from __future__ import annotations

from .core import _close, _exercise


@_exercise("07.soften", "07_distillation", "Write soften(logits, T): sigmoid(logits / T).")
def _soften(fn):
    import torch

    z = torch.linspace(-6, 6, 13)
    for t in (1.0, 2.0, 5.0):
        if not _close(torch.as_tensor(fn(z, t)), torch.sigmoid(z / t)):
            return False, f"for T={t} expected sigmoid(z / T)."
    return True, "larger T pulls every target towards 0.5 and keeps the order."


@_exercise("07.kd_loss", "07_distillation", "Write kd_loss(zs, zt, y, T, alpha): α·BCE(zs, y) + (1−α)·T²·BCE(zs/T, σ(zt/T)).")
def _kd_loss(fn):
    import torch

    from ..losses import distillation_bce

    g = torch.Generator().manual_seed(8)
    for t, a in ((1.0, 0.5), (3.0, 0.2), (2.0, 1.0)):
        zs, zt = torch.randn(32, generator=g), torch.randn(32, generator=g) * 3
        y = (torch.rand(32, generator=g) < 0.3).float()
        if not _close(float(fn(zs, zt, y, t, a)), float(distillation_bce(zs, zt, y, t, a)), 1e-4):
            return False, f"for T={t}, alpha={a} your loss differs from recbook.losses.distillation_bce; did you multiply the soft term by T²?"
    return True, "the same loss recbook.compress.distill.Distiller trains on."


@_exercise("07.encoder_share", "07_distillation", "Write encoder_share(n_layers): the fraction of the 6 encoder layers' parameters kept.")
def _encoder_share(fn):
    for n in range(1, 7):
        if not _close(fn(n), n / 6):
            return False, f"{n} of 6 equal layers keep {n}/6 of the encoder-layer parameters."
    return True, "the embeddings are not part of it: that is why students need trimming too."
