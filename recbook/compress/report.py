"""Reading a benchmark table: the Pareto front of quality against cost, the best variant under a quality floor, the
plot, and the files (``bench.csv``, ``bench.md``) — notebook ``14_compression_pareto`` and ``recbook bench``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def pareto_front(table: pd.DataFrame, quality_col: str = "NDCG@10", cost_col: str = "p50_ms_b64") -> pd.Series:
    """True for variants no other variant beats on both quality (higher) and cost (lower).

    A variant whose quality or cost is NaN (not measured) is never on the front and dominates nothing.
    """
    q, c = table[quality_col].astype(float).to_numpy(), table[cost_col].astype(float).to_numpy()
    front = []
    for i in range(len(table)):
        if np.isnan(q[i]) or np.isnan(c[i]):  # not measured (e.g. a slow path's quality on a subset only): not placed
            front.append(False)
            continue
        dominated = np.any((q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i])))
        front.append(not dominated)
    return pd.Series(front, index=table.index, name="pareto")


def best_under(table: pd.DataFrame, min_quality_kept: float, cost_col: str = "p50_ms_b64") -> str | None:
    """The cheapest variant (by ``cost_col``) whose ``quality_kept`` column is at least ``min_quality_kept``
    (:func:`run_benchmark`: NDCG@10 over the baseline's; notebook 14: the lowest CI end of the paired AUC ratios).

    A slow path's ``quality_kept`` comes from a subset of users (see :func:`run_benchmark`); NaN never qualifies.
    """
    ok = table[table["quality_kept"].astype(float) >= min_quality_kept]
    return None if ok.empty else str(ok[cost_col].astype(float).idxmin())


def plot_pareto(table: pd.DataFrame, path: str | Path | None = None, quality_col: str = "NDCG@10"):
    """Two panels — quality vs latency (batch 64) and quality vs file size — with the Pareto front marked."""
    import matplotlib.pyplot as plt

    cost_cols = [c for c in table.columns if c.startswith("p50_ms_b")]
    latency = max(cost_cols, key=lambda c: int(c.rsplit("b", 1)[1]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost, label in ((axes[0], latency, f"latency p50 at batch {latency.rsplit('b', 1)[1]} (ms)"), (axes[1], "size_MB", "file size (MB)")):
        measured = table[table[quality_col].astype(float).notna() & table[cost].astype(float).notna()]
        front = pareto_front(measured, quality_col, cost)
        x, y = measured[cost].astype(float), measured[quality_col].astype(float)
        ax.scatter(x[~front], y[~front], color="0.6", label="dominated")
        ax.scatter(x[front], y[front], color="C3", label="Pareto front")
        order = x[front].sort_values().index
        ax.plot(x[order], y[order], color="C3", alpha=0.5)
        for name in measured.index:
            ax.annotate(name, (x[name], y[name]), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(quality_col)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    missing = [str(n) for n in table.index if n not in measured.index]
    fig.suptitle(table.attrs.get("protocol", "") + (f"\nnot plotted (quality not measured on all users): {', '.join(missing)}" if missing else ""),
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def write_results(table: pd.DataFrame, out_dir: str | Path, stem: str = "bench") -> dict[str, Path]:
    """``stem.csv`` and ``stem.md`` (with protocol, threads and CPU features) in ``out_dir``."""
    from recbook.perf.device import cpu_features

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    table.to_csv(csv)
    flags = ", ".join(k for k, v in cpu_features().items() if v) or "none detected"
    shown = table.drop(columns=[c for c in ("notes",) if c in table.columns])
    for col in shown.columns:  # numbers (and flags) rounded as floats; text columns (the speed verdicts) as they are
        if pd.api.types.is_numeric_dtype(shown[col]) or pd.api.types.is_bool_dtype(shown[col]):
            shown[col] = shown[col].astype(float).round(4)
    slow = table.attrs.get("slow_paths") or {}
    text = (f"Protocol: {table.attrs.get('protocol', '?')}\n\nThreads: {table.attrs.get('threads', '?')}; CPU features: {flags}\n\n"
            + markdown_table(shown) + "\n"
            + ("".join(f"\n- {name}: {note}" for name, note in slow.items()) + "\n" if slow else ""))
    md.write_text(text)
    return {"csv": csv, "md": md}


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (index as the first column)."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in frame.iterrows():
        lines.append("| " + " | ".join([str(name)] + [f"{v:g}" if isinstance(v, float) else str(v) for v in row]) + " |")
    return "\n".join(lines)
