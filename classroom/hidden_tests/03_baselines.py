"""Hidden tests for notebooks/03_baselines.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 03.random_hit_rate | 1 point
# Catches: k above the number of candidates (at most n + 1 can be hit), no negatives at all, integer division.
import numpy as np

for k, n in ((1, 0), (3, 4), (7, 2), (50, 49), (100, 1999), (2, 3)):
    want = min(k, n + 1) / (n + 1)
    got = float(random_hit_rate(k, n))
    assert np.isclose(got, want), f"random_hit_rate({k}, {n}) should be {want:.4f}, got {got:.4f}"

# %% 03.popularity_scores | 1 point
# Catches: ids used as positions (np.bincount with a fixed length, counts.to_numpy()[items]); ids above those the
# self-check draws; one-column or one-row candidate arrays.
import numpy as np

from recbook.data import make_synthetic

inter = make_synthetic(seed=31, n_users=40, n_items=80, mean_interactions=8, min_interactions=2).interactions
counts = inter["item_id"].value_counts()
rng = np.random.default_rng(31)
for shape in ((4, 7), (1, 1), (3, 1)):
    items = rng.integers(1, 120, size=shape)  # ids above 80 are unknown items
    users = rng.integers(1, 41, size=shape[0])
    want = counts.reindex(items.ravel(), fill_value=0).to_numpy().reshape(items.shape).astype(float)
    got = np.asarray(popularity_scores(inter.copy(), users, items), dtype=float)
    assert got.shape == items.shape, f"one score per candidate: shape {items.shape}, got {got.shape}"
    assert np.allclose(got, want), "a candidate's score is its number of training interactions (0 for an item never seen)"

# %% 03.item_cosine | 1 point
# Catches: an asymmetric result, a kept diagonal, NaN for several empty items at once; identical items must be 1.
import numpy as np

rng = np.random.default_rng(33)
X = (rng.random((50, 20)) < 0.2).astype(float)
X[:, [3, 11]] = 0  # two items nobody has
X[:, 7] = X[:, 2]  # two items with the same users
X[0, 2] = X[0, 7] = 1.0
co = X.T @ X
norms = np.sqrt(np.diag(co))
denom = np.outer(norms, norms)
want = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
np.fill_diagonal(want, 0)
got = np.asarray(cosine_item_similarity(X.copy()), dtype=float)
assert got.shape == (20, 20) and np.isfinite(got).all(), "an item × item matrix, 0 (not NaN) for items nobody has"
assert np.allclose(got, got.T), "cosine similarity is symmetric"
assert np.allclose(np.diag(got), 0), "zero the diagonal: an item is not its own neighbour"
assert np.isclose(got[2, 7], 1.0), "two items with exactly the same users have similarity 1"
assert np.allclose(got, want)
assert np.allclose(np.asarray(cosine_item_similarity(np.zeros((4, 3))), dtype=float), 0), "with no interactions at all every similarity is 0"

# %% 03.knn_neighbours | 2 points
# Catches: item-kNN fitted on all interactions (the test items leak into the similarities) or on the other data set,
# scored on another history than the test users' visible one, or a significance verdict from another comparison.
import numpy as np

from recbook.evaluation.stats import paired_comparison
from recbook.models.itemknn import ItemKNN

scorer = answer["scorer"]
name = next(key for key in ("movielens-100k", "synthetic") if key in datasets)  # the data set the exercise names
es = eval_sets[name]
assert scorer.history.equals(es.history), "score with the history the test users have (eval_sets[name].history), as section 2 does"
fresh = ItemKNN(neighbours=10, shrink=10.0).fit_interactions(es.history, datasets[name].item_ids)
assert np.array_equal(scorer.model.item_ids, fresh.item_ids) and np.allclose(scorer.model.similarity, fresh.similarity), (
    "fit item-kNN on the visible history only (eval_sets[name].history): fitting on all interactions lets the test items in")
mine = evaluate(scorer, es, "full", per_user=True)
assert np.isclose(mine["NDCG@10"], answer["ndcg_full"]), "ndcg_full is the full-ranking NDCG@10 of your scorer on eval_sets[name]"
verdict = paired_comparison(mine["per_user"]["NDCG@10"], per_user[(name, "full")]["item-kNN"]["NDCG@10"]).significant
assert bool(answer["significant"]) == verdict, "significant: does the paired interval of 10 − 100 neighbours exclude zero?"
