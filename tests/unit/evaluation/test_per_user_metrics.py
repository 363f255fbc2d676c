"""Per-user metrics: equal, row by row, to the tie-averaged metrics (and so to scikit-learn)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from recbook.evaluation import metrics as M
from recbook.evaluation.protocol import EvalSet, evaluate


def _one_positive(rows=40, cols=25, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(rows, cols)).astype(float)  # many ties
    y = np.zeros_like(scores)
    y[np.arange(rows), rng.integers(0, cols, rows)] = 1
    return y, scores


def test_per_user_equals_tie_averaged_metrics_and_sklearn():
    y, s = _one_positive()
    pu = M.per_user_metrics(y, s, k=5)
    for r in range(len(y)):
        assert pu["HR@5"][r] == pytest.approx(M.hit_rate_at_k(y[r : r + 1], s[r : r + 1], 5))
        assert pu["NDCG@5"][r] == pytest.approx(ndcg_score(y[r : r + 1], s[r : r + 1], k=5))
        assert pu["MRR"][r] == pytest.approx(M.mrr(y[r : r + 1], s[r : r + 1]))
        assert pu["AUC"][r] == pytest.approx(roc_auc_score(y[r], s[r]))
    assert pu["NDCG@5"].mean() == pytest.approx(M.ndcg_at_k(y, s, 5))


def test_per_user_with_mask_ignores_masked_candidates():
    y, s = _one_positive(seed=1)
    mask = np.random.default_rng(2).random(s.shape) > 0.4
    mask[y > 0] = True
    pu = M.per_user_metrics(y, s, 10, mask)
    assert pu["AUC"].mean() == pytest.approx(M.mean_auc(y, s, mask))
    shown = np.where(mask, s, -np.inf)
    assert pu["NDCG@10"].mean() == pytest.approx(M.ndcg_at_k(y, shown, 10))


def test_per_user_refuses_nan_and_several_positives():
    y, s = _one_positive()
    s[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.per_user_metrics(y, s)
    y2, s2 = _one_positive()
    y2[0, :] = 1
    with pytest.raises(ValueError, match="exactly one relevant"):
        M.per_user_metrics(y2, s2)


def test_evaluate_returns_per_user_frames_whose_means_are_the_metrics():
    rng = np.random.default_rng(0)
    items = np.arange(30)
    heldout = pd.DataFrame({"user_id": np.arange(12), "item_id": rng.integers(0, 30, 12)})
    history = pd.DataFrame({"user_id": np.repeat(np.arange(12), 3), "item_id": (np.arange(36) * 7) % 30})
    history = history[history["item_id"].to_numpy() != np.repeat(heldout["item_id"].to_numpy(), 3)]
    negatives = np.stack([rng.choice(np.setdiff1d(items, [h]), 9, replace=False) for h in heldout["item_id"]])
    table = rng.random((12, 30))
    score = lambda users, cand: table[users[:, None], cand]  # noqa: E731
    es = EvalSet("test", heldout, negatives, history, items)
    for protocol in ("sampled", "full"):
        res = evaluate(score, es, protocol, per_user=True)
        pu = res["per_user"]
        assert list(pu.index) == list(range(12)) and pu.index.name == "user_id"
        for key in ("HR@10", "NDCG@10", "MRR", "AUC"):
            assert pu[key].mean() == pytest.approx(res[key]), (protocol, key)
    assert "per_user" not in evaluate(score, es, "sampled")


def test_top_k_lists_and_beyond_accuracy():
    items = np.array([10, 11, 12, 13, 14])
    train = pd.DataFrame({"user_id": [1, 1, 2, 3, 3, 3], "item_id": [10, 11, 10, 10, 12, 11]})
    popularity = train["item_id"].value_counts().reindex(items, fill_value=0).to_numpy().astype(float)
    score = lambda users, cand: popularity[np.searchsorted(items, cand)]  # noqa: E731
    lists = M.top_k_lists(score, np.array([1, 2]), train, items, k=2)
    assert lists.tolist() == [[12, 13], [11, 12]]  # seen items excluded; ties keep catalogue order
    b = M.beyond_accuracy(lists, items, train, head_share=0.2)
    assert b["coverage"] == pytest.approx(3 / 5)
    assert b["ARP"] == pytest.approx(np.mean([1, 0, 2, 1]))
    assert b["head 20% share"] == 0.0  # item 10 (the head) was seen by both users
    with pytest.raises(ValueError, match="larger than the catalogue"):
        M.top_k_lists(score, np.array([1]), train, items, k=9)


def test_evaluate_models_scores_every_model_on_the_same_users():
    from recbook.evaluation.protocol import evaluate_models

    rng = np.random.default_rng(1)
    items = np.arange(20)
    heldout = pd.DataFrame({"user_id": np.arange(8), "item_id": rng.integers(0, 20, 8)})
    negatives = np.stack([rng.choice(np.setdiff1d(items, [h]), 5, replace=False) for h in heldout["item_id"]])
    es = EvalSet("test", heldout, negatives, heldout.iloc[:0], items)
    table = rng.random((8, 20))
    out = evaluate_models({"a": lambda u, c: table[u[:, None], c], "b": lambda u, c: -table[u[:, None], c]}, es, ("sampled", "full"))
    assert set(out) == {"sampled", "full"} and set(out["full"]) == {"a", "b"}
    assert (out["full"]["a"]["per_user"].index == out["full"]["b"]["per_user"].index).all()
