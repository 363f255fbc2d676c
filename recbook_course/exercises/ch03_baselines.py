"""Checkers of notebook 03_baselines."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _toy_interactions
from recbook_course.exercises.core import _close, _exercise


@_exercise("03.random_hit_rate", "03_baselines", "Write random_hit_rate(k, n): expected HR@k of random scores with n sampled negatives.")
def _random_hit_rate(fn):
    for k, n in ((10, 99), (1, 99), (5, 9), (20, 9), (10, 1000)):
        expected = min(k, n + 1) / (n + 1)
        got = float(fn(k, n))
        if not _close(got, expected):
            return False, f"for k={k}, n={n} you returned {got:.4f}; there are n + 1 candidates and k slots."
    return True, "k / (n + 1): 10% with 99 negatives — that is the floor every sampled HR@10 sits on."


@_exercise("03.popularity_scores", "03_baselines", "Write popularity_scores(train, users, items) -> interaction counts, shape items.shape.")
def _popularity_scores(fn):
    from recbook.models.popularity import Popularity

    inter = _toy_interactions(8)
    rng = np.random.default_rng(0)
    items = rng.integers(1, 70, size=(5, 12))  # ids above 60 are unknown items
    users = np.arange(1, 6)
    expected = Popularity().fit_interactions(inter, np.arange(1, 70)).scorer(inter)(users, items)
    got = np.asarray(fn(inter.copy(), users, items), dtype=float)
    if got.shape != items.shape:
        return False, f"return one score per candidate: shape {items.shape}, got {got.shape}."
    if not _close(got, expected):
        return False, "count each item's rows in train (value_counts), 0 for items never seen."
    return True, "the same scores as recbook.models.popularity.Popularity."


@_exercise("03.item_cosine", "03_baselines", "Write cosine_item_similarity(X) for a binary user × item matrix.")
def _item_cosine(fn):
    rng = np.random.default_rng(4)
    X = (rng.random((30, 12)) < 0.3).astype(float)
    X[:, 5] = 0  # an item nobody has
    co = X.T @ X
    n = np.sqrt(np.diag(co))
    denom = np.outer(n, n)
    expected = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
    np.fill_diagonal(expected, 0)
    got = np.asarray(fn(X.copy()), dtype=float)
    if got.shape != expected.shape:
        return False, f"the result is item × item: shape {expected.shape}, got {got.shape}."
    if not np.isfinite(got).all():
        return False, "an item nobody interacted with must get similarity 0, not NaN."
    if not _close(got, expected):
        return False, "c_ij = (X.T @ X)[i, j]; divide by sqrt(n_i · n_j) and zero the diagonal."
    return True, "this is ItemKNN's similarity with shrink=0 and all neighbours kept."


@_exercise("03.knn_neighbours", "03_baselines", "Refit item-kNN with 10 neighbours instead of 100; report its full NDCG@10 and "
           "whether the paired interval against 100 neighbours excludes zero.")
def _knn_neighbours(answer):
    from recbook.models.itemknn import ItemKNN
    from recbook_course.exercises.common import _rescored_comparison

    if not isinstance(answer, dict):
        return False, "pass a dict with your scorer, its full-ranking NDCG@10 and whether the difference is significant."
    model = getattr(answer.get("scorer"), "model", None)
    if not isinstance(model, ItemKNN):
        return False, "pass an item-kNN's scorer: ItemKNN(neighbours=10, shrink=10.0).fit_interactions(history, item_ids).scorer(history)."
    if model.config.neighbours != 10 or model.config.shrink != 10.0:
        return False, (f"your item-kNN has neighbours={model.config.neighbours}, shrink={model.config.shrink}: change one knob at a "
                       "time — neighbours=10, shrink as in the notebook (10.0) — or the difference has two causes.")
    hint, c = _rescored_comparison(answer, "item-kNN", ("10 neighbours", "100 neighbours"))
    if hint:
        return False, hint
    return True, (f"10 − 100 neighbours: {c.diff} — {c.verdict}. A candidate's score sums its similarity to the history's items, "
                  "but each item keeps only its nearest neighbours: fewer neighbours drop the weak co-occurrences (possibly "
                  "noise) and also the only links a rarely watched item may have.")
