"""recbook.serve.cascade: the cascade's pairs, time and quality against full-catalogue scoring, with fake scorers."""

import time

import numpy as np
import pandas as pd
import pytest

from recbook.data import leave_last_out
from recbook.serve.cascade import CascadeReport, cascade_vs_full


@pytest.fixture(scope="module")
def data(synthetic):
    split = leave_last_out(synthetic.interactions, drop_short_users=True)
    return synthetic, split, split.test["user_id"].to_numpy()[:12]


def _target(split):
    return dict(zip(split.test["user_id"], split.test["item_id"]))


def oracle(split, slow_per_pair: float = 0.0):
    """Knows the held-out item and scores it highest; everything else by a fixed pseudo-random value."""
    target = _target(split)

    def score(users, items):
        items = np.asarray(items)
        if slow_per_pair:
            time.sleep(slow_per_pair * items.size)
        noise = np.sin(np.asarray(users)[:, None] * 12.9898 + items * 78.233) % 1.0
        return noise + np.array([[10.0 if i == target[u] else 0.0 for i in row] for u, row in zip(np.asarray(users).tolist(), items)])

    return score


def retriever_ranking_target(split, at_the_top: bool):
    """A retriever that puts the held-out item first (it survives any top-N) or last (it never reaches the re-ranker)."""
    target, sign = _target(split), (1.0 if at_the_top else -1.0)

    def score(users, items):
        items = np.asarray(items)
        base = np.cos(np.asarray(users)[:, None] * 3.1 + items * 0.7)
        return base + sign * 100 * np.array([[i == target[u] for i in row] for u, row in zip(np.asarray(users).tolist(), items)])

    return score


def test_pairs_and_quality_when_the_retriever_keeps_the_target(data):
    ds, split, users = data
    report = cascade_vs_full(ds, split, retriever_ranking_target(split, True), oracle(split), users, top_n=5, n_boot=200)
    assert isinstance(report, CascadeReport) and report.n_users == len(users)
    seen = pd.concat([split.train, split.valid]).groupby("user_id")["item_id"].nunique()
    np.testing.assert_array_equal(report.per_user["pairs_full"], ds.n_items - seen.reindex(users).to_numpy())
    assert (report.per_user["pairs_cascade"] == 5).all()
    assert report.pairs_ratio == pytest.approx(report.per_user["pairs_full"].mean() / 5)
    for metric in ("NDCG@10", "HR@10"):
        assert report.quality[metric]["full"].mean == 1.0 and report.quality[metric]["cascade"].mean == 1.0
        assert report.differences[metric].diff.mean == 0.0 and not report.differences[metric].significant
    table = report.table()
    assert list(table.index) == ["full", "cascade"] and table.loc["cascade", "pairs per user"] == 5
    assert "fewer" in str(report)


def test_the_cascade_loses_what_the_retriever_drops(data):
    ds, split, users = data
    report = cascade_vs_full(ds, split, retriever_ranking_target(split, False), oracle(split), users, top_n=5, n_boot=200)
    assert report.quality["HR@10"]["full"].mean == 1.0 and report.quality["HR@10"]["cascade"].mean == 0.0
    assert (report.per_user["rank_full"] == 1).all() and (report.per_user["rank_cascade"] > 5).all()
    diff = report.differences["NDCG@10"]
    assert diff.diff.mean == -1.0 and diff.significant and diff.verdict == "full beats cascade"
    low, high = report.quality["NDCG@10"]["cascade"].low, report.quality["NDCG@10"]["cascade"].high
    assert 0.0 <= low <= high <= 1.0


def test_the_cascade_is_faster_when_pairs_cost_time(data):
    ds, split, users = data
    report = cascade_vs_full(ds, split, retriever_ranking_target(split, True), oracle(split, slow_per_pair=1e-4), users[:6],
                             top_n=4, n_boot=200)
    assert (report.per_user[["seconds_full", "seconds_cascade"]] > 0).all().all()
    assert report.speed_ratio.mean > 2 and report.speed_ratio.low <= report.speed_ratio.mean <= report.speed_ratio.high


@pytest.mark.parametrize("kwargs, match", [
    ({"users": []}, "non-empty"),
    ({"users": [-5]}, "no held-out item"),
    ({"top_n": 0}, "top_n must be"),
    ({"stage": "train"}, "stage must be"),
])
def test_bad_arguments_are_named(data, kwargs, match):
    ds, split, users = data
    args = {"users": users[:2], "top_n": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        cascade_vs_full(ds, split, retriever_ranking_target(split, True), oracle(split), **args)


def test_duplicate_users_are_refused(data):
    ds, split, users = data
    with pytest.raises(ValueError, match="duplicate"):
        cascade_vs_full(ds, split, retriever_ranking_target(split, True), oracle(split), [users[0], users[0]])


@pytest.mark.slow
def test_the_real_configuration_builds_and_runs(data, tmp_path, tiny_backbone, tiny_profile):
    """SASRec → int8 ONNX cross-encoder, end to end on the tiny BERT (seconds, not minutes)."""
    from recbook.serve.cascade import real_cascade_scorers

    ds, split, users = data
    real = real_cascade_scorers(ds, split, tiny_profile, tmp_path, model_name_or_path=tiny_backbone, retriever_seconds=1.0,
                                rerank_steps=2, top_n=5, threads=1)
    assert real.onnx_path.is_file() and real.onnx_path.name == "cross-encoder-int8.onnx"
    assert set(real.seconds) == {"retriever", "reranker", "export"}
    report = cascade_vs_full(ds, split, real.retriever, real.reranker, users[:3], top_n=5, n_boot=100)
    assert (report.per_user["pairs_cascade"] == 5).all() and report.pairs_ratio > 5
    assert np.isfinite(report.per_user.to_numpy(dtype=float)).all()
    # history texts written once per user score exactly like pair texts written by build_text_pairs, unseen items or not
    from recbook.evaluation.protocol import history_for_test

    history = history_for_test(split)
    unseen = np.stack([np.setdiff1d(ds.item_ids, history.loc[history["user_id"] == u, "item_id"])[:6] for u in users[:3]])
    seen = np.stack([history.loc[history["user_id"] == u, "item_id"].to_numpy()[:2] for u in users[:3]])
    for items in (unseen, seen):
        np.testing.assert_allclose(real.reranker(users[:3], items), real.reranker.score_pair_texts(users[:3], items), atol=1e-6)
