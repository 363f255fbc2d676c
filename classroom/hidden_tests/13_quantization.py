"""Hidden tests for notebooks/13_quantization.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 13.scale_zero_point | 1 point
# Catches: other ranges around 0 than the self-check's — very narrow, very wide, a whole-number scale.
import warnings

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.ao.quantization.observer import MinMaxObserver

for lo, hi in ((-0.37, 0.61), (-10.0, 2.5), (-0.001, 0.003), (-1.0, 254.0)):  # none on a .5 zero point
    obs = MinMaxObserver(dtype=torch.quint8)
    obs(torch.tensor([lo, hi]))
    s, z = obs.calculate_qparams()
    got = scale_zero_point(lo, hi)
    assert np.isclose(float(got[0]), float(s), rtol=1e-6) and int(got[1]) == int(z), (
        f"for [{lo}, {hi}] PyTorch's observer gives scale {float(s):.6g}, zero point {int(z)}; got {got}")

# %% 13.int8_dot | 1 point
# Catches: the extremes where uint8/int8 arithmetic wraps or int16 overflows: qa = 255, qb = −128, za = 0 or 255.
import numpy as np
import torch

g = torch.Generator().manual_seed(81)
for n, za in ((1, 0), (4096, 0), (4096, 255), (777, 128)):
    qa = torch.full((n,), 255, dtype=torch.uint8) if n == 4096 else torch.randint(0, 256, (n,), generator=g).to(torch.uint8)
    qb = torch.full((n,), -128, dtype=torch.int8) if n == 4096 else torch.randint(-128, 128, (n,), generator=g).to(torch.int8)
    sa, sb = 0.05, 0.004
    want = sa * sb * float(((qa.long() - za) * qb.long()).sum())
    got = float(int8_dot(qa, qb, za, sa, sb))
    assert np.isclose(got, want, rtol=1e-6, atol=1e-9), f"n={n}, za={za}: expected {want:.6g}, got {got:.6g}"

# %% 13.int8_mb | 1 point
# Catches: no weights, fewer weights than one block, a partial last block.
import numpy as np

for n in (0, 1, 768, 1000):
    want = (n + 4 * n / 384) / 1e6
    assert np.isclose(float(int8_model_mb(n)), want, rtol=1e-9, atol=1e-12), f"int8_model_mb({n}) should be {want:.9f}"

# %% 13.weight_bits | 2 points
# Catches: one scale for the whole matrix (per-tensor) instead of one per output row — each row's largest weight must
# come back within one of its own steps —, an asymmetric grid (a zero point), teacher quantized in place (no copy),
# and a model that changed more than the Linear weights.
import torch

assert all(m is not teacher for m in answer["models"].values()), "quantize copies (copy.deepcopy(teacher)), not teacher itself"
assert any(len(torch.unique(row)) > 16 for m in teacher.modules() if isinstance(m, torch.nn.Linear) for row in m.weight.detach()), \
    "teacher's own weights were quantized: quantize a copy, and re-run the notebook from the top"
for bits in (8, 4):
    learner = dict(answer["models"][bits].named_modules())
    for name, m in teacher.named_modules():
        if isinstance(m, torch.nn.Linear):
            w, q = m.weight.detach(), learner[name].weight.detach()
            step = w.abs().amax(dim=1) / (2 ** bits - 1) * 2  # one step of a per-row symmetric grid
            assert ((q.abs().amax(dim=1) - w.abs().amax(dim=1)).abs() <= step + 1e-7).all(), \
                f"{name} at {bits} bits: a row's largest weight moved by more than its own step: use one scale per output row"
            codes = q / step.unsqueeze(1).clamp(min=1e-12)  # a symmetric grid: every weight a whole number of steps
            assert ((codes - codes.round()).abs() < 1e-2).all(), f"{name} at {bits} bits: not a symmetric grid (zero point 0)"
            if m.bias is not None:
                assert torch.equal(m.bias, learner[name].bias), f"{name}: quantize the weights only, keep the bias"
        elif isinstance(m, torch.nn.Embedding):
            assert torch.equal(m.weight, learner[name].weight), f"{name}: the embeddings are not part of this experiment"
