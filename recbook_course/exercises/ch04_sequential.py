"""Checkers of notebook 04_sequential."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _rescored_comparison
from recbook_course.exercises.core import _exercise


@_exercise("04.causal_mask", "04_sequential", "Write causal_allowed(seq): for one left-padded sequence (0 = padding), the bool "
                                               "(length × length) mask, True where position i may attend to j.")
def _causal_mask(fn):
    import torch

    from recbook.models.sequential import attention_allowed

    cases = [torch.tensor([0, 0, 5, 3, 9]), torch.tensor([4, 1, 7]), torch.tensor([0, 0, 0, 0, 2, 6, 1]), torch.tensor([8])]
    for seq in cases:
        n = len(seq)
        got = torch.as_tensor(fn(seq.clone()))
        want = attention_allowed(seq[None], "causal")[0]
        if got.shape != want.shape or got.dtype != torch.bool:
            return False, f"seq {seq.tolist()}: expected a bool tensor of shape {tuple(want.shape)}, got {got.dtype} {tuple(got.shape)}."
        if torch.equal(got, want):
            continue
        if (~got.any(dim=1)).any():
            return False, (f"seq {seq.tolist()}: row {int((~got.any(dim=1)).nonzero()[0])} allows no key at all — softmax over an empty set "
                           "is 0/0 = NaN (section 1's trap); let every position attend to itself.")
        if (got & ~torch.ones(n, n, dtype=torch.bool).tril()).any():
            return False, f"seq {seq.tolist()}: a position sees the future; position i may see positions 0…i only."
        padding_keys = (seq == 0)[None, :] & ~torch.eye(n, dtype=torch.bool)
        if (got & padding_keys).any():
            return False, f"seq {seq.tolist()}: padding positions are keys here; hide every padding column (except the diagonal)."
        return False, f"seq {seq.tolist()}: differs from the mask the model uses (recbook.models.sequential.attention_allowed)."
    return True, "real items at or before each position, and itself: no empty row, no future, no padding — the model's own mask."


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
