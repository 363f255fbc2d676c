import numpy as np
import pandas as pd
import pytest

from recbook.data import DataError, leave_last_out, make_training_pairs, random_split, sample_negatives
from recbook.data.splits import user_seed_key


def test_leave_last_out_is_temporal(synthetic):
    sp = leave_last_out(synthetic.interactions)
    n = synthetic.n_users
    assert len(sp.test) == n and len(sp.valid) == n
    assert len(sp.train) + 2 * n == len(synthetic.interactions)
    last_train = sp.train.groupby("user_id")["timestamp"].max()
    valid = sp.valid.set_index("user_id")["timestamp"]
    test = sp.test.set_index("user_id")["timestamp"]
    assert (last_train <= valid.reindex(last_train.index)).all()
    assert (valid <= test.reindex(valid.index)).all()
    assert sp.sizes() == {"train": len(sp.train), "valid": n, "test": n}


def test_leave_last_out_ties_keep_file_order():
    inter = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 11, 12, 13], "timestamp": [5, 5, 5, 5]})
    sp = leave_last_out(inter)
    assert sp.test["item_id"].tolist() == [13] and sp.valid["item_id"].tolist() == [12]


def test_short_users_error_or_drop():
    inter = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [1, 2, 3, 1, 2], "timestamp": [1, 2, 3, 1, 2]})
    with pytest.raises(DataError, match="user_id 2 has 2"):
        leave_last_out(inter)
    sp = leave_last_out(inter, drop_short_users=True)
    assert set(sp.test["user_id"]) == {1}
    with pytest.raises(ValueError, match="at least 3"):
        leave_last_out(inter, min_interactions=2)
    with pytest.raises(DataError, match="timestamp"):
        leave_last_out(inter.drop(columns="timestamp"))


def test_random_split_ratios_and_seed(synthetic):
    inter = synthetic.interactions
    a = random_split(inter, (0.8, 0.1, 0.1), seed=1)
    b = random_split(inter, (0.8, 0.1, 0.1), seed=1)
    c = random_split(inter, (0.8, 0.1, 0.1), seed=2)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test.equals(c.test)
    total = len(a.train) + len(a.valid) + len(a.test)
    assert total == len(inter)
    assert abs(len(a.test) / total - 0.1) < 0.03
    # no interaction in two parts, every user keeps a training row
    def keys(df):
        return set(zip(df.user_id, df.item_id))

    assert not keys(a.train) & keys(a.test) and not keys(a.valid) & keys(a.test)
    assert set(a.train.user_id) == set(inter.user_id)
    with pytest.raises(ValueError, match="sum"):
        random_split(inter, (0.5, 0.1, 0.1))


@pytest.mark.parametrize("strategy", ["uniform", "popularity"])
def test_negatives_never_positive_distinct_and_seeded(synthetic, strategy):
    users = synthetic.interactions["user_id"].unique()
    neg = sample_negatives(users, synthetic.interactions, synthetic.item_ids, 20, strategy, seed=3)
    assert neg.shape == (len(users), 20)
    pos = synthetic.interactions.groupby("user_id")["item_id"].agg(set)
    for u, row in zip(users, neg):
        assert len(set(row)) == 20 and not set(row) & pos[u]
    again = sample_negatives(users, synthetic.interactions, synthetic.item_ids, 20, strategy, seed=3)
    np.testing.assert_array_equal(neg, again)


def test_popularity_negatives_prefer_popular_items(synthetic):
    users = np.repeat(synthetic.interactions["user_id"].unique(), 20)
    counts = synthetic.interactions["item_id"].value_counts()
    pop = sample_negatives(users, synthetic.interactions, synthetic.item_ids, 5, "popularity", seed=0)
    uni = sample_negatives(users, synthetic.interactions, synthetic.item_ids, 5, "uniform", seed=0)
    assert counts.reindex(pop.ravel()).mean() > 1.2 * counts.reindex(uni.ravel()).mean()


def test_negative_sampling_errors(synthetic):
    inter = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": [0, 1]})
    with pytest.raises(DataError, match="cannot sample 2"):
        sample_negatives([1], inter, np.array([1, 2, 3]), 2)
    with pytest.raises(ValueError, match="strategy"):
        sample_negatives([1], inter, np.array([1, 2, 3]), 1, strategy="hard")
    with pytest.raises(ValueError, match="positive integer"):
        sample_negatives([1], inter, np.array([1, 2, 3]), 0)


def test_training_pairs(synthetic):
    sp = leave_last_out(synthetic.interactions)
    pairs = make_training_pairs(sp.train, synthetic.item_ids, n_negatives=3, seed=0)
    assert len(pairs) == 4 * len(sp.train)
    assert pairs["label"].sum() == len(sp.train)
    assert list(pairs.columns) == ["user_id", "item_id", "label", "timestamp"]
    first = pairs.iloc[:4]
    assert first["user_id"].nunique() == 1 and first["timestamp"].nunique() == 1 and first["label"].tolist() == [1, 0, 0, 0]
    negs = set(zip(*(pairs.loc[pairs.label == 0, c] for c in ("user_id", "item_id"))))
    # negatives never include a training item of that user ...
    assert not negs & set(zip(sp.train.user_id, sp.train.item_id))
    # ... but the user's held-out (valid/test) items are fair game: excluding them would leak the future
    held = set(zip(sp.test.user_id, sp.test.item_id)) | set(zip(sp.valid.user_id, sp.valid.item_id))
    assert negs & held


def test_training_negatives_do_not_know_the_future():
    # items 1-5 in training, 6 = valid, 7 = test; negatives come from {6, 7, 8}: the held-out items included
    inter = pd.DataFrame({"user_id": [1] * 7, "item_id": range(1, 8), "timestamp": range(7)})
    sp = leave_last_out(inter)
    pairs = make_training_pairs(sp.train, np.arange(1, 9), n_negatives=3, seed=0)
    for _, group in pairs.groupby("timestamp"):
        assert sorted(group.loc[group.label == 0, "item_id"]) == [6, 7, 8]
    with pytest.raises(TypeError, match="drawn against `train`"):
        make_training_pairs(sp.train, inter, np.arange(1, 9))  # the old (train, all_interactions, all_items) call


@pytest.mark.parametrize("strategy", ["uniform", "popularity"])
def test_negatives_of_a_user_do_not_depend_on_the_other_users(synthetic, strategy):
    users = synthetic.interactions["user_id"].unique()
    args = (synthetic.interactions, synthetic.item_ids, 7, strategy)
    everyone = sample_negatives(users, *args, seed=5)
    subset = np.random.default_rng(0).choice(len(users), 30, replace=False)
    np.testing.assert_array_equal(sample_negatives(users[subset], *args, seed=5), everyone[subset])
    np.testing.assert_array_equal(sample_negatives(users[::-1], *args, seed=5), everyone[::-1])
    np.testing.assert_array_equal(sample_negatives(users[3:4], *args, seed=5), everyone[3:4])
    assert not np.array_equal(sample_negatives(users, *args, seed=6), everyone)


def test_repeated_rows_of_a_user_are_distinct_draws_and_prefixes_nest(synthetic):
    u = synthetic.interactions["user_id"].iloc[0]
    many = sample_negatives(np.full(50_000, u), synthetic.interactions, synthetic.item_ids, 4, seed=0)  # drawn in chunks
    few = sample_negatives(np.array([u, 99_999, u, u]), synthetic.interactions, synthetic.item_ids, 4, seed=0)
    np.testing.assert_array_equal(few[[0, 2, 3]], many[:3])
    assert len({tuple(sorted(r)) for r in many[:100]}) > 90


def test_user_seed_key_is_stable_for_any_id():
    assert user_seed_key(42) == 42 and user_seed_key(np.int64(42)) == 42
    assert user_seed_key("u42") == user_seed_key("u42") == 3733377502 != user_seed_key("u43")
    assert user_seed_key(-1) >= 0
    inter = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": [1, 2, 3], "timestamp": [0, 1, 2]})
    both = sample_negatives(np.array(["a", "b"], dtype=object), inter, np.arange(1, 30), 5, seed=0)
    np.testing.assert_array_equal(sample_negatives(np.array(["b"], dtype=object), inter, np.arange(1, 30), 5, seed=0), both[1:])
