"""Hidden tests for notebooks/12_distillation.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 12.soften | 1 point
# Catches: temperatures below 1, two-dimensional logits (shape kept), large logits (no overflow to NaN).
import torch

z = torch.randn(3, 4, generator=torch.Generator().manual_seed(71)) * 5
for t in (0.5, 1.5, 10.0):
    got = torch.as_tensor(soften(z, t))
    assert tuple(got.shape) == (3, 4), f"keep the logits' shape (3, 4), got {tuple(got.shape)}"
    assert torch.allclose(got.float(), torch.sigmoid(z / t), atol=1e-6), f"T={t}: expected sigmoid(z / T)"
big = torch.as_tensor(soften(torch.tensor([-500.0, 500.0]), 2.0))
assert torch.isfinite(big).all() and torch.allclose(big.float(), torch.tensor([0.0, 1.0])), "logits of ±500 soften to 0 and 1, not NaN"

# %% 12.kd_loss | 1 point
# Catches: alpha = 0 (the soft term alone), temperatures below 1, other batch sizes than the self-check's.
import torch

from recbook.training.losses import distillation_bce

g = torch.Generator().manual_seed(72)
for t, a, n in ((4.0, 0.0, 7), (0.5, 0.7, 16), (2.5, 0.35, 1)):
    zs, zt = torch.randn(n, generator=g), torch.randn(n, generator=g) * 4
    y = (torch.rand(n, generator=g) < 0.5).float()
    want = float(distillation_bce(zs, zt, y, t, a))
    got = float(kd_loss(zs, zt, y, t, a))
    assert abs(got - want) <= 1e-4 * max(1.0, abs(want)), f"T={t}, alpha={a}, batch {n}: expected {want:.5f}, got {got:.5f}"

# %% 12.encoder_share | 1 point
# Catches: no layer kept, and a share that is not a plain fraction of 6.
import numpy as np

assert np.isclose(float(encoder_share(0)), 0.0), "keeping no encoder layer keeps none of their parameters"
assert np.isclose(float(encoder_share(3)), 0.5)
assert all(float(encoder_share(n)) < float(encoder_share(n + 1)) for n in range(6))

# %% 12.distill_epochs | 2 points
# Catches: comparing the short student with the teacher (or the untrained student) instead of the fully distilled
# student of the same layers — the visible check only re-computes the interval from the reference it is given —, and
# a short run that is not the same start: other layers (its first epoch's loss is far higher) or the finished student
# trained on (far lower).
first = curves[best.removesuffix(", distilled")][0]
assert abs(answer["losses"][0] - first) <= 0.1 * first, \
    f"the 2-epoch run's first-epoch loss is {answer['losses'][0]:.4f}, section 2's {first:.4f}: start a new student from the same layers"
reference = per_user[best]["warm"]["AUC"]
assert answer["reference"]["warm"]["AUC"].equals(reference), \
    "compare with the fully distilled student of section 3 (per_user[best]), not with the teacher or an untrained student"
