import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from recbook.evaluation import metrics


def random_case(seed, n=30, m=20, ties=False, graded=False):
    rng = np.random.default_rng(seed)
    y_score = rng.integers(0, 4, size=(n, m)).astype(float) if ties else rng.normal(size=(n, m))
    y_true = rng.integers(0, 4, size=(n, m)).astype(float) if graded else (rng.random((n, m)) < 0.2).astype(float)
    y_true[:, 0] = np.maximum(y_true[:, 0], 1)  # every row has a relevant item
    return y_true, y_score


def brute_force(y_true_row, y_score_row, fn):
    """Average a metric over every tie-breaking order (the definition of the tie-averaged value)."""
    groups = {}
    for j, s in enumerate(y_score_row):
        groups.setdefault(-s, []).append(j)
    ordered = [groups[key] for key in sorted(groups)]
    values = [fn([j for g in perm for j in g]) for perm in itertools.product(*[list(itertools.permutations(g)) for g in ordered])]
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
@pytest.mark.parametrize("ties,graded", [(False, False), (True, False), (False, True), (True, True)])
def test_ndcg_matches_sklearn(seed, k, ties, graded):
    y_true, y_score = random_case(seed, ties=ties, graded=graded)
    assert metrics.ndcg_at_k(y_true, y_score, k) == pytest.approx(ndcg_score(y_true, y_score, k=k), abs=1e-12)


def test_ndcg_all_zero_row_scores_zero_like_sklearn():
    y_true = np.array([[0, 0, 0], [1, 0, 0]], dtype=float)
    y_score = np.array([[0.1, 0.2, 0.3], [0.9, 0.1, 0.2]])
    assert metrics.ndcg_at_k(y_true, y_score, 2) == pytest.approx(ndcg_score(y_true, y_score, k=2))


@pytest.mark.parametrize("seed", range(10))
def test_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    y[:2] = [0, 1]
    for score in (rng.normal(size=300), rng.integers(0, 5, size=300)):
        assert metrics.auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_top_k_metrics_against_brute_force_tie_averaging():
    rng = np.random.default_rng(3)
    for _ in range(25):
        m = 6
        y_true = (rng.random(m) < 0.35).astype(float)
        y_true[rng.integers(m)] = 1
        y_score = rng.integers(0, 3, size=m).astype(float)
        k = int(rng.integers(1, m + 1))

        def hit(order):
            return float(any(y_true[j] > 0 for j in order[:k]))

        def rr(order):
            return next(1.0 / (i + 1) for i, j in enumerate(order) if y_true[j] > 0)

        def prec(order):
            return sum(y_true[j] > 0 for j in order[:k]) / k

        def rec(order):
            return sum(y_true[j] > 0 for j in order[:k]) / (y_true > 0).sum()

        row_t, row_s = y_true[None], y_score[None]
        assert metrics.hit_rate_at_k(row_t, row_s, k) == pytest.approx(brute_force(y_true, y_score, hit))
        assert metrics.mrr(row_t, row_s) == pytest.approx(brute_force(y_true, y_score, rr))
        assert metrics.precision_at_k(row_t, row_s, k) == pytest.approx(brute_force(y_true, y_score, prec))
        assert metrics.recall_at_k(row_t, row_s, k) == pytest.approx(brute_force(y_true, y_score, rec))


def test_metrics_on_a_hand_worked_example():
    # row 0: relevant item ranked 2nd; row 1: relevant item ranked 1st
    y_true = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
    y_score = np.array([[0.5, 0.9, 0.1, 0.2], [0.1, 0.8, 0.3, 0.2]])
    assert metrics.hit_rate_at_k(y_true, y_score, 1) == pytest.approx(0.5)
    assert metrics.hit_rate_at_k(y_true, y_score, 2) == pytest.approx(1.0)
    assert metrics.mrr(y_true, y_score) == pytest.approx((1 / 2 + 1) / 2)
    assert metrics.mrr(y_true, y_score, k=1) == pytest.approx(0.5)
    assert metrics.ndcg_at_k(y_true, y_score, 4) == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert metrics.precision_at_k(y_true, y_score, 2) == pytest.approx(0.5)
    assert metrics.recall_at_k(y_true, y_score, 2) == pytest.approx(1.0)
    assert metrics.mean_auc(y_true, y_score) == pytest.approx((2 / 3 + 1) / 2)


def test_constant_scorer_gets_chance_level_not_position_bonus():
    y_true = np.zeros((50, 100))
    y_true[:, 0] = 1  # the held-out item sits in column 0, as in evaluate_sampled
    y_score = np.zeros((50, 100))
    assert metrics.hit_rate_at_k(y_true, y_score, 10) == pytest.approx(0.10)
    assert metrics.mean_auc(y_true, y_score) == pytest.approx(0.5)


def test_one_dimensional_input_is_one_query():
    assert metrics.hit_rate_at_k([1, 0, 0], [0.1, 0.5, 0.2], 2) == 0.0


def test_dcg_values():
    dcg = metrics.dcg_at_k(np.array([[3, 2, 0]]), np.array([[0.9, 0.5, 0.1]]), 3)
    assert dcg[0] == pytest.approx(3 + 2 / np.log2(3))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.ndcg_at_k(np.ones((2, 3)), np.ones((2, 4)), 2), "same shape"),
        (lambda: metrics.hit_rate_at_k(np.ones((2, 3)), np.ones((2, 3)), 0), "positive integer"),
        (lambda: metrics.hit_rate_at_k(np.ones((2, 3)), np.full((2, 3), np.nan), 1), "NaN"),
        (lambda: metrics.mrr(np.ones((2, 3, 1)), np.ones((2, 3, 1))), "2-D"),
        (lambda: metrics.auc([1, 1, 1], [0.1, 0.2, 0.3]), "one class"),
        (lambda: metrics.auc([0, 2], [0.1, 0.2]), "binary"),
        (lambda: metrics.auc([0, 1], [0.1, 0.2, 0.3]), "same length"),
        (lambda: metrics.recall_at_k(np.zeros((2, 3)), np.ones((2, 3)), 1), "no row"),
        (lambda: metrics.ndcg_at_k(-np.ones((1, 2)), np.ones((1, 2)), 1), "non-negative"),
        (lambda: metrics.ndcg_at_k(np.ones((0, 2)), np.ones((0, 2)), 1), "empty"),
        (lambda: metrics.mean_auc(np.ones((1, 2)), np.ones((1, 2)), mask=np.ones((1, 3))), "mask"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- protocols
@pytest.fixture
def toy():
    items = np.arange(1, 21)
    heldout = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [5, 6, 7]})
    seen = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [1, 2, 3, 4]})
    return items, heldout, seen


def oracle(heldout):
    target = dict(zip(heldout.user_id, heldout.item_id))

    def score(users, items):
        return np.array([[1.0 if it == target[u] else 0.0 for it in row] for u, row in zip(users, items)])

    return score


def test_evaluate_sampled_oracle_and_constant(toy):
    items, heldout, seen = toy
    negatives = np.array([[8, 9, 10], [8, 9, 10], [8, 9, 10]])
    res = metrics.evaluate_sampled(oracle(heldout), heldout, negatives, k=1)
    assert res["HR@1"] == 1.0 and res["NDCG@1"] == 1.0 and res["AUC"] == 1.0
    assert res["protocol"].startswith("sampled: 1 held-out item vs 3")
    flat = metrics.evaluate_sampled(lambda u, i: np.zeros(i.shape), heldout, negatives, k=1)
    assert flat["HR@1"] == pytest.approx(0.25) and flat["AUC"] == pytest.approx(0.5)


def test_evaluate_full_excludes_seen_items(toy):
    items, heldout, seen = toy

    # scores favour seen items; once they are excluded the held-out item ranks first
    def score(users, cand):
        s = np.where(np.isin(cand, [1, 2, 3, 4]), 10.0, 0.0)
        for r, u in enumerate(users):
            s[r][cand[r] == dict(zip(heldout.user_id, heldout.item_id))[u]] = 5.0
        return s

    seen = pd.DataFrame({"user_id": np.repeat([1, 2, 3], 4), "item_id": np.tile([1, 2, 3, 4], 3)})
    res = metrics.evaluate_full(score, heldout, seen, items, k=1, batch_size=2)
    assert res["HR@1"] == 1.0 and res["MRR"] == 1.0
    assert "all 20 catalogue items" in res["protocol"] and res["users"] == 3
    # the same scores without excluding anything put the seen items first
    unmasked = metrics.evaluate_full(score, heldout, seen.iloc[:0], items, k=1)
    assert unmasked["HR@1"] == 0.0


def test_sampled_numbers_exceed_full_ranking_for_a_noisy_scorer(toy):
    rng = np.random.default_rng(0)
    items = np.arange(1, 501)
    heldout = pd.DataFrame({"user_id": np.arange(200), "item_id": rng.integers(1, 501, 200)})
    target = dict(zip(heldout.user_id, heldout.item_id))

    def noisy(users, cand):
        return rng.normal(size=cand.shape) + 2.0 * (cand == np.array([target[u] for u in users])[:, None])

    negatives = np.stack([rng.choice(np.setdiff1d(items, [t]), 99, replace=False) for t in heldout.item_id])
    sampled = metrics.evaluate_sampled(noisy, heldout, negatives, k=10)
    full = metrics.evaluate_full(noisy, heldout, heldout.iloc[:0], items, k=10)
    assert sampled["HR@10"] > full["HR@10"] + 0.2


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t: metrics.evaluate_sampled(lambda u, i: np.zeros(i.shape), t[1], np.zeros((2, 3)), k=1), "one row per"),
        (lambda t: metrics.evaluate_sampled(lambda u, i: np.zeros(3), t[1], np.zeros((3, 3)), k=1), "one score per candidate"),
        (lambda t: metrics.evaluate_sampled(lambda u, i: np.zeros(i.shape), t[1].rename(columns={"item_id": "movie"}), np.zeros((3, 3))), "item_id"),
        (lambda t: metrics.evaluate_full(lambda u, i: np.zeros(i.shape), t[1], t[2], np.arange(1, 6)), "not in all_items"),
    ],
)
def test_protocol_errors(toy, call, match):
    with pytest.raises(ValueError, match=match):
        call(toy)
