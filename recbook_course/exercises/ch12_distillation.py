"""Checkers of notebook 12_distillation."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("12.soften", "12_distillation", "Write soften(logits, T): sigmoid(logits / T).")
def _soften(fn):
    import torch

    z = torch.linspace(-6, 6, 13)
    for t in (1.0, 2.0, 5.0):
        if not _close(torch.as_tensor(fn(z, t)), torch.sigmoid(z / t)):
            return False, f"for T={t} expected sigmoid(z / T)."
    return True, "larger T pulls every target towards 0.5 and keeps the order."


@_exercise("12.kd_loss", "12_distillation", "Write kd_loss(zs, zt, y, T, alpha): α·BCE(zs, y) + (1−α)·T²·BCE(zs/T, σ(zt/T)).")
def _kd_loss(fn):
    import torch

    from recbook.training.losses import distillation_bce

    g = torch.Generator().manual_seed(8)
    for t, a in ((1.0, 0.5), (3.0, 0.2), (2.0, 1.0)):
        zs, zt = torch.randn(32, generator=g), torch.randn(32, generator=g) * 3
        y = (torch.rand(32, generator=g) < 0.3).float()
        if not _close(float(fn(zs, zt, y, t, a)), float(distillation_bce(zs, zt, y, t, a)), 1e-4):
            return False, f"for T={t}, alpha={a} your loss differs from recbook.training.losses.distillation_bce; did you multiply the soft term by T²?"
    return True, "the same loss recbook.compress.distill.Distiller trains on."


@_exercise("12.encoder_share", "12_distillation", "Write encoder_share(n_layers): the fraction of the 6 encoder layers' parameters kept.")
def _encoder_share(fn):
    for n in range(1, 7):
        if not _close(fn(n), n / 6):
            return False, f"{n} of 6 equal layers keep {n}/6 of the encoder-layer parameters."
    return True, "the embeddings are not part of it: that is why students need trimming too."


@_exercise("12.distill_epochs", "12_distillation",
           "Distil the better student's layers again for 2 epochs, re-embed the catalogue, and compare its warm AUC with the "
           "fully distilled student's per user (paired, short first); give the verdict.")
def _distill_epochs(answer):
    from recbook_course.exercises.common import _dict_with, _warm_auc_interval

    hint = _dict_with(answer, ("model", "losses", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    if len(answer["losses"]) != 2:
        return False, f"losses has {len(answer['losses'])} epochs: distil for epochs=2 (distill_sentence_encoder returns one loss per epoch)."
    try:
        n_layers = len(answer["model"].encoder.encoder.layer)
    except AttributeError:
        return False, "model must be the student distill_sentence_encoder returns (a sentence encoder), not its losses or embeddings."
    if n_layers != 2:
        return False, f"the student has {n_layers} encoder layers: distil from the two layers of the better student (layers=STUDENTS[…])."
    hint, c = _warm_auc_interval(answer["per_user"], answer["reference"], answer["diff_low"], answer["diff_high"], answer["verdict"],
                                 "2 epochs − full", "paired_comparison(short, full), the short student first")
    if hint:
        return False, hint
    want = answer["verdict"]
    first, last = float(answer["losses"][0]), float(answer["losses"][-1])
    said = {"lower": "the rest of the epochs bought warm AUC that the interval can see",
            "higher": "the short run came out ahead — read it as noise unless it repeats with another seed",
            "not shown": "the rest of the epochs bought no warm AUC this interval can detect, whatever they did to the loss"}
    return True, (f"2 epochs: warm AUC {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] against the full run — {said[want]} "
                  f"(loss {first:.4f} → {last:.4f} in the 2 epochs). One run each: the interval covers users, not training noise "
                  "(dropout draws differ between runs). A lower distillation loss is a means; the recommender's quality on every "
                  "user is what decides how long to train.")
