"""Checkers of notebook 05_sequential_cold_start."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.common import _lacks
from recbook_course.exercises.core import _close, _exercise


@_exercise("05.nearest_by_text", "05_sequential_cold_start", "Write nearest_by_text(vectors, query, k): the k most cosine-similar rows, query excluded.")
def _nearest_by_text(fn):
    rng = np.random.default_rng(3)
    v = rng.normal(size=(30, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for q, k in ((0, 3), (17, 5)):
        sims = v @ v[q]
        sims[q] = -np.inf
        want = np.argsort(-sims)[:k]
        got = np.asarray(fn(v.copy(), q, k))
        if q in got.tolist():
            return False, "exclude the query item itself (its similarity to itself is 1)."
        if got.tolist() != want.tolist():
            return False, f"query {q}, k={k}: expected rows {want.tolist()}, got {got.tolist()} — best first."
    return True, "for unit vectors the dot product is the cosine similarity."


@_exercise("05.constant_auc", "05_sequential_cold_start", "Write constant_score_auc(below, n): AUC of an item scored c against n negatives, `below` of them under c.")
def _constant_auc(fn):
    from recbook.evaluation.metrics import auc

    rng = np.random.default_rng(5)
    for n in (9, 99):
        neg = rng.normal(size=n)
        neg[np.isclose(neg, 0)] = 0.1
        below = int((neg < 0).sum())
        want = auc(np.r_[1.0, np.zeros(n)], np.r_[0.0, neg])
        if not _close(fn(below, n), want):
            return False, f"with {below} of {n} negatives below, the AUC is {want:.4f}: the share of negatives it beats."
    return True, "the AUC is the share of negatives the constant happens to beat — nothing about the item itself."


@_exercise("05.id_dropout_off", "05_sequential_cold_start", "Train the hybrid with id_dropout=0, measure its cold AUC, explain the change.")
def _id_dropout_off(answer):
    from recbook.evaluation.protocol import evaluate
    from recbook.models.sequential import SequentialScorer

    hint = _lacks(answer, ("model", "cold_auc", "why", "cold_set", "cold_history", "item_ids"))
    if hint:
        return False, hint
    cfg = answer["model"].config
    if cfg.item_features != "hybrid" or cfg.id_dropout != 0:
        return False, f"train SequentialConfig(item_features='hybrid', id_dropout=0.0); yours is {cfg.item_features!r}, id_dropout={cfg.id_dropout}."
    res = evaluate(SequentialScorer(answer["model"], answer["item_ids"], answer["cold_history"]), answer["cold_set"], "sampled")
    if not np.isclose(res["AUC"], answer["cold_auc"], atol=1e-6):
        return False, f"re-scoring your model on the cold users gives AUC {res['AUC']:.4f}, not {answer['cold_auc']:.4f}."
    if str(answer["why"]).strip().lower() != "a":
        return False, "the text embeddings are frozen and cold items never get an ID vector; think about which path the gradient trains."
    return True, (f"cold AUC {res['AUC']:.3f} without ID dropout. ID dropout exists to force the text path to rank on its own; "
                  "whether that matters on this data is what your paired interval says.")
