"""Checkers of notebook 11_pruning."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("11.sparsity", "11_pruning", "Write sparsity(tensor): the fraction of entries that are exactly zero.")
def _sparsity(fn):
    import torch

    g = torch.Generator().manual_seed(6)
    for shape, p in (((10, 10), 0.3), ((7, 3, 5), 0.9), ((4,), 0.0)):
        t = torch.randn(shape, generator=g)
        t[torch.rand(shape, generator=g) < p] = 0
        if not _close(fn(t), float((t == 0).float().mean())):
            return False, "count the entries equal to 0 and divide by the number of entries (t.numel())."
    return True, "sparsity_report does this for every layer."


@_exercise("11.global_threshold", "11_pruning", "Write global_threshold(weights, amount): the k-th smallest |w| over all tensors, k = amount × total.")
def _global_threshold(fn):
    import torch

    from recbook.compress.prune import magnitude_prune

    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Linear(30, 5))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (3.0 if p.shape[0] == 5 else 1.0))
    for amount in (0.2, 0.4, 0.8):  # amount × 750 weights is a whole number: no rounding question
        t = fn([m.weight.detach() for m in model], amount)
        pruned = magnitude_prune(model, amount)
        kept = torch.cat([m.weight.detach().flatten() for m in pruned])
        ref = torch.cat([m.weight.detach().flatten() for m in model])
        if not torch.equal(kept != 0, ref.abs() > float(t)):
            return False, f"for amount={amount} weights with |w| above your threshold are not exactly the ones global pruning keeps."
    return True, "one threshold for all layers: layers with many small weights lose more."


@_exercise("11.packed_bytes", "11_pruning", "Write packed_bytes(n, sparsity, value_bytes): ceil(n/8) mask bytes + value_bytes per non-zero.")
def _packed_bytes(fn):
    import torch

    from recbook.compress.storage import save_compact

    for n, s, b in ((1000, 0.5, 4), (4096, 0.9, 1), (17, 0.0, 2)):
        expected = -(-n // 8) + round(n * (1 - s)) * b
        if int(fn(n, s, b)) != expected:
            return False, f"for n={n}, sparsity={s}, {b}-byte values expected {expected} bytes."
    w = torch.ones(64, 64)
    w[:, :32] = 0
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        size = save_compact({"w": w}, Path(d) / "w.safetensors")
    if size - int(fn(64 * 64, 0.5, 4)) > 1024:  # safetensors header only
        return False, "your formula is far from the real file size."
    return True, "at 50% sparsity fp32 values still cost 16 of every 32 bits, plus 1 bit of mask."


@_exercise("11.random_control", "11_pruning",
           "Prune each layer of a copy of the teacher at random to the per-layer sparsity, re-embed the catalogue, and compare "
           "its warm AUC with the per-layer magnitude model's per user (paired, random first); give the verdict.")
def _random_control(answer):
    from recbook.compress.prune import prunable_weights
    from recbook_course.exercises.common import _dict_with, _warm_auc_interval

    hint = _dict_with(answer, ("model", "amount", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    amount = float(answer["amount"])
    for name, module in prunable_weights(answer["model"]):
        w = module.weight.detach()
        zeros = float((w == 0).float().mean())
        if abs(zeros - amount) > 1.0 / w.numel() + 1e-9:
            return False, (f"{name}: {zeros:.1%} of its weights are zero, not {amount:.0%}: prune every prunable layer by the same "
                           "amount (prune.random_unstructured on each), then prune.remove to make it permanent.")
    hint, c = _warm_auc_interval(answer["per_user"], answer["reference"], answer["diff_low"], answer["diff_high"], answer["verdict"],
                                 "random − magnitude", "paired_comparison(random, magnitude), random first")
    if hint:
        return False, hint
    want = answer["verdict"]
    meaning = {"lower": "which weights go matters, not only how many — small weights carry less of what the encoder computes",
               "higher": "random pruning came out ahead, which magnitude pruning's premise does not predict: re-run with another seed",
               "not shown": "at this sparsity the choice of weights made no difference this interval can detect"}[want]
    return True, (f"random − magnitude at {amount:.0%} per layer: warm AUC {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] → "
                  f"{want}: {meaning}. A control like this is what makes \"magnitude pruning works\" a measured claim.")
