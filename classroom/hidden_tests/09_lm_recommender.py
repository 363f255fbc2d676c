"""Hidden tests for notebooks/09_lm_recommender.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 09.untrained_floor | 1 point
# Catches: a floor over the whole matrix (not per row); NaN or -inf instead of a finite score; trained items changed;
# a mask given as 0/1 integers.
import numpy as np

rng = np.random.default_rng(46)
scores = rng.normal(size=(6, 20)) + np.arange(6)[:, None] * 5.0  # rows on very different scales
trained = (rng.random(20) < 0.6).astype(int)
trained[0], trained[1] = 1, 0
got = np.asarray(floor_untrained(scores.copy(), trained), dtype=float)
mask = trained.astype(bool)
assert np.isfinite(got).all(), "untrained items get a finite score (the row's lowest trained score minus 1)"
assert np.allclose(got[:, mask], scores[:, mask]), "trained items keep their scores"
assert np.allclose(got[:, ~mask], (scores[:, mask].min(axis=1) - 1.0)[:, None]), "the floor is per row"

# %% 09.content_scores | 1 point
# Catches: the whole history instead of the n most recent; no normalisation of the mean; n_recent longer than the history.
import numpy as np

rng = np.random.default_rng(47)
vectors = rng.normal(size=(30, 8))
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
for history, n in (([2, 9, 4, 11, 29, 0], 3), ([5, 6], 10), ([7], 1)):
    mean = vectors[history[-n:]].mean(axis=0)
    want = vectors @ (mean / np.linalg.norm(mean))
    got = np.asarray(content_scores(vectors.copy(), list(history), n), dtype=float).ravel()
    assert np.allclose(got, want, atol=1e-6), f"history {history}, n_recent={n}: cosines to the mean of the latest n items"

# %% 09.freezing_variant | 2 points
# Catches: the fine-tuned text model itself handed in as the variant; a verdict that does not follow from the learner's own paired interval;
# an NDCG@10 that is not the variant's.
import numpy as np

from recbook.evaluation.protocol import evaluate
from recbook.evaluation.stats import paired_comparison

res = evaluate(answer["scorer"], test_set, "full", per_user=True)
assert not np.allclose(res["per_user"]["NDCG@10"].to_numpy(), per_user["text, fine-tuned encoder"]["NDCG@10"].to_numpy()), \
    "hand in the frozen-encoder variant, not the fine-tuned text model itself"
assert np.isclose(res["NDCG@10"], answer["ndcg_full"], atol=1e-6), "report the variant's own full-ranking NDCG@10"
c = paired_comparison(res["per_user"]["NDCG@10"], per_user["text, fine-tuned encoder"]["NDCG@10"])
assert bool(answer["significant"]) == c.significant, "significant means: the paired 95% interval excludes zero"
