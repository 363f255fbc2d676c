import numpy as np
import pandas as pd
import pytest

from recbook.data import RecDataset, make_synthetic


def test_deterministic_by_seed():
    a, b = make_synthetic(seed=3, n_users=50, n_items=40), make_synthetic(seed=3, n_users=50, n_items=40)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    c = make_synthetic(seed=4, n_users=50, n_items=40)
    assert not a.interactions.equals(c.interactions)


def test_schema_and_sizes(synthetic):
    assert isinstance(synthetic, RecDataset)
    assert synthetic.n_items == 90 and synthetic.n_users == 120
    assert list(synthetic.interactions.columns[:4]) == ["user_id", "item_id", "rating", "timestamp"]
    assert synthetic.interactions.groupby("user_id").size().min() >= 5
    assert not synthetic.interactions.duplicated(["user_id", "item_id"]).any()
    assert synthetic.interactions["rating"].between(1, 5).all()
    assert synthetic.items["text"].str.contains("Genres:").all()
    assert set(synthetic.users.columns) >= {"user_id", "age", "favourite_genre"}


def test_popularity_is_long_tailed(synthetic):
    counts = synthetic.interactions["item_id"].value_counts()
    top = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.2  # the top 10% of items take well over 10% of interactions


def test_taste_signal_is_in_the_text():
    ds = make_synthetic(seed=0, n_users=200, n_items=150)
    genre = ds.items.set_index("item_id")["genres"].str.split("|").str[0]
    inter = ds.interactions.assign(genre=genre.reindex(ds.interactions["item_id"]).to_numpy())
    fav = ds.users.set_index("user_id")["favourite_genre"]
    share = (inter["genre"] == fav.reindex(inter["user_id"]).to_numpy()).mean()
    base = genre.value_counts(normalize=True).max()
    assert share > 2 * base  # users pick their favourite genre far above its catalogue share


def test_series_create_co_occurrence():
    ds = make_synthetic(seed=0, n_users=300, n_items=150, series_fraction=0.6, follow_series=0.9)
    inter = ds.interactions.sort_values(["user_id", "timestamp"])
    title = ds.items.set_index("item_id")["title"]
    stems = title.str.replace(r" (II|III|IV|V)$", "", regex=True)
    consecutive = inter.groupby("user_id")["item_id"].apply(lambda s: list(zip(s.iloc[:-1], s.iloc[1:]))).explode().dropna()
    same_series = np.mean([stems[a] == stems[b] for a, b in consecutive])
    assert same_series > 0.1


@pytest.mark.parametrize("kwargs", [{"n_users": 0}, {"n_items": -3}, {"n_genres": 11}, {"n_users": 2.5}, {"mean_interactions": 2}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**kwargs)


def test_summary_and_subset(synthetic):
    s = synthetic.summary()
    assert s["users"] == 120 and s["interactions"] == len(synthetic.interactions)
    sub = synthetic.subset_users(30, seed=1)
    assert sub.n_users == 30 and sub.n_items == synthetic.n_items and len(sub.users) == 30
    assert synthetic.subset_users(None) is synthetic
