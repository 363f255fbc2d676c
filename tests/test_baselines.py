import numpy as np
import pandas as pd
import pytest

from recbook import metrics
from recbook.data import leave_last_out
from recbook.models.baselines import BASELINES, ItemKNN, MatrixFactorization, Popularity


@pytest.fixture(scope="module")
def fitted(synthetic):
    sp = leave_last_out(synthetic.interactions)
    hist = pd.concat([sp.train, sp.valid])
    return synthetic, sp, hist


def test_popularity_counts(fitted):
    ds, sp, hist = fitted
    pop = Popularity().fit(hist, ds.item_ids)
    items = ds.item_ids[:5][None, :].repeat(2, axis=0)
    expected = hist["item_id"].value_counts().reindex(ds.item_ids[:5], fill_value=0).to_numpy()
    np.testing.assert_array_equal(pop.score(np.array([1, 2]), items), np.stack([expected, expected]))
    assert pop.score(np.array([1]), np.array([[10_000]]))[0, 0] == 0.0  # unknown item


def test_itemknn_matches_cosine_by_hand(fitted):
    ds, sp, hist = fitted
    knn = ItemKNN(neighbours=len(ds.item_ids), shrink=0.0).fit(hist, ds.item_ids)
    X = pd.crosstab(hist.user_id, hist.item_id).reindex(columns=ds.item_ids, fill_value=0).clip(upper=1).to_numpy(float)
    co = X.T @ X
    n = np.sqrt(np.diag(co))
    sim = co / (np.outer(n, n) + 1e-12)
    np.fill_diagonal(sim, 0)
    np.testing.assert_allclose(knn.similarity, sim, atol=1e-10)
    users = np.array(sorted(hist.user_id.unique())[:3])
    full = X[:3] @ sim
    np.testing.assert_allclose(knn.score(users, np.broadcast_to(ds.item_ids, (3, len(ds.item_ids)))), full, atol=1e-10)
    # top-k neighbours keep at most k non-zeros per column
    sparse = ItemKNN(neighbours=5, shrink=0.0).fit(hist, ds.item_ids)
    assert ((sparse.similarity > 0).sum(axis=0) <= 6).all()


def test_baselines_beat_random_and_rank_sensibly(fitted):
    ds, sp, hist = fitted
    from recbook.data import sample_negatives

    neg = sample_negatives(sp.test.user_id, ds.interactions, ds.item_ids, 30, seed=0)
    random = metrics.evaluate_sampled(lambda u, i: np.zeros(i.shape), sp.test, neg)
    results = {}
    for name, cls in BASELINES.items():
        model = cls(epochs=15) if name == "mf" else cls()
        results[name] = metrics.evaluate_sampled(model.fit(hist, ds.item_ids).score, sp.test, neg)
        assert results[name]["AUC"] > random["AUC"] + 0.1, name
    assert results["itemknn"]["NDCG@10"] > results["pop"]["NDCG@10"]


def test_mf_bpr_loss_decreases_and_scores_shape(fitted):
    ds, sp, hist = fitted
    mf = MatrixFactorization(dim=16, epochs=5, seed=1).fit(hist, ds.item_ids)
    losses = [h["loss"] for h in mf.history_ if "loss" in h]
    assert losses[-1] < losses[0]
    s = mf.score(np.array([1, 99_999]), np.array([[1, 2, 3], [1, 2, 3]]))
    assert s.shape == (2, 3) and np.isfinite(s).all()
    again = MatrixFactorization(dim=16, epochs=5, seed=1).fit(hist, ds.item_ids)
    np.testing.assert_allclose(again.score(np.array([1]), np.array([[1, 2, 3]])), mf.score(np.array([1]), np.array([[1, 2, 3]])), rtol=1e-5)


def test_baseline_errors(fitted):
    ds, sp, hist = fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().score(np.array([1]), np.array([[1]]))
    with pytest.raises(ValueError, match="item_id"):
        Popularity().fit(hist.rename(columns={"item_id": "movie"}), ds.item_ids)
    with pytest.raises(ValueError, match="empty"):
        ItemKNN().fit(hist.iloc[:0], ds.item_ids)
    with pytest.raises(ValueError, match="not in item_ids"):
        Popularity().fit(hist, ds.item_ids[:3])
    with pytest.raises(ValueError):
        ItemKNN(neighbours=0)
