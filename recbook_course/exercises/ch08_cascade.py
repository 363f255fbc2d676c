"""Checkers of notebook 08_cascade."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _rescored_comparison
from recbook_course.exercises.core import _exercise


@_exercise("08.hard_negatives", "08_cascade", "Write hard_negatives(scores, seen, positive, k): the k best-scored columns, not seen and not the positive, best first.")
def _hard_negatives(fn):
    rng = np.random.default_rng(11)
    for n, k in ((30, 5), (12, 3)):
        scores = rng.permutation(n).astype(float)
        seen = rng.choice(n, n // 3, replace=False)
        positive = int(np.setdiff1d(np.arange(n), seen)[0])
        order = np.argsort(-scores)
        want = [int(c) for c in order if c not in set(seen.tolist()) | {positive}][:k]
        got = [int(c) for c in np.asarray(fn(scores.copy(), seen.copy(), positive, k)).ravel()]
        if positive in got:
            return False, "the true next item is a positive: never return it as a negative."
        if set(got) & set(seen.tolist()):
            return False, "leave out the user's training items: they are positives too."
        if got != want:
            return False, f"n={n}, k={k}: expected columns {want} (highest scores first), got {got}."
    return True, "the retriever's favourites that the user did not pick: the confusions a re-ranker has to resolve."


@_exercise("08.oracle_ndcg", "08_cascade", "Write oracle_cascade_ndcg(ranks, top_n, k): NDCG@k of a perfect re-ranker of a retriever's top_n.")
def _oracle_ndcg(fn):
    rng = np.random.default_rng(12)
    ranks = rng.integers(1, 60, size=300).astype(float)

    def want(r, top_n, k):
        gain = np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)  # outside the top-N the item keeps the retriever's rank
        return float(np.where(r <= top_n, 1.0, gain).mean())

    for top_n, k in ((20, 10), (5, 10), (1, 10), (50, 5)):
        got = float(fn(ranks.copy(), top_n, k))
        if not np.isclose(got, want(ranks, top_n, k)):
            hint = " Items below the top-N keep their rank — they may still count when N < k." if top_n < k else ""
            return False, f"top_n={top_n}, k={k}: expected {want(ranks, top_n, k):.4f}, got {got:.4f}.{hint}"
    return True, "a re-ranker can only reorder what the retriever found: the retriever's recall@N caps the cascade."


@_exercise("08.rank_fusion", "08_cascade", "Build a cascade that orders the top-N by retriever rank + re-ranker rank; measure it against the retriever.")
def _rank_fusion(answer):
    hint, c = _rescored_comparison(answer, "cascade", ("rank fusion", "retriever"))
    if hint:
        return False, hint
    return True, f"rank fusion − retriever: {c.diff} — {c.verdict}."
