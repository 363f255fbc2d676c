"""Checkers of notebook 09_compression_pareto."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import _close, _exercise


@_exercise("09.dominates", "09_compression_pareto", "Write dominates(a, b) for (quality, cost) tuples.")
def _dominates(fn):
    cases = {((0.3, 10), (0.2, 20)): True, ((0.3, 10), (0.3, 10)): False, ((0.3, 10), (0.3, 11)): True,
             ((0.2, 5), (0.3, 10)): False, ((0.31, 10), (0.3, 10)): True}
    for (a, b), expected in cases.items():
        if bool(fn(a, b)) != expected:
            return False, f"dominates({a}, {b}) should be {expected}: at least as good on both, strictly better on one."
    return True, "the Pareto front is what no point dominates."


@_exercise("09.front", "09_compression_pareto", "Write front(points): the names no other point dominates.")
def _front(fn):
    from ..bench_report import pareto_front

    rng = np.random.default_rng(10)
    for _ in range(5):
        points = {f"v{i}": (round(float(rng.random()), 2), round(float(rng.random()) * 100, 1)) for i in range(8)}
        table = pd.DataFrame({"NDCG@10": [p[0] for p in points.values()], "cost": [p[1] for p in points.values()]}, index=list(points))
        expected = set(table.index[pareto_front(table, "NDCG@10", "cost")])
        if set(fn(points)) != expected:
            return False, f"for {points} the front is {sorted(expected)}."
    return True, "recbook.bench_report.pareto_front does the same on the benchmark table."


@_exercise("09.combined_ratio", "09_compression_pareto", "Write combined_ratio(ratios): the product of independent size ratios.")
def _combined_ratio(fn):
    for ratios in ([2, 4], [1.5], [3, 2, 1.25], []):
        expected = float(np.prod(ratios)) if ratios else 1.0
        if not _close(fn(ratios), expected):
            return False, f"for {ratios} expected {expected}: ratios applied one after another multiply."
    return True, "which is why distill + trim + int8 can reach ratios no single method gives."
