"""Hidden tests for notebooks/01_cross_entropy.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 01.bce | 1 point
# Catches: clipping p to a wide band such as [1e-3, 1 − 1e-3] (the self-check only draws p from [0.01, 0.99]);
# a vector of per-example losses instead of their mean; other batch sizes.
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(101)
for n in (1, 7, 500):
    p = rng.uniform(1e-6, 1 - 1e-6, size=n)
    y = (rng.random(n) < 0.5).astype(float)
    got = bce(p, y)
    assert np.ndim(got) == 0, "bce returns one number: the mean over the examples"
    want = F.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).item()
    assert np.isclose(float(got), want, rtol=1e-5, atol=1e-8), f"n={n}: you return {float(got):.6f}, torch {want:.6f}"
edge = float(bce(np.array([1e-6, 1 - 1e-6]), np.array([1.0, 0.0])))
assert np.isclose(edge, -np.log(1e-6), rtol=1e-4), (f"p = 1e-6 for a positive costs −log(1e-6) ≈ 13.82, you return {edge:.4f}: "
                                                    "clipping p that wide hides confident mistakes")

# %% 01.grad | 1 point
# Catches: a batch size written into the formula (the self-check always uses 32 logits); a lost shape.
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(102)
for n in (1, 5, 257):
    z = torch.tensor(rng.normal(0, 3, size=n), requires_grad=True)
    y = torch.tensor((rng.random(n) < 0.5).astype(float))
    F.binary_cross_entropy_with_logits(z, y).backward()
    got = np.asarray(grad(z.detach().numpy(), y.numpy()), dtype=float)
    assert got.shape == (n,), f"{n} logits need {n} partial derivatives, got shape {got.shape}"
    assert np.allclose(got, z.grad.numpy(), rtol=1e-6, atol=1e-10), f"n={n}: the mean's gradient is (σ(z) − y) / N with N = len(z)"
with np.errstate(over="ignore"):
    wide = np.asarray(grad(np.array([-30.0, 30.0, 0.0]), np.array([1.0, 0.0, 1.0])), dtype=float)
assert np.allclose(wide, [-1 / 3, 1 / 3, -1 / 6], atol=1e-9), f"for z = (−30, 30, 0), y = (1, 0, 1) expected (−1/3, 1/3, −1/6), got {wide}"

# %% 01.pos_weight | 1 point
# Catches: a softplus that is only stable up to |z| ≈ 700 (log1p(exp(−z)) overflows at z = −1000, the self-check
# stops at ±100); weights below 1; batches of one class only.
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(103)
for w in (0.25, 2.0):
    z = np.concatenate([rng.normal(0, 3, size=40), [1000.0, -1000.0, 35.0]])
    y = np.concatenate([(rng.random(40) < 0.5).astype(float), [0.0, 1.0, 1.0]])
    want = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), pos_weight=torch.tensor(w)).item()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        got = float(weighted_bce(z, y, w))
    assert np.isfinite(got), f"w={w}: you return {got} for logits ±1000: a stable loss is finite for any logit"
    assert np.isclose(got, want, rtol=1e-5), f"w={w}: you return {got:.6f}, torch {want:.6f}"
for labels in (np.ones(6), np.zeros(6)):
    z = rng.normal(0, 2, size=6)
    want = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(labels), pos_weight=torch.tensor(4.0)).item()
    assert np.isclose(float(weighted_bce(z, labels, 4.0)), want, rtol=1e-5), f"a batch of only {'positives' if labels[0] else 'negatives'} is wrong"

# %% 01.seed_loss | 2 points
# Catches: weights that are not section 4's recipe on the seed formula (another learning rate, step count, start, or
# the correct loss with a flipped sign somewhere else); scores from another model than the weights handed in; a
# reference other than the correct model's per-user AUC (e.g. popularity's).
import numpy as np
import torch
import torch.nn.functional as F

w_check = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
opt_check = torch.optim.SGD([w_check], lr=lr)
for _ in range(profile.logreg_steps):
    opt_check.zero_grad()
    z_check = torch.tensor(X) @ w_check
    torch.mean(torch.tensor(Y) * F.softplus(-z_check) - (1 - torch.tensor(Y)) * F.softplus(z_check)).backward()
    opt_check.step()
handed = np.asarray(answer["weights"].detach() if hasattr(answer["weights"], "detach") else answer["weights"], dtype=float)
assert np.allclose(handed, w_check.detach().numpy(), rtol=1e-6, atol=1e-8), \
    "the weights are not section 4b's training (zero start, SGD, the same lr and profile.logreg_steps) on the seed formula"
assert len(answer["losses"]) == profile.logreg_steps, f"keep the loss of each of the {profile.logreg_steps} steps"
rescored = metrics.evaluate_sampled(scorer(handed), test, negatives, per_user=True)["per_user"]["AUC"].to_numpy()
assert np.allclose(np.asarray(answer["per_user"]["AUC"], dtype=float), rescored), "per_user must come from scorer(weights) on the test users"
assert np.allclose(np.asarray(answer["reference"]["AUC"], dtype=float), results["hand-written GD"]["per_user"]["AUC"].to_numpy()), \
    "compare with the correct model: results['hand-written GD']['per_user']"
