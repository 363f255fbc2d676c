import numpy as np
import pandas as pd
import pytest

from recbook.data import leave_last_out
from recbook.errors import ConfigError
from recbook.evaluation import metrics
from recbook.models import create
from recbook.models.base import Histories
from recbook.models.ease import EASE
from recbook.models.itemknn import ItemKNN
from recbook.models.mf import MatrixFactorization
from recbook.models.popularity import Popularity


@pytest.fixture(scope="module")
def fitted(synthetic):
    sp = leave_last_out(synthetic.interactions)
    hist = pd.concat([sp.train, sp.valid])
    return synthetic, sp, hist


def _binary(hist, item_ids):
    return pd.crosstab(hist.user_id, hist.item_id).reindex(columns=item_ids, fill_value=0).clip(upper=1).to_numpy(float)


def test_popularity_counts(fitted):
    ds, sp, hist = fitted
    pop = Popularity().fit_interactions(hist, ds.item_ids)
    items = ds.item_ids[:5][None, :].repeat(2, axis=0)
    expected = hist["item_id"].value_counts().reindex(ds.item_ids[:5], fill_value=0).to_numpy()
    scorer = pop.scorer(hist)
    np.testing.assert_array_equal(scorer(np.array([1, 2]), items), np.stack([expected, expected]))
    assert scorer(np.array([1]), np.array([[10_000]]))[0, 0] < pop.counts.min()  # an unknown item: below every known one


def test_itemknn_matches_cosine_by_hand(fitted):
    ds, sp, hist = fitted
    knn = ItemKNN(neighbours=len(ds.item_ids), shrink=0.0).fit_interactions(hist, ds.item_ids)
    X = _binary(hist, ds.item_ids)
    co = X.T @ X
    n = np.sqrt(np.diag(co))
    sim = co / (np.outer(n, n) + 1e-12)
    np.fill_diagonal(sim, 0)
    np.testing.assert_allclose(knn.similarity, sim, atol=1e-10)
    users = np.array(sorted(hist.user_id.unique())[:3])
    np.testing.assert_allclose(knn.score_all(Histories.from_interactions(hist, users)), X[:3] @ sim, atol=1e-10)
    # top-k neighbours keep at most k non-zeros per column
    sparse = ItemKNN(neighbours=5, shrink=0.0).fit_interactions(hist, ds.item_ids)
    assert ((sparse.similarity > 0).sum(axis=0) <= 6).all()


def test_ease_matches_per_item_ridge_regression(fitted):
    """EASE's closed form equals, column by column, a ridge regression (scikit-learn) of item j on every other item."""
    from sklearn.linear_model import Ridge

    ds, sp, hist = fitted
    ease = EASE(l2=50.0).fit_interactions(hist, ds.item_ids)
    X = _binary(hist, ds.item_ids)
    assert np.allclose(np.diag(ease.weights), 0)
    for j in (0, 7, len(ds.item_ids) - 1):
        others = np.delete(np.arange(X.shape[1]), j)
        ridge = Ridge(alpha=50.0, fit_intercept=False).fit(X[:, others], X[:, j])
        np.testing.assert_allclose(np.delete(ease.weights[:, j], j), ridge.coef_, atol=1e-4)
    with pytest.raises(ConfigError, match="l2"):
        EASE(l2=0)


def test_baselines_beat_random_and_rank_sensibly(fitted):
    ds, sp, hist = fitted
    from recbook.data import sample_negatives

    neg = sample_negatives(sp.test.user_id, ds.interactions, ds.item_ids, 30, seed=0)
    random = metrics.evaluate_sampled(lambda u, i: np.zeros(i.shape), sp.test, neg)
    results = {}
    for name in ("pop", "itemknn", "mf", "ease"):
        model = create(name, epochs=15) if name == "mf" else create(name)
        results[name] = metrics.evaluate_sampled(model.fit(ds, sp).scorer(hist), sp.test, neg)
        assert results[name]["AUC"] > random["AUC"] + 0.1, name
    assert results["itemknn"]["NDCG@10"] > results["pop"]["NDCG@10"]
    assert results["ease"]["NDCG@10"] > results["pop"]["NDCG@10"]


def test_mf_bpr_loss_decreases_and_scores_unknown_users_by_bias(fitted):
    ds, sp, hist = fitted
    mf = MatrixFactorization(dim=16, epochs=5, seed=1).fit_interactions(hist, ds.item_ids)
    losses = [h["loss"] for h in mf.history_ if "loss" in h]
    assert losses[-1] < losses[0]
    s = mf.score(Histories(np.array([1, 99_999]), [[], []]), np.array([[1, 2, 3], [1, 2, 3]]))
    assert s.shape == (2, 3) and np.isfinite(s).all()
    np.testing.assert_allclose(s[1], mf.network.item_bias.detach().numpy()[mf.item_columns([1, 2, 3])])
    again = MatrixFactorization(dim=16, epochs=5, seed=1).fit_interactions(hist, ds.item_ids)
    h = Histories(np.array([1]), [[]])
    np.testing.assert_allclose(again.score(h, np.array([[1, 2, 3]])), mf.score(h, np.array([[1, 2, 3]])), rtol=1e-5)


def test_baseline_errors(fitted):
    ds, sp, hist = fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().score(Histories(np.array([1]), [[]]), np.array([[1]]))
    with pytest.raises(ValueError, match="item_id"):
        Popularity().fit_interactions(hist.rename(columns={"item_id": "movie"}), ds.item_ids)
    with pytest.raises(ValueError, match="empty"):
        ItemKNN().fit_interactions(hist.iloc[:0], ds.item_ids)
    with pytest.raises(ValueError, match="not in item_ids"):
        Popularity().fit_interactions(hist, ds.item_ids[:3])
    with pytest.raises(ConfigError, match="neighbours") as info:
        ItemKNN(neighbours=0)
    assert info.value.field == "neighbours"
    with pytest.raises(ConfigError, match="no field 'dimension'"):
        MatrixFactorization(dimension=8)


def test_tune_chooses_on_validation_never_on_test(fitted):
    """tune() judges settings on the validation items (Split.for_tuning), so changing the test items changes nothing."""
    from recbook.data.splits import Split
    from recbook.models.tuning import tune

    ds, sp, hist = fitted
    tuned = tune("ease", ds, sp, {"l2": [1.0, 50.0, 5000.0]})
    assert len(tuned.table) == 3 and tuned.best["l2"] in (1.0, 50.0, 5000.0)
    knn = tune("itemknn", ds, sp, {"neighbours": [5, 20], "shrink": [0.0]})
    assert isinstance(knn.best["neighbours"], int)  # the grid's own values, not a table row's floats
    create("itemknn", **knn.best)
    assert tuned.score == tuned.table["NDCG@10"].max()
    scrambled = Split(sp.train, sp.valid, sp.test.assign(item_id=sp.test["item_id"].sample(frac=1, random_state=0).to_numpy()))
    assert tune("ease", ds, scrambled, {"l2": [1.0, 50.0, 5000.0]}).table.equals(tuned.table)
    tuning = sp.for_tuning()
    assert set(map(tuple, tuning.test[["user_id", "item_id"]].to_numpy())) <= set(map(tuple, sp.valid[["user_id", "item_id"]].to_numpy()))
    with pytest.raises(ValueError, match="grid"):
        tune("ease", ds, sp, {"l2": []})


def test_tune_fits_every_setting_at_the_model_seed_it_is_given(fitted, tiny_profile):
    """A seeded model is tuned at ``model_seed``: its table is then the validation score of that seed's fits."""
    from recbook.evaluation.protocol import evaluate, make_eval_set
    from recbook.models.tuning import tune

    ds, sp, _ = fitted
    grid = {"dim": [4], "epochs": [2]}
    seeded = [tune("mf", ds, sp, grid, profile=tiny_profile, model_seed=s).score for s in (0, 1, 1)]
    assert seeded[1] == seeded[2] and seeded[0] != seeded[1]  # the seed reaches the fits, and is the only change
    tuning = sp.for_tuning()
    direct = create("mf", tiny_profile, seed=1, dim=4, epochs=2).fit(ds, tuning)
    eval_set = make_eval_set(ds, tuning, "test", 1)
    assert evaluate(direct.scorer(eval_set.history), eval_set, "full")["NDCG@10"] == pytest.approx(seeded[1])
    assert tune("mf", ds, sp, grid, profile=tiny_profile, model_seed=1).model_seed == 1
    default = tune("mf", ds, sp, grid, profile=tiny_profile)  # no model_seed: the model's default seed (0), as before
    assert default.model_seed is None and default.score == seeded[0]
    with pytest.raises(ValueError, match="either as model_seed or in the grid"):
        tune("mf", ds, sp, {"seed": [0, 1]}, profile=tiny_profile, model_seed=1)
