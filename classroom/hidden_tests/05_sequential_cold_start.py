"""Hidden tests for notebooks/05_sequential_cold_start.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 05.nearest_by_text | 1 point
# Catches: changing the caller's vectors (e.g. zeroing the query row to exclude it); k = 1 and k = every other item.
import numpy as np

rng = np.random.default_rng(48)
v = rng.normal(size=(50, 12))
v /= np.linalg.norm(v, axis=1, keepdims=True)
before = v.copy()
for q, k in ((0, 1), (49, 49), (20, 10)):
    sims = before @ before[q]
    sims[q] = -np.inf
    want = np.argsort(-sims)[:k].tolist()
    got = [int(i) for i in np.asarray(nearest_by_text(v, q, k)).ravel()]
    assert got == want, f"query {q}, k={k}: expected rows {want[:5]}…, got {got[:5]}…"
    assert np.array_equal(v, before), "nearest_by_text must not modify the vectors it is given"

# %% 05.constant_auc | 1 point
# Catches: ties counted as wins or as losses (1 or 0 for a constant score among equals, instead of 0.5); changing the
# caller's array; the edges — all below, all above, a single negative; integer arithmetic.
import numpy as np

for positive, negatives in ((0.5, [0.5] * 7), (1.0, [0.0, 0.2]), (-1.0, [0.0, 0.2]), (3.0, [3.0]), (2.0, [1, 2, 2, 3, 5])):
    arr = np.asarray(negatives, dtype=float)
    before = arr.copy()
    got = float(tie_aware_auc(positive, arr))
    want = float(np.mean((before < positive) + 0.5 * (before == positive)))
    assert np.isclose(got, want), f"tie_aware_auc({positive}, {negatives}) should be {want:.4f}, got {got:.4f}"
    assert np.array_equal(arr, before), "tie_aware_auc changed the negatives it was given"

# %% 05.id_dropout_off | 2 points
# Catches: an uncontrolled comparison — retraining with other settings besides id_dropout (size, objective, …) —
# and handing in the ID-dropout model itself.
import dataclasses

import numpy as np

reference = fits["hybrid"].model
assert answer["model"] is not reference, "train a new model with id_dropout=0: this is the notebook's ID-dropout model"
want = dataclasses.replace(reference.config, id_dropout=0.0)
assert answer["model"].config == want, (f"change only id_dropout: expected {want}, got {answer['model'].config}")
assert 0.0 <= float(answer["cold_auc"]) <= 1.0 and np.isfinite(float(answer["cold_auc"]))
