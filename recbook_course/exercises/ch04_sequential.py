"""Checkers of notebook 04_sequential."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _rescored_comparison
from recbook_course.exercises.core import _exercise


@_exercise("04.causal_mask", "04_sequential", "Write causal_allowed(length): bool (length × length), True where position i may attend to j.")
def _causal_mask(fn):
    import torch

    for n in (1, 4, 7):
        got = torch.as_tensor(fn(n))
        want = torch.ones(n, n, dtype=torch.bool).tril()
        if got.shape != want.shape or got.dtype != torch.bool:
            return False, f"length {n}: expected a bool tensor of shape {tuple(want.shape)}, got {got.dtype} {tuple(got.shape)}."
        if not torch.equal(got, want):
            return False, f"length {n}: position i may see positions 0…i (itself and the past), never the future."
    return True, "the lower triangle: every position sees itself and the past — and never an empty row."


@_exercise("04.paired_ci", "04_sequential", "Write paired_difference_ci(a, b, n_boot, seed) → (mean, low, high) of a − b, bootstrap over users.")
def _paired_ci(fn):
    from recbook.evaluation.stats import paired_comparison

    rng = np.random.default_rng(7)
    base = rng.random(400)
    a, b = base + rng.normal(0.03, 0.05, 400), base
    mean, low, high = (float(x) for x in fn(a, b, 2000, 0))
    ref = paired_comparison(a, b, n_boot=4000, seed=1).diff
    if not np.isclose(mean, ref.mean):
        return False, f"the mean difference should be {ref.mean:.4f}, got {mean:.4f}."
    if not (np.isclose(low, ref.low, atol=0.004) and np.isclose(high, ref.high, atol=0.004)):
        return False, (f"expected an interval near [{ref.low:.4f}, {ref.high:.4f}], got [{low:.4f}, {high:.4f}] — resample user indices "
                       "once and apply them to the differences a − b.")
    return True, "pairing removes the variation both models share; the interval of the difference is what decides."


@_exercise("04.shuffled_history", "04_sequential", "Re-score SASRec on order-shuffled histories; report full NDCG@10 and whether it differs.")
def _shuffled_history(answer):
    from recbook.models.sequential import SequentialScorer

    if "scorer" in answer and not isinstance(answer["scorer"], SequentialScorer):
        return False, "pass a SequentialScorer built on the shuffled history."
    hint, c = _rescored_comparison(answer, "scorer", ("shuffled", "ordered"))
    if hint:
        return False, hint
    if abs(c.diff.mean) < 1e-12:
        return False, "your scorer gives exactly the ordered history's results: did the order change?"
    return True, f"shuffled − ordered: {c.diff} — {c.verdict}."
