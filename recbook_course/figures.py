"""The pictures the chapters share, each drawn from a run's own values (matplotlib).

- :func:`forest_plot`: estimates with their 95% intervals, one row each, the "no difference" line marked — the picture
  of paired comparisons or of a ``pairs_table`` (or of speed-up ratios, around 1);
- :func:`per_user_distribution`: how a metric spreads over users (for NDCG@10, mostly zeros: why the intervals of a
  mean over users are wide);
- :func:`by_history_length`: a metric's mean with its 95% interval per history-length bin, one line per model;
- :func:`latency_cdf`: empirical cumulative distributions of latencies, p50 and p99 marked;
- :func:`attention_masks`: boolean attention masks side by side (who may attend to whom).

Each takes an optional ``ax`` (or ``axes``) and returns it, so a notebook can compose panels and save the figure with
``figure_path``. Numbers are never typed in: the functions read the tables and comparisons a notebook computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbook.evaluation.stats import finite_values, interval_verdict, mean_ci


def _axes(ax, figsize=(6.0, 3.2)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)[1]


def _forest_rows(comparisons) -> list[tuple[str, float, float, float]]:
    """``(label, mean, low, high)`` per row, from paired comparisons, a ``pairs_table`` DataFrame or such tuples."""
    if isinstance(comparisons, pd.DataFrame):
        means = [c for c in comparisons.columns if str(c).endswith(" difference")]
        if len(means) != 1 or not {"low", "high"} <= set(comparisons.columns):
            raise ValueError("a DataFrame for forest_plot must be a pairs_table: one '<metric> difference' column, 'low' and 'high'")
        return [(str(label), float(r[means[0]]), float(r["low"]), float(r["high"])) for label, r in comparisons.iterrows()]
    rows = []
    for c in comparisons:
        if isinstance(c, tuple) and len(c) == 4:
            rows.append((str(c[0]), float(c[1]), float(c[2]), float(c[3])))
        elif hasattr(c, "diff") and all(hasattr(c.diff, f) for f in ("mean", "low", "high")):
            rows.append((f"{c.a} − {c.b}", c.diff.mean, c.diff.low, c.diff.high))
        else:
            raise TypeError(f"forest_plot takes paired comparisons (recbook.evaluation.stats.paired_comparison), a pairs_table or "
                            f"(label, mean, low, high) tuples, got {type(c).__name__}")
    return rows


def forest_plot(comparisons, ax=None, title: str | None = None, xlabel: str = "paired difference A − B", null: float = 0.0,
                log: bool = False):
    """One row per estimate: the mean and its interval, coloured by what the interval supports against ``null`` (all
    above it, all below it, or holding it; :func:`recbook.evaluation.stats.interval_verdict`), with ``null`` marked.
    ``comparisons``: :class:`~recbook.evaluation.stats.Comparison` objects, the DataFrame
    :func:`~recbook.evaluation.stats.pairs_table` returns, or ``(label, mean, low, high)`` tuples (e.g. speed-up ratios,
    with ``null=1`` and ``log=True``)."""
    rows = _forest_rows(comparisons)
    if not rows:
        raise ValueError("forest_plot needs at least one comparison")
    for label, mean, low, high in rows:
        if not all(np.isfinite([mean, low, high])):
            raise ValueError(f"row {label!r} has a NaN or infinite mean or bound: ({mean}, {low}, {high})")
        if not low <= mean <= high:
            raise ValueError(f"row {label!r}: the mean {mean} lies outside its interval [{low}, {high}]")
        if log and low <= 0:
            raise ValueError(f"row {label!r}: a log axis needs positive values, got a lower bound of {low}")
    ax = _axes(ax, (7.5, 0.9 + 0.45 * len(rows)))
    colours = {"higher": "C2", "lower": "C3", "not shown": "0.45"}
    ys = np.arange(len(rows))[::-1]
    for y, (_, mean, low, high) in zip(ys, rows):
        colour = colours[interval_verdict(low - null, high - null)]
        ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="o", color=colour, capsize=3)
    ax.axvline(null, color="k", lw=0.8)
    if log:
        ax.set_xscale("log")
    ax.set_yticks(ys, [label for label, *_ in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax


def per_user_distribution(per_user: dict, metric: str = "NDCG@10", ax=None, bins: int = 20):
    """Histograms (step lines) of ``metric`` over users, one per model: ``per_user`` maps a model name to its per-user
    table (a DataFrame with a ``metric`` column) or a Series. The legend gives each model's share of users at exactly 0."""
    if not per_user:
        raise ValueError("per_user_distribution needs at least one model")
    ax = _axes(ax)
    values = {}
    for name, table in per_user.items():
        if isinstance(table, pd.DataFrame) and metric not in table.columns:
            raise KeyError(f"{name}'s per-user table has no {metric!r} column (it has {list(table.columns)})")
        column = table[metric] if isinstance(table, pd.DataFrame) else table
        values[name] = finite_values(column, f"{name}'s {metric}", "a picture")
        if (values[name] < 0).any():
            raise ValueError(f"{name}'s {metric} has negative values: this picture is for metrics in [0, 1] (plot differences with forest_plot)")
    top = max(float(v.max()) for v in values.values())
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    for name, v in values.items():
        ax.hist(v, bins=edges, histtype="step", lw=1.5, label=f"{name} ({np.mean(v == 0):.0%} of users at 0)")
    ax.set(xlabel=f"{metric} of one user", ylabel="users")
    ax.legend(fontsize=8)
    return ax


def by_history_length(per_user: dict, lengths, metric: str = "NDCG@10", bins=(0, 20, 50, 100, 200, np.inf), ax=None,
                      n_boot: int = 1000, seed: int = 0):
    """``metric``'s mean per bin of history length, with a 95% bootstrap interval, one line per model.

    ``lengths`` is a Series indexed by user id (the history each user's test item was scored with); each per-user table
    is indexed by user id too. Returns ``(ax, table)``: the table has one row per bin and model (``users``, ``mean``,
    ``low``, ``high``), so a notebook can state what the picture shows."""
    if not per_user:
        raise ValueError("by_history_length needs at least one model")
    lengths = pd.Series(lengths)
    if lengths.isna().any() or (lengths < 0).any():
        raise ValueError("lengths must be counts of items (no NaN, none negative)")
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bins must be increasing edges, at least two, got {bins!r}")
    labels = [f"{int(lo)}–{int(hi) - 1}" if np.isfinite(hi) else f"≥ {int(lo)}" for lo, hi in zip(edges[:-1], edges[1:])]
    rows = []
    for name, table in per_user.items():
        column = table[metric] if isinstance(table, pd.DataFrame) else pd.Series(table)
        missing = column.index.difference(lengths.index)
        if len(missing):
            raise ValueError(f"lengths has no history length for {len(missing)} of {name}'s users (e.g. user {missing[0]!r})")
        binned = pd.cut(lengths.reindex(column.index), edges, right=False, labels=labels)
        if binned.isna().any():
            raise ValueError(f"{int(binned.isna().sum())} of {name}'s users have a history length outside the bins {list(edges)}: widen them")
        for label in labels:
            v = column[binned == label].to_numpy(dtype=float)
            if len(v) >= 2:
                e = mean_ci(v, n_boot=n_boot, seed=seed)
                rows.append({"model": name, "history length": label, "users": len(v), "mean": e.mean, "low": e.low, "high": e.high})
    table = pd.DataFrame(rows, columns=["model", "history length", "users", "mean", "low", "high"])
    if table.empty:
        raise ValueError("no bin holds two users or more: widen the bins")
    ax = _axes(ax)
    positions = {label: i for i, label in enumerate(labels)}
    names = list(per_user)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        part = table[table["model"] == name]
        x = np.array([positions[b] for b in part["history length"]]) + (k - (len(names) - 1) / 2) * width
        ax.errorbar(x, part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]], fmt="o-", capsize=3, label=name)
    users = table.groupby("history length", observed=True, sort=False)["users"].max()
    ax.set_xticks(range(len(labels)), [f"{b}\n({users.get(b, 0)} users)" for b in labels], fontsize=8)
    ax.set(xlabel="items in the user's history", ylabel=f"mean {metric} (95% CI)")
    ax.legend(fontsize=8)
    return ax, table


def latency_cdf(latencies: dict, ax=None, unit: str = "ms", ylabel: str = "share of answered requests at most this slow"):
    """Empirical CDFs of latencies, one line per name, each with its p50 and p99 marked. ``latencies`` maps a name to
    its latencies (in ``unit``) — of the requests that were answered: a request that never was is not in the curve."""
    if not latencies:
        raise ValueError("latency_cdf needs at least one set of latencies")
    ax = _axes(ax)
    for name, values in latencies.items():
        x = np.sort(finite_values(values, f"{name}'s latencies", "a picture"))
        if x[0] <= 0:
            raise ValueError(f"{name}'s latencies must be positive (a log axis), got {x[0]}")
        y = np.arange(1, len(x) + 1) / len(x)
        p50, p99 = np.percentile(x, [50, 99])
        line = ax.step(x, y, where="post", label=f"{name}: p50 {p50:.1f}, p99 {p99:.1f} {unit}")[0]
        ax.plot([p50, p99], [0.5, 0.99], "o", color=line.get_color(), ms=4)
    ax.set_xscale("log")
    ax.set(xlabel=f"latency ({unit}, log scale)", ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


def attention_masks(masks: dict, axes=None, labels=None):
    """Boolean attention masks side by side: row = query position, column = key position, dark = may attend.
    ``masks`` maps a title to a ``(length, length)`` array; ``labels`` names the positions (e.g. the items)."""
    if not masks:
        raise ValueError("attention_masks needs at least one mask")
    arrays = {}
    for title, mask in masks.items():
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"mask {title!r} must be square (query × key), got shape {m.shape}")
        arrays[title] = m
    if axes is None:
        import matplotlib.pyplot as plt

        axes = plt.subplots(1, len(arrays), figsize=(3.2 * len(arrays), 3.2))[1]
    axes = np.ravel(axes)
    if len(axes) != len(arrays):
        raise ValueError(f"{len(arrays)} masks need {len(arrays)} axes, got {len(axes)}")
    for ax, (title, m) in zip(axes, arrays.items()):
        if labels is not None and len(labels) != m.shape[0]:
            raise ValueError(f"{len(labels)} labels for mask {title!r} of {m.shape[0]} positions: give one label per position")
        ax.imshow(m, cmap="Greys", vmin=0, vmax=1.4)
        ticks = np.arange(m.shape[0])
        names = labels if labels is not None else ticks
        ax.set_xticks(ticks, names, rotation=90, fontsize=7)
        ax.set_yticks(ticks, names, fontsize=7)
        ax.set(title=title, xlabel="key (attended to)", ylabel="query")
    return axes
