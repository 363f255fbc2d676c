"""Hidden tests for notebooks/11_pruning.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 11.sparsity | 1 point
# Catches: integer tensors, −0.0 (it is zero), all-zero and dense tensors, four-dimensional shapes.
import numpy as np
import torch

cases = [(torch.zeros(3, 4), 1.0), (torch.ones(5), 0.0), (torch.tensor([0, 1, 0, 2]), 0.5),
         (torch.tensor([-0.0, 1.0, 0.0, 2.0, 3.0]), 0.4)]
t = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(61))
t[t.abs() < 0.5] = 0
cases.append((t, float((t == 0).float().mean())))
for tensor, want in cases:
    got = float(sparsity(tensor))
    assert np.isclose(got, want), f"sparsity of a {tuple(tensor.shape)} {tensor.dtype} tensor should be {want:.4f}, got {got:.4f}"

# %% 11.global_threshold | 1 point
# Catches: other layer shapes and amounts, and a single tensor (global = per-layer then).
import torch

from recbook.compress.prune import magnitude_prune

g = torch.Generator().manual_seed(62)
model = torch.nn.Sequential(torch.nn.Linear(10, 40), torch.nn.Linear(40, 25))  # 400 + 1000 weights
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=g) * (0.2 if p.shape[0] == 40 else 1.0))
for amount in (0.1, 0.5, 0.9):  # amount × 1400 is a whole number
    threshold = float(global_threshold([m.weight.detach() for m in model], amount))
    pruned = magnitude_prune(model, amount)
    kept = torch.cat([m.weight.detach().flatten() for m in pruned]) != 0
    mine = torch.cat([m.weight.detach().flatten() for m in model]).abs() > threshold
    assert torch.equal(kept, mine), f"amount={amount}: |w| > your threshold is not what global magnitude pruning keeps"
w = torch.randn(8, 10, generator=g)
threshold = float(global_threshold([w], 0.25))
assert int((w.abs() <= threshold).sum()) == 20, "with one tensor of 80 weights and amount 0.25, exactly 20 are at or below the threshold"

# %% 11.packed_bytes | 1 point
# Catches: a mask of whole bytes for n not a multiple of 8, a fully sparse tensor, one weight.
for n, s, b in ((1, 0.0, 4), (8, 0.0, 1), (9, 1.0, 4), (100, 0.25, 2), (12_345, 0.75, 2)):
    want = -(-n // 8) + round(n * (1 - s)) * b
    got = int(packed_bytes(n, s, b))
    assert got == want, f"packed_bytes({n}, {s}, {b}) should be {want}, got {got}"

# %% 11.random_control | 2 points
# Catches: a "random" control pruned by magnitude (l1_unstructured): the weights it removed must be of ordinary size,
# not the smallest of each layer.
from recbook.compress.prune import prunable_weights

assert answer["amount"] == LAYER_SCOPE_AT, f"prune to LAYER_SCOPE_AT ({LAYER_SCOPE_AT}), the per-layer model's sparsity"
assert answer["reference"]["warm"]["AUC"].equals(results[f"per layer {LAYER_SCOPE_AT:.0%}"]["warm"]["AUC"]), \
    "compare with the per-layer magnitude model (same sparsity in every layer), not the dense or the global one"
learner = dict(prunable_weights(answer["model"]))
for name, module in prunable_weights(teacher):
    w = module.weight.detach().abs()
    removed = learner[name].weight.detach() == 0
    assert w[removed].mean() > 0.5 * w.mean(), f"{name}: the removed weights are the smallest ones — that is magnitude pruning, not the random control"
