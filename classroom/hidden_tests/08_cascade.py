"""Hidden tests for notebooks/08_cascade.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 08.hard_negatives | 1 point
# Catches: masking seen items and the positive with 0 instead of −inf (the self-check's scores are all ≥ 0; these
# are not); a positive that is the retriever's favourite; seen items given as a list.
import numpy as np

rng = np.random.default_rng(44)
for n, k in ((25, 1), (40, 8), (12, 4)):
    scores = rng.normal(size=n) - (4.0 if n != 12 else 0.0)  # mostly below 0
    seen = rng.choice(n, n // 4, replace=False)
    unseen = np.setdiff1d(np.arange(n), seen)
    positive = int(unseen[np.argmax(scores[unseen])])  # the retriever's favourite unseen item is the true next item
    order = np.argsort(-scores)
    want = [int(c) for c in order if c not in set(seen.tolist()) | {positive}][:k]
    got = [int(c) for c in np.asarray(hard_negatives(scores.copy(), seen.tolist(), positive, k)).ravel()]
    assert positive not in got, "the positive is never a negative, even when it is the best-scored item"
    assert not set(got) & set(seen.tolist()), "leave out the user's seen items, whatever their score"
    assert got == want, f"n={n}, k={k}: expected columns {want}, got {got}"

# %% 08.oracle_ndcg | 1 point
# Catches: other (top_n, k) pairs than the self-check's, k = top_n, ranks as a list, everyone at rank 1.
import numpy as np

rng = np.random.default_rng(45)
ranks = rng.integers(1, 200, size=500).astype(float)


def want(r, top_n, k):
    r = np.asarray(r, dtype=float)
    return float(np.where(r <= top_n, 1.0, np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)).mean())


for top_n, k in ((3, 3), (10, 20), (100, 10), (2, 5)):
    got = float(oracle_cascade_ndcg(ranks.tolist(), top_n, k))
    assert np.isclose(got, want(ranks, top_n, k)), f"top_n={top_n}, k={k}: expected {want(ranks, top_n, k):.4f}, got {got:.4f}"
assert np.isclose(float(oracle_cascade_ndcg(np.ones(10), 1, 10)), 1.0), "every held-out item at rank 1 gives NDCG 1"

# %% 08.rank_fusion | 2 points
# Catches: handing in the retriever alone or the re-ranker alone (the self-check re-scores whatever scorer it gets);
# a cascade that changes more than the top-N order (e.g. no `exclude`, so seen items take top-N slots).
import numpy as np

from recbook.evaluation.protocol import evaluate

fused = evaluate(answer["scorer"], test_set, "full", per_user=True)["per_user"]
retriever = per_user["full"]["SASRec"].reindex(fused.index)
reranker = per_user["full"][names["hard"]].reindex(fused.index)
outside = (retriever["rank"] > TOP_N).to_numpy()
assert np.allclose(fused["rank"].to_numpy()[outside], retriever["rank"].to_numpy()[outside]), (
    "users whose held-out item is outside the retriever's top-N must keep its rank: the cascade only reorders the top-N")
assert not np.allclose(fused["NDCG@10"], retriever["NDCG@10"]), "these are the retriever's own results: order the top-N by the sum of the two ranks"
assert not np.allclose(fused["NDCG@10"], reranker["NDCG@10"]), "these are the re-ranker's own results: add the retriever's rank"
