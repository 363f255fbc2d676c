"""Checkers of notebook 09_lm_recommender."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _rescored_comparison
from recbook_course.exercises.core import _exercise


@_exercise("09.untrained_floor", "09_lm_recommender",
           "Write floor_untrained(scores, trained): a copy of scores (users × items) where every item not trained on scores "
           "1 below the lowest trained item of its row.")
def _untrained_floor(fn):
    rng = np.random.default_rng(14)
    for n_users, n_items in ((3, 8), (5, 30)):
        scores = rng.normal(size=(n_users, n_items)) - 2.0  # mostly below 0: an untrained item left at 0 would rank first
        trained = rng.random(n_items) < 0.7
        trained[0], trained[-1] = True, False
        before = scores.copy()
        got = np.asarray(fn(scores, trained), dtype=float)
        if not np.array_equal(scores, before):
            return False, "return a copy: do not change the scores you were given."
        if got.shape != scores.shape:
            return False, f"expected shape {scores.shape}, got {got.shape}."
        if not np.allclose(got[:, trained], scores[:, trained]):
            return False, "leave the trained items' scores as they are."
        want = scores[:, trained].min(axis=1) - 1.0
        if not np.allclose(got[:, ~trained], want[:, None]):
            return False, "each row's untrained items: the row's lowest *trained* score minus 1 (per row, not over the matrix)."
    return True, ("an item without a trained vector now ranks below every trained one: with a zero vector it scored 0, "
                  "above every trained item whose score is negative.")


@_exercise("09.content_scores", "09_lm_recommender",
           "Write content_scores(vectors, history, n_recent): each item's cosine to the mean vector of the user's n_recent "
           "latest history items (vectors are L2-normalised rows; history lists catalogue rows, oldest first).")
def _content_scores(fn):
    rng = np.random.default_rng(15)
    vectors = rng.normal(size=(12, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for history, n in (([0, 3, 5, 7], 2), ([4], 3), ([1, 2, 3, 4, 5], 5)):
        mean = vectors[history[-n:]].mean(axis=0)
        want = vectors @ (mean / np.linalg.norm(mean))
        got = np.asarray(fn(vectors.copy(), list(history), n), dtype=float).ravel()
        if got.shape != want.shape:
            return False, f"one score per catalogue item: expected {want.shape}, got {got.shape}."
        if not np.allclose(got, want, atol=1e-6):
            if np.allclose(got, vectors @ vectors[history].mean(axis=0) / np.linalg.norm(vectors[history].mean(axis=0)), atol=1e-6):
                return False, f"use only the {n} most recent items (the end of the history), not all of them."
            return False, "average the recent items' vectors, normalise the mean, then take dot products (cosines)."
    return True, "the content-only baseline: what text alone knows about a user's next item."


@_exercise("09.freezing_variant", "09_lm_recommender",
           "Run the content-only model with the frozen encoder's vectors; give its full-ranking NDCG@10 and whether its "
           "paired interval against the fine-tuned text model excludes zero.")
def _freezing_variant(answer):
    hint, c = _rescored_comparison(answer, "variant", ("variant", "fine-tuned"))
    if hint:
        return False, hint
    return True, f"variant − fine-tuned: {c.diff} — {c.verdict}."
