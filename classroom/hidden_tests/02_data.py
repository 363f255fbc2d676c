"""Hidden tests for notebooks/02_data.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 02.filter_users | 1 point
# Catches: changing the caller's table (adding a count column to it) or returning other columns; k at the edges
# (1, the largest count, above it: an empty table).
import pandas as pd

from recbook.data import make_synthetic

inter = make_synthetic(seed=21, n_users=30, n_items=50, mean_interactions=6, min_interactions=1).interactions
before = inter.copy()
counts = inter.groupby("user_id")["user_id"].transform("size")
columns = list(inter.columns)
for k in (1, 2, 5, int(counts.max()), int(counts.max()) + 1):
    got = keep_active(inter, k)
    want = inter[counts >= k]
    assert isinstance(got, pd.DataFrame), f"return a DataFrame, not {type(got).__name__}"
    assert list(got.columns) == columns, f"keep the interaction table's columns {columns}, got {list(got.columns)}"
    pd.testing.assert_frame_equal(got.sort_values(columns).reset_index(drop=True), want.sort_values(columns).reset_index(drop=True),
                                  check_dtype=False, obj=f"keep_active(interactions, {k})")
pd.testing.assert_frame_equal(inter, before, obj="the interactions passed in (they must not be modified)")

# %% 02.last_item | 1 point
# Catches: taking each user's last *row* instead of the latest *timestamp* (the self-check's table comes in time
# order; this one is shuffled); users with a single interaction.
import numpy as np

from recbook.data import make_synthetic

inter = make_synthetic(seed=22, n_users=30, n_items=50, mean_interactions=6, min_interactions=1).interactions
latest = inter.groupby("user_id")["timestamp"].transform("max")
tied = inter[inter["timestamp"] == latest].groupby("user_id").size()
clear = tied[tied == 1].index  # users whose latest interaction is unique
want = inter[inter["timestamp"] == latest].set_index("user_id")["item_id"].loc[clear]
assert (inter.groupby("user_id").size() == 1).any(), "(test data: some user has one interaction)"
got = dict(last_item(inter.sample(frac=1.0, random_state=7)))
got = {int(k): int(v) for k, v in got.items()}
missing = [int(u) for u in clear if int(u) not in got]
assert not missing, f"{len(missing)} user(s) missing from your dict, e.g. user {missing[0]}: every user has a most recent item"
wrong = [int(u) for u in clear if got[int(u)] != int(want[u])]
assert not wrong, f"{len(wrong)} user(s) wrong on a table in random row order, e.g. user {wrong[0]}: order by timestamp, not by row"

# %% 02.popularity_probs | 1 point
# Catches: probabilities in item-id or count order instead of the order of item_ids (the self-check passes
# 1, 2, …, 60; here they are shuffled, with ids nobody interacted with).
import numpy as np

from recbook.data import make_synthetic

inter = make_synthetic(seed=23, n_users=40, n_items=50, mean_interactions=8, min_interactions=2).interactions
item_ids = np.random.default_rng(23).permutation(np.arange(1, 81))
counts = inter["item_id"].value_counts().reindex(item_ids, fill_value=0).to_numpy() + 1.0
got = np.asarray(pop_probs(inter.copy(), item_ids), dtype=float)
assert got.shape == item_ids.shape, f"one probability per id in item_ids: shape {item_ids.shape}, got {got.shape}"
assert np.isclose(got.sum(), 1.0), "the probabilities must sum to 1"
assert np.allclose(got, counts / counts.sum(), rtol=1e-6, atol=1e-12), "probability i belongs to item_ids[i] (whatever their order)"

# %% 02.negatives_protocol | 2 points
# Catches: evaluation negatives checked against the training interactions only (a user's held-out item, or a later
# interaction, comes back as a "negative"), negatives for other users than the test users, AUCs that are not the
# popularity model's on the negatives handed in, an interval that is not the paired interval of those AUCs, and a verdict
# that does not follow from the interval.
import numpy as np

positives = synthetic.interactions.groupby("user_id")["item_id"].agg(set)
users = test["user_id"].to_numpy()
for strategy, negs in answer["negatives"].items():
    negs = np.asarray(negs)
    assert negs.shape[0] == len(users), f"{strategy}: one row of negatives per test user"
    assert not any(set(row.tolist()) & positives[u] for u, row in zip(users, negs)), \
        f"{strategy}: a negative is one of the user's interactions — draw evaluation negatives against the whole data set"
    auc = metrics.evaluate_sampled(popularity, test, negs, per_user=True)["per_user"]["AUC"]
    np.testing.assert_allclose(np.asarray(answer["per_user_auc"][strategy], float), np.asarray(auc, float), atol=1e-9,
                               err_msg=f"{strategy}: the per-user AUC must be the popularity model's on the negatives handed in")
from recbook.evaluation.stats import paired_comparison

low, high = float(answer["diff_low"]), float(answer["diff_high"])
ref = paired_comparison(answer["per_user_auc"]["uniform"], answer["per_user_auc"]["popularity"])
slack = 0.25 * (ref.diff.high - ref.diff.low) + 1e-9
assert abs(low - ref.diff.low) <= slack and abs(high - ref.diff.high) <= slack, \
    f"your interval [{low:+.4f}, {high:+.4f}] is not the paired bootstrap interval of your AUCs, about [{ref.diff.low:+.4f}, {ref.diff.high:+.4f}]"
assert answer["verdict"] == ("higher" if low > 0 else "lower" if high < 0 else "not shown")
