"""Checkers of notebook 15_distributed."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("15.per_rank_batch", "15_distributed", "Write per_rank_batch(global_batch, world_size), raising ValueError when it does not split evenly.")
def _per_rank_batch(fn):
    for g, w in ((16, 2), (64, 8), (12, 1)):
        if fn(g, w) != g // w:
            return False, f"per_rank_batch({g}, {w}) should be {g // w}."
    try:
        fn(10, 4)
    except ValueError:
        return True, "the global batch (what the optimizer sees per step) stays the same for any number of ranks."
    return False, "per_rank_batch(10, 4) must raise ValueError: 10 examples do not split over 4 ranks."


@_exercise("15.adamw_bytes", "15_distributed", "Write adamw_bytes_per_rank(n_params, world_size, sharded): fp32 params + grads + 2 AdamW moments per rank.")
def _adamw_bytes(fn):
    for n, w in ((1000, 2), (22_565_760, 8), (7, 1)):
        if not _close(fn(n, w, False), 16 * n) or not _close(fn(n, w, True), 16 * n / w):
            return False, f"for {n} parameters on {w} ranks: DDP {16 * n} bytes (4 copies × 4 bytes), FSDP {16 * n / w}."
    return True, "16 bytes per parameter before activations: why FSDP exists."


@_exercise("15.sharded_lookup", "15_distributed", "Write sharded_lookup(ids, shards): the rows of the concatenated shards for ids.")
def _sharded_lookup(fn):
    import torch

    g = torch.Generator().manual_seed(11)
    for sizes in ((5, 5), (3, 4, 6), (10,)):
        shards = [torch.randn(n, 3, generator=g) for n in sizes]
        full = torch.cat(shards)
        ids = torch.randint(0, len(full), (4, 2), generator=g)
        if not _close(torch.as_tensor(fn(ids, shards)), full[ids]):
            return False, f"for shard sizes {sizes} the result differs from torch.cat(shards)[ids]."
    return True, "each rank contributes its rows and zeros elsewhere; one all-reduce sums them."


@_exercise("15.uneven_shards", "15_distributed",
           "Simulate DDP's gradient in one process: the average of two shards' mean-loss gradients against the full batch's, "
           "for shards of 4 + 4 and 2 + 6; report the largest difference and the verdict for each split.")
def _uneven_shards(answer):
    from recbook_course.exercises.common import _dict_with

    hint = _dict_with(answer, ("max_diff", "verdict"))
    if hint:
        return False, hint
    splits = ((4, 4), (2, 6))
    for key in ("max_diff", "verdict"):
        if not isinstance(answer[key], dict) or set(answer[key]) != set(splits):
            return False, f"answer[{key!r}] must be a dict with keys (4, 4) and (2, 6), the shard sizes."
    for split in splits:
        diff = float(answer["max_diff"][split])
        if not diff >= 0:
            return False, f"max_diff[{split}] must be the largest absolute difference over all parameters (≥ 0), got {diff}."
        want = "same" if diff < 1e-5 else "differs"
        if answer["verdict"][split] != want:
            return False, f"{split}: a largest difference of {diff:.1e} is {want!r} by the 1e-5 line, not {answer['verdict'][split]!r}."
    if answer["verdict"][(2, 6)] != "differs":
        return False, ("2 + 6 matched the full batch: average the two shards' gradients plainly, (g₁ + g₂) / 2, as DDP's "
                       "all-reduce does — weighting them by shard size gives the full batch back, which DDP does not do.")
    if answer["verdict"][(4, 4)] != "same":
        return False, ("equal shards must give the full batch's gradient (to float rounding): take each shard's *mean* loss, "
                       "backpropagate it alone, and average the two gradients — that is what DDP's all-reduce does.")
    d = answer["max_diff"]
    return True, (f"4 + 4: {d[(4, 4)]:.1e} (rounding); 2 + 6: {d[(2, 6)]:.1e} → {answer['verdict'][(2, 6)]}. Averaging two shard means "
                  "weights each example of the 2-example shard three times as much as one of the 6-example shard, so the "
                  "update is no longer the full batch's. That is why DistributedSampler gives every rank the same number of "
                  "examples (padding with repeats, or drop_last).")
