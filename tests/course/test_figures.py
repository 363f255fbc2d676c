"""recbook_course.figures: each picture shows the values it was given (checked against numpy/pandas), and bad input is
refused with a message naming what is wrong."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from recbook.evaluation.stats import paired_comparison  # noqa: E402
from recbook_course.figures import attention_masks, by_history_length, forest_plot, latency_cdf, per_user_distribution  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _comparisons():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    return [paired_comparison(base + 0.2 + rng.normal(0, 0.05, 300), base, ("up", "base"), n_boot=300),
            paired_comparison(base - 0.2 + rng.normal(0, 0.05, 300), base, ("down", "base"), n_boot=300),
            paired_comparison(base + rng.normal(0, 0.05, 300), base, ("same", "base"), n_boot=300)]


def test_forest_plot_draws_each_difference_with_its_interval_and_colours_the_verdict():
    comps = _comparisons()
    ax = forest_plot(comps, title="t")
    containers = ax.containers
    assert len(containers) == 3
    for c, container in zip(comps, containers):
        x, _ = container.lines[0].get_data()
        assert x[0] == pytest.approx(c.diff.mean)
        segment = container.lines[2][0].get_segments()[0]
        assert segment[0][0] == pytest.approx(c.diff.low) and segment[1][0] == pytest.approx(c.diff.high)
    colours = [matplotlib.colors.to_hex(container.lines[0].get_color()) for container in containers]
    assert colours == [matplotlib.colors.to_hex(c) for c in ("C2", "C3", "0.45")]  # above 0, below 0, contains 0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["up − base", "down − base", "same − base"]


def test_forest_plot_draws_a_pairs_table_as_its_comparisons():
    from recbook.evaluation.stats import pairs_table

    rng = np.random.default_rng(4)
    base = rng.random(200)
    per_user = {m: pd.DataFrame({"NDCG@10": base + shift + rng.normal(0, 0.05, 200)}) for m, shift in (("a", 0.1), ("b", 0.0), ("c", -0.1))}
    table = pairs_table(per_user, [("a", "b"), ("c", "b")], n_boot=300)
    ax = forest_plot(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a − b", "c − b"]
    for (_, row), container in zip(table.iterrows(), ax.containers):
        assert container.lines[0].get_data()[0][0] == pytest.approx(row["NDCG@10 difference"])
    with pytest.raises(ValueError, match="must be a pairs_table"):
        forest_plot(pd.DataFrame({"x": [1.0]}))


def test_forest_plot_refuses_nothing_and_non_comparisons():
    with pytest.raises(ValueError, match="at least one"):
        forest_plot([])
    with pytest.raises(TypeError, match="paired comparisons"):
        forest_plot([0.1])
    with pytest.raises(ValueError, match="outside its interval"):
        forest_plot([("x", 0.5, 0.6, 0.9)])
    with pytest.raises(ValueError, match="NaN or infinite"):
        forest_plot([("x", np.nan, 0.0, 1.0)])


def test_forest_plot_of_ratios_marks_one_and_colours_against_it():
    ax = forest_plot([("faster", 1.8, 1.5, 2.1), ("noise", 1.02, 0.9, 1.1), ("slower", 0.5, 0.4, 0.7)], null=1.0, log=True)
    assert ax.get_xscale() == "log" and ax.lines[-1].get_xdata()[0] == 1.0
    colours = [matplotlib.colors.to_hex(c.lines[0].get_color()) for c in ax.containers]
    assert colours == [matplotlib.colors.to_hex(c) for c in ("C2", "0.45", "C3")]
    with pytest.raises(ValueError, match="log axis"):
        forest_plot([("x", 0.5, -0.1, 0.9)], log=True)


def test_per_user_distribution_counts_match_numpy_and_the_legend_gives_the_share_at_zero():
    rng = np.random.default_rng(1)
    a, b = np.where(rng.random(500) < 0.7, 0.0, rng.random(500)), rng.random(200)
    ax = per_user_distribution({"A": pd.DataFrame({"NDCG@10": a}), "B": pd.Series(b)}, bins=10)
    heights = ax.patches[0].get_path().vertices[1:-1:2, 1]  # a step histogram's outline: (edge, count) pairs
    counts, _ = np.histogram(a, bins=np.linspace(0, max(a.max(), b.max()), 11))  # one set of edges for every model
    assert heights.tolist() == counts.tolist()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"A ({np.mean(a == 0):.0%} of users at 0)"


def test_per_user_distribution_refuses_nan_and_empty():
    with pytest.raises(ValueError, match="A's NDCG@10 has NaN"):
        per_user_distribution({"A": pd.Series([0.1, np.nan])})
    with pytest.raises(ValueError, match="at least one model"):
        per_user_distribution({})
    with pytest.raises(ValueError, match="negative values"):
        per_user_distribution({"d": pd.Series([-0.1, 0.2])})
    with pytest.raises(KeyError, match="no 'NDCG@10' column"):
        per_user_distribution({"A": pd.DataFrame({"AUC": [0.5]})})


def test_by_history_length_means_equal_a_pandas_groupby():
    rng = np.random.default_rng(2)
    users = np.arange(400)
    lengths = pd.Series(rng.integers(5, 300, 400), index=users)
    table_a = pd.DataFrame({"NDCG@10": rng.random(400)}, index=users)
    ax, table = by_history_length({"A": table_a, "B": table_a["NDCG@10"] * 0.5}, lengths, bins=(0, 50, 150, np.inf), n_boot=200)
    expected = table_a["NDCG@10"].groupby(pd.cut(lengths, [0, 50, 150, np.inf], right=False), observed=True).agg(["mean", "size"])
    got = table[table["model"] == "A"]
    assert got["mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy())
    assert got["users"].tolist() == expected["size"].tolist()
    assert (got["low"] <= got["mean"]).all() and (got["mean"] <= got["high"]).all()
    assert list(got["history length"]) == ["0–49", "50–149", "≥ 150"]
    assert table[table["model"] == "B"]["mean"].to_numpy() == pytest.approx(0.5 * expected["mean"].to_numpy())
    assert len(ax.containers) == 2


def test_by_history_length_names_users_without_a_length_and_bad_bins():
    table = pd.DataFrame({"NDCG@10": [0.1, 0.2]}, index=[1, 2])
    with pytest.raises(ValueError, match="no history length for 1 of A's users"):
        by_history_length({"A": table}, pd.Series([3], index=[1]))
    with pytest.raises(ValueError, match="increasing edges"):
        by_history_length({"A": table}, pd.Series([3, 4], index=[1, 2]), bins=(10, 5))
    with pytest.raises(ValueError, match="outside the bins"):
        by_history_length({"A": table}, pd.Series([3, 400], index=[1, 2]), bins=(0, 10, 100))
    with pytest.raises(ValueError, match="at least one model"):
        by_history_length({}, pd.Series([3], index=[1]))


def test_latency_cdf_reaches_one_and_labels_the_percentiles_numpy_gives():
    rng = np.random.default_rng(3)
    x = rng.lognormal(1, 0.5, 1000)
    ax = latency_cdf({"service": x})
    xs, ys = ax.lines[0].get_data()
    assert ys[-1] == pytest.approx(1.0) and np.all(np.diff(ys) > 0) and np.all(np.diff(xs) >= 0)
    p50, p99 = np.percentile(x, [50, 99])
    assert ax.get_legend().get_texts()[0].get_text() == f"service: p50 {p50:.1f}, p99 {p99:.1f} ms"
    assert ax.get_ylabel() == "share of answered requests at most this slow"
    with pytest.raises(ValueError, match="b's latencies is empty"):
        latency_cdf({"b": []})
    with pytest.raises(ValueError, match="must be positive"):
        latency_cdf({"c": [0.0, 1.0]})


def test_attention_masks_show_the_masks_and_refuse_non_square_ones():
    causal = np.tril(np.ones((4, 4), dtype=bool))
    axes = attention_masks({"causal": causal, "cloze": np.ones((4, 4), dtype=bool)}, labels=list("abcd"))
    assert np.array_equal(axes[0].images[0].get_array(), causal)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == list("abcd")
    with pytest.raises(ValueError, match="'x' must be square"):
        attention_masks({"x": np.ones((2, 3))})
    with pytest.raises(ValueError, match="one label per position"):
        attention_masks({"causal": causal}, labels=list("abc"))
