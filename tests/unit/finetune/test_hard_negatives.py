"""Hard-negative pairs for the cascade's re-ranker (recbook.finetune.hard_negatives, notebook 08_cascade)."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbook.data import leave_last_out, make_synthetic
from recbook.evaluation.protocol import cascade, evaluate, make_eval_set
from recbook.finetune.hard_negatives import (
    PAIR_COLUMNS,
    CachedScorer,
    fit_reranker,
    hard_negative_pairs,
    only_with_heldout,
    reranker_loader,
    sequential_history_scorer,
    uniform_negative_pairs,
    users_within_reach,
)
from recbook.models.backbone import load_tokenizer


@pytest.fixture(scope="module")
def small():
    ds = make_synthetic(seed=3, n_users=30, n_items=40)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


class RecordingRetriever:
    """A history-dependent retriever: item j scores (j − last item's column) mod n, so its favourites change with
    the history's last item; it records every history it is asked about."""

    def __init__(self, item_ids):
        self.item_ids = np.asarray(item_ids)
        self.column = pd.Series(np.arange(len(self.item_ids)), index=self.item_ids)
        self.seen = []

    def __call__(self, histories):
        self.seen.extend(np.asarray(h).copy() for h in histories)
        n = len(self.item_ids)
        last = np.array([self.column[h[-1]] if len(h) else 0 for h in histories])
        return (-((np.arange(n)[None, :] - last[:, None] - 1) % n)).astype(float)  # best: the column right after the last


def _prefix(train, user, t):
    g = train[train["user_id"] == user].sort_values("timestamp", kind="stable")
    return g.loc[g["timestamp"] < t, "item_id"].to_numpy()


def _expected_top_k(retriever, train, item_ids, user, item, t, k):
    scores = retriever([_prefix(train, user, t)])[0]
    allowed = ~np.isin(item_ids, np.r_[train.loc[train["user_id"] == user, "item_id"].to_numpy(), item])
    cols = np.flatnonzero(allowed)
    return cols[np.argsort(-scores[cols], kind="stable")][:k]


def test_hard_negatives_come_from_the_retrievers_top_k_and_never_from_the_users_training_items(small):
    ds, split = small
    positives = split.train.sample(n=40, random_state=0)
    retriever = RecordingRetriever(ds.item_ids)
    pairs = hard_negative_pairs(positives, split.train, retriever, ds.item_ids, n_negatives=3, top_k=6, seed=0, batch_size=7)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert len(pairs) == 40 * 4
    groups = pairs.to_numpy().reshape(40, 4, len(PAIR_COLUMNS))
    assert (pairs["label"].to_numpy().reshape(40, 4) == [1, 0, 0, 0]).all()
    np.testing.assert_array_equal(groups[:, 0, 1], positives["item_id"].to_numpy())  # positives in order, each first
    assert (groups[:, :, 0] == groups[:, :1, 0]).all() and (groups[:, :, 3] == groups[:, :1, 3]).all()  # same user and time
    assert pairs.loc[pairs["label"] == 1, "retriever_rank"].isna().all()
    assert pairs.loc[pairs["label"] == 0, "retriever_rank"].between(1, 6).all()
    train_items = split.train.groupby("user_id")["item_id"].agg(set)
    for (user, item, t), group in zip(positives[["user_id", "item_id", "timestamp"]].to_numpy(), groups):
        negs = group[1:, 1]
        assert item not in negs and not set(negs) & train_items[user]
        assert len(set(negs)) == 3
        top = ds.item_ids[_expected_top_k(RecordingRetriever(ds.item_ids), split.train, ds.item_ids, user, item, t, 6)]
        assert set(negs) <= set(top)
        ranks = group[1:, 4].astype(int)
        np.testing.assert_array_equal(top[ranks - 1], negs)  # retriever_rank = position in the top-k


def test_the_retriever_reads_only_training_items_strictly_before_the_positive(small):
    ds, split = small
    positives = split.train.sample(n=25, random_state=1)
    retriever = RecordingRetriever(ds.item_ids)
    hard_negative_pairs(positives, split.train, retriever, ds.item_ids, n_negatives=1, top_k=3)
    assert len(retriever.seen) == 25
    train_items = split.train.groupby("user_id")["item_id"].agg(set)
    for (user, item, t), history in zip(positives[["user_id", "item_id", "timestamp"]].to_numpy(), retriever.seen):
        np.testing.assert_array_equal(history, _prefix(split.train, user, t))  # oldest first, strictly before t
        assert item not in history and set(history) <= train_items[user]  # never the positive, never a held-out item


def test_top_k_equal_to_n_negatives_takes_exactly_the_retrievers_favourites_and_seeds_repeat(small):
    ds, split = small
    positives = split.train.sample(n=10, random_state=2)
    pairs = hard_negative_pairs(positives, split.train, RecordingRetriever(ds.item_ids), ds.item_ids, n_negatives=2, top_k=2, seed=5)
    for (user, item, t), group in zip(positives[["user_id", "item_id", "timestamp"]].to_numpy(),
                                      pairs.to_numpy().reshape(10, 3, len(PAIR_COLUMNS))):
        top = ds.item_ids[_expected_top_k(RecordingRetriever(ds.item_ids), split.train, ds.item_ids, user, item, t, 2)]
        assert set(group[1:, 1]) == set(top)
    again = hard_negative_pairs(positives, split.train, RecordingRetriever(ds.item_ids), ds.item_ids, n_negatives=2, top_k=2, seed=5)
    pd.testing.assert_frame_equal(pairs, again)


def test_uniform_negatives_have_the_same_layout_and_avoid_training_items(small):
    ds, split = small
    positives = split.train.sample(n=30, random_state=3)
    pairs = uniform_negative_pairs(positives, split.train, ds.item_ids, n_negatives=2, seed=0)
    assert list(pairs.columns) == PAIR_COLUMNS and len(pairs) == 90
    assert pairs["retriever_rank"].isna().all()
    train_items = split.train.groupby("user_id")["item_id"].agg(set)
    for (user, item), group in zip(positives[["user_id", "item_id"]].to_numpy(), pairs.to_numpy().reshape(30, 3, len(PAIR_COLUMNS))):
        assert group[0, 1] == item and item not in group[1:, 1] and not set(group[1:, 1]) & train_items[user]


def test_bad_arguments_are_refused_with_a_clear_message(small):
    ds, split = small
    positives = split.train.head(5)
    retriever = RecordingRetriever(ds.item_ids)
    with pytest.raises(ValueError, match="top_k .* must be >= n_negatives"):
        hard_negative_pairs(positives, split.train, retriever, ds.item_ids, n_negatives=5, top_k=3)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_negatives must be a positive integer"):
            hard_negative_pairs(positives, split.train, retriever, ds.item_ids, n_negatives=bad)
    with pytest.raises(ValueError, match="not a training interaction"):
        hard_negative_pairs(split.test.head(3), split.train, retriever, ds.item_ids)
    with pytest.raises(ValueError, match="not a training interaction"):
        uniform_negative_pairs(split.valid.head(3), split.train, ds.item_ids)
    with pytest.raises(ValueError, match="positives is empty"):
        hard_negative_pairs(positives.iloc[:0], split.train, retriever, ds.item_ids)
    with pytest.raises(ValueError, match="timestamp"):
        hard_negative_pairs(positives.drop(columns="timestamp"), split.train, retriever, ds.item_ids)
    with pytest.raises(ValueError, match="shape"):
        hard_negative_pairs(positives, split.train, lambda hs: np.zeros((len(hs), 3)), ds.item_ids)
    with pytest.raises(ValueError, match="NaN"):
        hard_negative_pairs(positives, split.train, lambda hs: np.full((len(hs), ds.n_items), np.nan), ds.item_ids)
    with pytest.raises(ValueError, match="not in item_ids"):
        hard_negative_pairs(positives, split.train, retriever, ds.item_ids[1:][ds.item_ids[1:] != positives["item_id"].iloc[0]])


def test_sequential_history_scorer_wraps_the_model_in_catalogue_order(small):
    from recbook.models.sequential import SequentialConfig, SequentialRecommender

    ds, split = small
    torch.manual_seed(0)
    model = SequentialRecommender(ds.n_items, SequentialConfig(dim=16, layers=1, heads=1)).eval()
    scorer = sequential_history_scorer(model, ds.item_ids)
    histories = [ds.item_ids[[3, 1, 4]], ds.item_ids[[]], ds.item_ids[[7]]]
    scores = scorer(histories)
    assert scores.shape == (3, ds.n_items) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores, model.score_all([np.array([4, 2, 5]), np.array([], dtype=np.int64), np.array([8])]), rtol=1e-6)
    pairs = hard_negative_pairs(split.train.head(8), split.train, scorer, ds.item_ids, n_negatives=2, top_k=5)
    assert len(pairs) == 24


def test_cached_scorer_scores_each_pair_once():
    calls = []

    def slow(users, items):
        calls.append(np.asarray(items).size)
        return np.asarray(users)[:, None] * 100.0 + np.asarray(items)

    cached = CachedScorer(slow)
    users, items = np.array([1, 2]), np.array([[5, 6, 7], [5, 8, 9]])
    np.testing.assert_array_equal(cached(users, items), slow(users, items))
    calls.clear()
    np.testing.assert_array_equal(cached(np.array([2, 1]), np.array([[9, 5], [7, 4]])), [[209.0, 205.0], [107.0, 104.0]])
    assert calls == [1] and cached.pairs_scored == 7  # only (1, 4) was new


def test_fit_reranker_trains_on_hard_pairs_and_reranks_in_a_cascade(small, tiny_backbone, tiny_profile):
    ds, split = small
    positives = split.train.sample(n=8, random_state=0)
    retriever = RecordingRetriever(ds.item_ids)
    pairs = hard_negative_pairs(positives, split.train, retriever, ds.item_ids, n_negatives=1, top_k=4)
    loader = reranker_loader(pairs, ds, split.train, load_tokenizer(tiny_backbone), tiny_profile)
    batch = next(iter(loader))
    assert set(batch) >= {"input_ids", "attention_mask", "labels"} and batch["input_ids"].shape[0] <= tiny_profile.batch_size
    assert sum(len(b["labels"]) for b in loader) == len(pairs)
    with pytest.raises(ValueError, match="label"):
        reranker_loader(pairs.drop(columns="label"), ds, split.train, None, tiny_profile)
    fit = fit_reranker(pairs, ds, split, tiny_profile, tiny_backbone, progress=False, device="cpu", max_steps=2)
    assert fit.train_result.steps == 2 and all(np.isfinite(h["loss"]) for h in fit.history if "loss" in h)
    reranker = CachedScorer(fit.scorer)
    eval_set = make_eval_set(ds, split, "test", n_negatives=9, n_users=6, seed=0)
    result = evaluate(cascade(lambda u, i: np.asarray(i, dtype=float) % 7, reranker, top_n=3), eval_set, "sampled")
    assert 0 <= result["NDCG@10"] <= 1 and reranker.pairs_scored == 6 * 3


def test_the_reranker_run_only_on_lists_with_the_heldout_item_leaves_every_users_metrics_unchanged(small):
    """Outside the candidates a re-ranker changes nothing: running it only on candidate lists that hold the user's
    held-out item scores every user exactly like running it for everyone — and for the others like the retriever."""
    from recbook.models.itemknn import ItemKNN
    from recbook.models.popularity import Popularity

    ds, split = small
    eval_set = make_eval_set(ds, split, "test", n_negatives=19, seed=0)
    knn = ItemKNN(neighbours=10).fit_interactions(eval_set.history, ds.item_ids).scorer(eval_set.history)
    retriever = lambda u, i: knn(u, i) + 1e-6 * np.argsort(ds.item_ids)[np.searchsorted(ds.item_ids, i)] / ds.n_items  # noqa: E731 (no ties)
    reranker = Popularity().fit_interactions(eval_set.history, ds.item_ids).scorer(eval_set.history)
    for protocol, top_n in (("full", 5), ("sampled", 4)):
        base = evaluate(retriever, eval_set, protocol, per_user=True)["per_user"]
        everyone = evaluate(cascade(retriever, reranker, top_n, exclude=eval_set.history), eval_set, protocol, per_user=True)["per_user"]
        calls = []
        counted = lambda u, i: calls.append(len(u)) or reranker(u, i)  # noqa: E731
        some = evaluate(cascade(retriever, only_with_heldout(counted, eval_set.heldout), top_n, exclude=eval_set.history), eval_set,
                        protocol, per_user=True)["per_user"]
        pd.testing.assert_frame_equal(some, everyone)
        assert 0 < sum(calls) < len(base)
        reach = users_within_reach(base, top_n)
        assert sum(calls) == len(reach)  # re-ranked: exactly the users within reach (no ties in the retriever)
        outside = ~base.index.isin(reach)
        pd.testing.assert_frame_equal(some[outside], base[outside])
    with pytest.raises(ValueError, match="user_id and item_id"):
        only_with_heldout(reranker, eval_set.heldout.drop(columns="item_id"))


def test_users_within_reach_reads_the_rank_or_one_over_mrr():
    per_user = pd.DataFrame({"MRR": [1.0, 1 / 3, 1 / 4, 0.1], "rank": [1.0, 3.0, 4.0, 10.0]}, index=pd.Index([7, 8, 9, 10], name="user_id"))
    assert users_within_reach(per_user, 3).tolist() == [7, 8]
    assert users_within_reach(per_user, 10).tolist() == [7, 8, 9, 10]
    only_mrr = per_user.drop(columns="rank")
    only_mrr.loc[9, "MRR"] = 0.25 - 1e-15  # 1 / MRR = 4 plus rounding error: still rank 4
    assert users_within_reach(only_mrr, 4).tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="rank' or 'MRR"):
        users_within_reach(per_user.drop(columns=["MRR", "rank"]), 3)
    with pytest.raises(ValueError, match="top_n"):
        users_within_reach(per_user, 0)
