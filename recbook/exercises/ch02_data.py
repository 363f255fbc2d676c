"""Checkers of notebook 02_data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .common import _toy_interactions
from .core import _close, _exercise


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
    from ..data import leave_last_out

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
