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


@_exercise("05.constant_auc", "05_sequential_cold_start", "Write tie_aware_auc(positive, negatives): the share of negatives scored "
                                                            "below the held-out item's score, each tie counting one half.")
def _constant_auc(fn):
    from recbook.evaluation.metrics import per_user_metrics

    rng = np.random.default_rng(5)
    cases = [(0.0, rng.normal(size=9)), (0.0, np.zeros(99)), (1.0, np.r_[np.ones(30), rng.normal(size=19)]), (2.0, np.r_[2.0, 1.0, 3.0])]
    for positive, negatives in cases:
        scores = np.r_[positive, negatives][None, :]
        want = float(per_user_metrics(np.r_[1.0, np.zeros(len(negatives))][None, :], scores)["AUC"][0])
        got = float(fn(positive, np.asarray(negatives).copy()))
        if not _close(got, want):
            tied = int(np.sum(negatives == positive))
            return False, (f"score {positive} against {len(negatives)} negatives ({int(np.sum(negatives < positive))} below, {tied} tied): "
                           f"the AUC is {want:.4f}" + (" — a tie is a coin flip, so it counts one half" if tied else "") + f"; got {got:.4f}.")
    return True, ("a constant score ties every other new item: among cold items its AUC is exactly 0.5 — the value of knowing nothing, "
                  "not a model half right.")


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
