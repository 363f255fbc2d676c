"""Checkers of notebook 02_data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbook_course.exercises.common import _dict_with, _toy_interactions
from recbook_course.exercises.core import _close, _exercise


@_exercise("02.filter_users", "02_data", "Write keep_active(interactions, k) -> the rows of users with at least k interactions.")
def _filter_users(fn):
    inter = _toy_interactions(5)
    for k in (3, 8, 15):
        counts = inter.groupby("user_id")["user_id"].transform("size")
        expected = inter[counts >= k]
        got = fn(inter.copy(), k)
        if not isinstance(got, pd.DataFrame) or len(got) != len(expected) or set(got["user_id"]) != set(expected["user_id"]):
            return False, f"with k={k} expected {len(expected)} rows of {expected['user_id'].nunique()} users."
    return True, "right for k = 3, 8 and 15."


@_exercise("02.last_item", "02_data", "Write last_item(interactions) -> {user_id: item_id of that user's most recent interaction}.")
def _last_item(fn):
    from recbook.data import leave_last_out

    inter = _toy_interactions(6)
    expected = dict(zip(*leave_last_out(inter, drop_short_users=True).test[["user_id", "item_id"]].to_numpy().T))
    got = fn(inter.copy())
    got = {int(k): int(v) for k, v in dict(got).items() if int(k) in expected}
    wrong = [u for u in expected if got.get(int(u)) != int(expected[u])]
    if wrong:
        return False, f"{len(wrong)} user(s) wrong, e.g. user {wrong[0]}: sort by timestamp within each user, then take the last."
    return True, "this is exactly the test item of leave_last_out."


@_exercise("02.popularity_probs", "02_data", "Write pop_probs(interactions, item_ids) -> sampling probabilities ∝ (count + 1), aligned with item_ids.")
def _popularity_probs(fn):
    inter = _toy_interactions(7)
    item_ids = np.arange(1, 61)
    counts = inter["item_id"].value_counts().reindex(item_ids, fill_value=0).to_numpy() + 1.0
    got = np.asarray(fn(inter.copy(), item_ids), dtype=float)
    if got.shape != item_ids.shape:
        return False, f"return one probability per item id: shape {item_ids.shape}, got {got.shape}."
    if not _close(got.sum(), 1.0):
        return False, "probabilities must sum to 1."
    if not _close(got, counts / counts.sum()):
        return False, "count interactions per item (items with none count 0), add 1, divide by the total."
    return True, "these are the weights sample_negatives(strategy='popularity') uses (before removing a user's positives)."


@_exercise("02.negatives_protocol", "02_data",
           "Score the test users' held-out items with the popularity model (training counts) against evaluation negatives "
           "drawn uniformly and drawn by popularity; compare per-user AUC paired (uniform − popularity) and say whether "
           "uniform negatives give a 'higher', 'lower' AUC or whether the difference is 'not shown'.")
def _negatives_protocol(answer):
    import pandas as pd

    from recbook.evaluation.stats import interval_verdict, paired_comparison

    hint = _dict_with(answer, ("negatives", "per_user_auc", "diff_low", "diff_high", "verdict"),
                      "negatives, per_user_auc (each {'uniform': …, 'popularity': …}), diff_low, diff_high, verdict")
    if hint:
        return False, hint
    for key in ("negatives", "per_user_auc"):
        if not isinstance(answer[key], dict) or set(answer[key]) != {"uniform", "popularity"}:
            return False, f"answer[{key!r}] must map 'uniform' and 'popularity' to your two runs."
    shapes = {k: np.shape(v) for k, v in answer["negatives"].items()}
    if shapes["uniform"] != shapes["popularity"] or len(shapes["uniform"]) != 2:
        return False, f"draw the same number of negatives per user with both strategies (shapes {shapes})."
    uniform, popular = (pd.Series(answer["per_user_auc"][k]) for k in ("uniform", "popularity"))
    if not uniform.index.equals(popular.index) or len(uniform) != shapes["uniform"][0]:
        return False, "score the same test users with both strategies (one per-user AUC per row of the negatives)."
    if not ((uniform.between(0, 1)).all() and popular.between(0, 1).all()):
        return False, "per-user AUC lies in [0, 1]: pass metrics.evaluate_sampled(..., per_user=True)['per_user']['AUC']."
    ref = paired_comparison(uniform, popular, ("uniform", "popularity"))
    low, high = float(answer["diff_low"]), float(answer["diff_high"])
    if not low <= ref.diff.mean <= high:
        return False, (f"your interval [{low:+.4f}, {high:+.4f}] does not hold the mean paired difference {ref.diff.mean:+.4f}: "
                       "compare uniform minus popularity, user by user.")
    want = interval_verdict(low, high)
    if answer["verdict"] != want:
        return False, (f"from your interval [{low:+.4f}, {high:+.4f}] the verdict is {want!r}: 'higher' needs the whole interval "
                       "above 0, 'lower' below it; an interval that holds 0 shows no difference.")
    meaning = {"higher": "held-out items are more popular than a typical item, so popularity ranks them above uniform (typical) "
                         "negatives; popularity-sampled negatives are the hard ones. The same model, a different score: a number means nothing without its protocol",
               "lower": "here popularity-sampled negatives were the easier ones — check which items your two samplers drew",
               "not shown": "on these users the two protocols did not differ measurably"}[want]
    return True, (f"popularity's AUC: {uniform.mean():.3f} with uniform negatives, {popular.mean():.3f} with popularity-sampled ones "
                  f"({ref.diff.mean:+.3f} [{low:+.3f}, {high:+.3f}]) → {want}: {meaning}.")
