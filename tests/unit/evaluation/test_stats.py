"""Confidence intervals and paired comparisons, cross-checked against scipy.stats."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from recbook.evaluation.stats import Estimate, align, bootstrap_means, ci_table, comparison_table, mean_ci, paired_comparison


def test_mean_ci_matches_scipy_bootstrap():
    x = np.random.default_rng(0).exponential(size=400)
    ours = mean_ci(x, n_boot=4000, seed=1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95, random_state=2).confidence_interval
    assert ours.mean == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.02) and ours.high == pytest.approx(ref.high, abs=0.02)
    # and the normal approximation: half-width ≈ 1.96 · sd / sqrt(n)
    assert ours.half_width == pytest.approx(1.96 * x.std(ddof=1) / np.sqrt(len(x)), rel=0.1)
    assert ours.low < ours.mean < ours.high and ours.n == 400


def test_mean_ci_is_seeded_and_levels_nest():
    x = np.random.default_rng(3).random(200)
    assert mean_ci(x, seed=5) == mean_ci(x, seed=5)
    wide, narrow = mean_ci(x, level=0.99), mean_ci(x, level=0.8)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert str(mean_ci([0.5])) == "0.500 [0.500, 0.500]"
    assert len(bootstrap_means(x, 250, seed=0)) == 250


def test_paired_comparison_detects_a_shift_that_separate_intervals_hide():
    rng = np.random.default_rng(0)
    base = rng.random(300)  # users differ a lot ...
    a, b = base + 0.02 + rng.normal(0, 0.01, 300), base  # ... but A is always a little better
    ca, cb = mean_ci(a), mean_ci(b)
    assert ca.low < cb.high  # the two separate intervals overlap
    c = paired_comparison(a, b, ("A", "B"))
    assert c.significant and c.diff.low > 0 and c.verdict == "A beats B" and c.p_value < 0.001
    assert "A beats B" in str(c) and c.as_dict()["significant"]


def test_paired_permutation_p_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.random(60), rng.random(60) + 0.05
    c = paired_comparison(a, b, n_permutations=20000, seed=0)
    ref = sps.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=20000,
                               random_state=0).pvalue
    assert c.p_value == pytest.approx(ref, abs=0.02)
    assert not paired_comparison(a, a + 0.0).significant  # no difference at all: inconclusive
    assert "inconclusive" in paired_comparison(a, a).verdict


def test_series_are_paired_by_user_not_by_position():
    a = pd.Series([1.0, 0.0, 0.5], index=[10, 20, 30])
    b = pd.Series([0.5, 1.0, 0.0], index=[30, 10, 20])  # same users, other order
    x, y = align(a, b)
    assert np.array_equal(y, [1.0, 0.0, 0.5])
    assert paired_comparison(a, b).diff.mean == pytest.approx(0.0)
    with pytest.raises(ValueError, match="different users"):
        align(a, pd.Series([1.0, 2.0, 3.0], index=[10, 20, 99]))
    with pytest.raises(ValueError, match="duplicate"):
        align(pd.Series([1.0, 2.0], index=[1, 1]), pd.Series([1.0, 2.0], index=[1, 2]))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([0.1, np.nan])
    with pytest.raises(ValueError, match="level"):
        mean_ci([0.1, 0.2], level=95)
    with pytest.raises(ValueError, match="n_boot"):
        mean_ci([0.1, 0.2], n_boot=10)
    with pytest.raises(ValueError, match="one value per user"):
        paired_comparison([0.1, 0.2], [0.1])


def test_tables():
    rng = np.random.default_rng(2)
    users = pd.Index(range(100), name="user_id")
    per_user = {"good": pd.DataFrame({"NDCG@10": rng.random(100) * 0.2 + 0.3, "HR@10": rng.random(100)}, index=users),
                "bad": pd.DataFrame({"NDCG@10": rng.random(100) * 0.2, "HR@10": rng.random(100)}, index=users)}
    t = ci_table(per_user)
    assert list(t.index) == ["good", "bad"] and t.loc["good", "NDCG@10 low"] < t.loc["good", "NDCG@10"] < t.loc["good", "NDCG@10 high"]
    c = comparison_table(per_user, reference="bad")
    assert c.loc["good", "verdict"] == "good beats bad" and c.loc["good", "low"] > 0
    with pytest.raises(KeyError, match="reference"):
        comparison_table(per_user, reference="nope")
    with pytest.raises(KeyError, match="no column"):
        ci_table(per_user, metrics=("MRR",))
    assert isinstance(mean_ci([1.0, 2.0]), Estimate)


def test_ratio_ci_pairs_users():
    from recbook.evaluation.stats import ratio_ci

    rng = np.random.default_rng(4)
    b = rng.random(500)
    a = 1.5 * b + rng.normal(0, 0.01, 500)
    r = ratio_ci(a, b)
    assert r.mean == pytest.approx(a.mean() / b.mean()) and r.low < 1.5 < r.high + 0.01 and r.high - r.low < 0.05
    with pytest.raises(ValueError, match="positive denominator"):
        ratio_ci(a, np.zeros(500))


def test_seed_study_pairs_seed_by_seed_and_pools_users_over_seeds():
    from statistics import NormalDist

    from recbook.evaluation.stats import seed_study

    rng = np.random.default_rng(3)
    users = pd.Index(np.arange(300), name="user_id")
    base = rng.uniform(0, 1, 300)
    a = {s: pd.Series(base + 0.05 + rng.normal(0, 0.02, 300), index=users).sample(frac=1, random_state=10 + s) for s in (0, 1, 2)}
    b = {s: pd.Series(base + rng.normal(0, 0.02, 300), index=users).sample(frac=1, random_state=s) for s in (0, 1, 2)}
    study = seed_study(a, b, ("A", "B"), n_boot=500)
    assert study.seeds == (0, 1, 2)
    for s in study.seeds:  # each seed is the plain paired comparison of that seed's two models, matched by user
        ref = paired_comparison(a[s], b[s], ("A", "B"), n_boot=500)
        assert study.per_seed[s].diff == ref.diff
        assert study.mean_a[s] == pytest.approx(a[s].mean()) and study.mean_b[s] == pytest.approx(b[s].mean())
    order = a[0].index  # user by user (in the first Series' order), not by position
    pooled_a = np.mean([a[s].reindex(order).to_numpy() for s in (0, 1, 2)], axis=0)
    pooled_b = np.mean([b[s].reindex(order).to_numpy() for s in (0, 1, 2)], axis=0)
    assert study.pooled.diff == paired_comparison(pooled_a, pooled_b, n_boot=500).diff
    assert study.every_seed == "a" and study.every_seed_text == "A beats B at every one of the 3 seeds"
    assert study.seed_sd["A"] == pytest.approx(np.std([a[s].mean() for s in (0, 1, 2)], ddof=1))
    assert study.seed_sd["B"] == pytest.approx(np.std([b[s].mean() for s in (0, 1, 2)], ddof=1))
    assert study.diff_sd == pytest.approx(np.std([a[s].mean() - b[s].mean() for s in (0, 1, 2)], ddof=1))
    # the users' standard error of the difference, on the SD's scale: about std(differences) / sqrt(n) within a seed
    direct = np.median([(a[s].reindex(users) - b[s].reindex(users)).std(ddof=1) / np.sqrt(300) for s in (0, 1, 2)])
    assert study.diff_se == pytest.approx(direct, rel=0.15)
    half = np.median([study.per_seed[s].diff.half_width for s in (0, 1, 2)])
    assert study.diff_se == pytest.approx(half / NormalDist().inv_cdf(0.975))
    table = study.table()
    assert list(table.index) == [0, 1, 2] and table.loc[1, "A − B"] == round(study.per_seed[1].diff.mean, 4)
    flipped = seed_study(b, a, ("B", "A"), n_boot=500)
    assert flipped.every_seed == "b" and flipped.every_seed_text.startswith("A beats B")
    # one seed where A clearly loses, and the others win: mixed
    a_mixed = dict(a)
    a_mixed[2] = pd.Series(base - 0.05, index=users)
    mixed = seed_study(a_mixed, b, n_boot=500)
    assert mixed.every_seed == "mixed" and "A ahead at 2, B ahead at 1, inconclusive at 0 of the 3 seeds" in mixed.every_seed_text
    a_level = dict(a)
    a_level[1] = b[1]  # the same values as B at seed 1: inconclusive there, A ahead at the other two
    partly = seed_study(a_level, b, n_boot=500)
    assert partly.every_seed == "mixed" and "A ahead at 2, B ahead at 0, inconclusive at 1 of the 3 seeds" in partly.every_seed_text
    # no difference at any seed: inconclusive everywhere, which is not a disagreement between seeds
    same = {s: pd.Series(base + rng.normal(0, 0.02, 300), index=users) for s in (0, 1, 2)}
    level = seed_study(same, {s: pd.Series(base + rng.normal(0, 0.02, 300), index=users) for s in (0, 1, 2)}, n_boot=500)
    assert level.every_seed == "none" and "not told apart" in level.every_seed_text
    single = seed_study({0: a[0]}, {0: b[0]}, n_boot=500)
    assert np.isnan(single.diff_sd) and np.isnan(single.seed_sd["A"])
    assert single.every_seed_text == "A beats B at its one seed"
    arrays = seed_study({s: a[s].reindex(order).to_numpy() for s in (0, 1)}, {s: b[s].reindex(order).to_numpy() for s in (0, 1)},
                        n_boot=500)
    assert arrays.pooled.diff == seed_study({s: a[s] for s in (0, 1)}, {s: b[s] for s in (0, 1)}, n_boot=500).pooled.diff


def test_seed_study_refuses_mismatched_seeds_users_or_types():
    from recbook.evaluation.stats import seed_study

    users = pd.Index(range(10))
    x = pd.Series(np.linspace(0, 1, 10), index=users)
    with pytest.raises(ValueError, match="same, non-empty seeds"):
        seed_study({0: x, 1: x}, {0: x})
    with pytest.raises(ValueError, match="same, non-empty seeds"):
        seed_study({}, {})
    other = pd.Series(np.linspace(0, 1, 10), index=pd.Index(range(5, 15)))
    with pytest.raises(ValueError, match="A at seed 1 was scored on other users than A at seed 0 .5 users only at seed 1, 5 only at seed 0"):
        seed_study({0: x, 1: other}, {0: x, 1: other})
    wider = pd.Series(np.linspace(0, 1, 12), index=pd.Index(range(12)))
    with pytest.raises(ValueError, match=r"A at seed 1 was scored on other users than A at seed 0 \(2 users only at seed 1, 0 only at seed 0\)"):
        seed_study({0: x, 1: wider}, {0: x, 1: wider})
    with pytest.raises(ValueError, match="A at seed 1 has 9 users' values, A at seed 0 10"):
        seed_study({0: np.zeros(10), 1: np.zeros(9)}, {0: np.zeros(10), 1: np.zeros(9)})
    with pytest.raises(ValueError, match="B at seed 1 has 9 users' values, A at seed 0 10"):
        seed_study({0: np.zeros(10), 1: np.zeros(10)}, {0: np.zeros(10), 1: np.zeros(9)})
    with pytest.raises(ValueError, match="not a mix"):
        seed_study({0: x, 1: x.to_numpy()}, {0: x, 1: x})


def test_interval_verdict_reads_only_what_the_interval_supports():
    from recbook.evaluation.stats import interval_verdict

    assert interval_verdict(0.01, 0.2) == "higher" and interval_verdict(-0.2, -0.01) == "lower"
    assert interval_verdict(-0.01, 0.2) == interval_verdict(0.0, 0.2) == "not shown"  # touching 0 is not excluding it
    assert interval_verdict(0.1, 0.3, "more", "less") == "more" and interval_verdict(-1, 1, neither="none") == "none"
