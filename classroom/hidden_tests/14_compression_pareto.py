"""Hidden tests for notebooks/14_compression_pareto.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 14.dominates | 1 point
# Catches: more ties than the self-check's, and asymmetry on random pairs (a dominates b ⇒ b does not dominate a).
import numpy as np

cases = {((0.5, 5), (0.4, 5)): True, ((0.4, 4), (0.4, 5)): True, ((0.5, 6), (0.4, 5)): False, ((0.4, 5), (0.4, 5)): False,
         ((0.4, 5), (0.5, 4)): False, ((0.0, 0), (0.0, 1)): True}
for (a, b), want in cases.items():
    assert bool(dominates(a, b)) == want, f"dominates({a}, {b}) should be {want}"
rng = np.random.default_rng(91)
for _ in range(200):
    a, b = tuple(rng.integers(0, 3, size=2) / 2), tuple(rng.integers(0, 3, size=2) / 2)
    want = a[0] >= b[0] and a[1] <= b[1] and a != b
    assert bool(dominates(a, b)) == want, f"dominates({a}, {b}) should be {want}"

# %% 14.front | 1 point
# Catches: a sweep that assumes distinct costs or qualities (two identical points are both on the front; of two at
# the same cost only the better one), a single point.
import numpy as np
import pandas as pd

from recbook.compress.report import pareto_front


def reference(points):
    table = pd.DataFrame({"q": [p[0] for p in points.values()], "c": [p[1] for p in points.values()]}, index=list(points))
    return set(table.index[pareto_front(table, "q", "c")])


fixed = {"a": (0.5, 10.0), "a-copy": (0.5, 10.0), "b": (0.4, 10.0), "c": (0.3, 5.0), "d": (0.6, 20.0), "e": (0.6, 25.0)}
assert set(front(fixed)) == {"a", "a-copy", "c", "d"}, f"for {fixed} the front is a, a-copy, c and d; got {sorted(front(fixed))}"
assert set(front({"solo": (0.1, 1.0)})) == {"solo"}
rng = np.random.default_rng(92)
for _ in range(5):
    points = {f"v{i}": (float(rng.integers(0, 5)) / 10, float(rng.integers(0, 5))) for i in range(15)}
    assert set(front(points)) == reference(points), f"for {points} the front is {sorted(reference(points))}"

# %% 14.combined_ratio | 1 point
# Catches: ratios below 1, a tuple or a NumPy array instead of a list.
import numpy as np

for ratios, want in (((0.5, 2.0), 1.0), (np.array([1.5, 2.0]), 3.0), ((4,), 4.0), ((2, 2, 2, 2), 16.0)):
    assert np.isclose(float(combined_ratio(ratios)), want), f"combined_ratio({ratios!r}) should be {want}"

# %% 14.student_window | 2 points
# Catches: a verdict read from the interval alone (the rule also asks for a top-10 overlap of 0.8), a comparison of costs
# across two separate benchmark runs, and an answer that does not come from the records passed.
from recbook.compress.request_bench import verdict

records = {r["variant"]: r for r in answer["records"]}
five, ten = records["mlp-student-last5"], records["mlp-student-last10"]
assert five["rounds"] == ten["rounds"] and five["requests"] == ten["requests"], "both students timed in one run"
assert answer["verdict"] == verdict(five["ndcg10_diff_ci95"][0], five["top10_overlap"], five["margin"])
assert bool(answer["cheaper"]) == (five["cpu_ms_p50"] < ten["cpu_ms_p50"])
assert abs(answer["ndcg10_diff_low"] - five["ndcg10_diff_ci95"][0]) < 1e-6
assert records["fp32"]["verdict"] == "reference" and five["users"] == records["fp32"]["users"]
