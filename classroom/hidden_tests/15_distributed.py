"""Hidden tests for notebooks/15_distributed.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 15.per_rank_batch | 1 point
# Catches: a float batch size (global / world: 8.0 == 8 passes the self-check, a DataLoader rejects it); more
# ranks than examples.
for g, w, want in ((7, 7, 1), (96, 12, 8), (1024, 64, 16)):
    got = per_rank_batch(g, w)
    assert isinstance(got, int) and not isinstance(got, bool), f"a batch size is an int, got {got!r}"
    assert got == want, f"per_rank_batch({g}, {w}) should be {want}"
for g, w in ((9, 2), (256, 3), (5, 10)):
    try:
        per_rank_batch(g, w)
    except ValueError:
        continue
    raise AssertionError(f"per_rank_batch({g}, {w}) must raise ValueError: {g} examples do not split evenly over {w} ranks")

# %% 15.adamw_bytes | 1 point
# Catches: one rank (sharding changes nothing), no parameters, a model of billions.
import numpy as np

for n, w in ((5_000, 1), (0, 4), (7_000_000_000, 64), (3_000_000, 3)):
    assert np.isclose(float(adamw_bytes_per_rank(n, w, False)), 16 * n), f"DDP: {16 * n} bytes per rank for {n} parameters"
    assert abs(float(adamw_bytes_per_rank(n, w, True)) - 16 * n / w) <= 1, f"FSDP on {w} ranks: about {16 * n / w:.0f} bytes per rank"

# %% 15.sharded_lookup | 1 point
# Catches: ids on shard boundaries, one-dimensional ids, one-row shards, wider rows.
import torch

g = torch.Generator().manual_seed(101)
for sizes, ids in (((3, 1, 4), torch.tensor([0, 2, 3, 4, 7])), ((1, 1), torch.tensor([[1, 0], [0, 1]])),
                   ((6, 2), torch.tensor([5, 6, 7, 0]))):
    shards = [torch.randn(n, 5, generator=g) for n in sizes]
    got = torch.as_tensor(sharded_lookup(ids, shards))
    want = torch.cat(shards)[ids]
    assert tuple(got.shape) == tuple(want.shape) and torch.allclose(got, want), f"shard sizes {sizes}, ids {ids.tolist()}: differs from torch.cat(shards)[ids]"

# %% 15.uneven_shards | 2 points
# Catches: shard gradients weighted by shard size ((2·g₁ + 6·g₂) / 8 is the full batch's gradient, not what DDP's
# all-reduce computes): the 2 + 6 difference must be the one a plain average of the two shard means gives.
from recbook.distributed.checks import global_batches, tiny_cross_encoder

_model, _batch = tiny_cross_encoder(), global_batches(1, 8)[0]  # grads() is the notebook's, above the answer
_full = grads(_model, _batch)
_a = grads(_model, {k: v[:2] for k, v in _batch.items()})
_b = grads(_model, {k: v[2:] for k, v in _batch.items()})
_want = max(float(((_a[n] + _b[n]) / 2 - _full[n]).abs().max()) for n in _full)
assert abs(answer["max_diff"][(2, 6)] - _want) <= 0.1 * _want, \
    f"2 + 6: DDP's plain average of the two shard gradients differs from the full batch's by {_want:.2e}, not {answer['max_diff'][(2, 6)]:.2e}"
