"""Hidden tests for notebooks/18_continual.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 18.psi | 1 point
# Catches: properties PSI must have — symmetric, unchanged when counts are scaled, never negative — on new counts.
import numpy as np

from recbook.continual.drift import psi as reference

rng = np.random.default_rng(131)
for n in (2, 17, 120):
    e, a = rng.integers(0, 30, size=n), rng.integers(0, 30, size=n)
    e[0], a[-1] = 0, 0
    e[1 % n] += 1
    a[0] += 1
    got = float(psi(e.tolist(), a.tolist()))
    assert np.isclose(got, reference(e, a), rtol=1e-6, atol=1e-9), f"{n} bins: expected {reference(e, a):.6f}, got {got:.6f}"
    assert got >= 0
    assert np.isclose(float(psi(a.tolist(), e.tolist())), got, rtol=1e-6, atol=1e-9), "PSI is symmetric"
    assert np.isclose(float(psi((3 * e).tolist(), (5 * a).tolist())), got, rtol=1e-6, atol=1e-9), "PSI compares shares: scaling counts changes nothing"

# %% 18.reservoir | 1 point
# Catches: sampling from the whole list at the end (rng.choice(stream, …)) instead of one pass over a stream of
# unknown length; ignoring the rng (the same seed must give the same reservoir); capacity 1.
import numpy as np

out = list(reservoir(iter(range(100)), 10, np.random.default_rng(3)))
assert len(out) == 10 and len(set(out)) == 10 and set(out) <= set(range(100)), "a stream may be an iterator, read once"
assert list(reservoir(iter(range(100)), 10, np.random.default_rng(3))) == out, "the same rng seed must give the same reservoir"
assert sorted(reservoir(list(range(7)), 7, np.random.default_rng(0))) == list(range(7)), "capacity = stream length keeps everything"
kept = np.zeros(5)
for seed in range(3000):
    (item,) = list(reservoir(list(range(5)), 1, np.random.default_rng(seed)))
    kept[item] += 1
assert np.all(np.abs(kept / 3000 - 0.2) < 0.035), f"with capacity 1 each of 5 items should stay 20% of the time, got {np.round(kept / 3000, 3)}"

# %% 18.update_due | 1 point
# Catches: pairing measurements and thresholds by position (zip of .values()) instead of by name, measurements with
# extra signals, other signal names.
thresholds = {"latency_p99": 250.0, "error_rate": 0.02, "psi_popularity": 0.5}
cases = [({"error_rate": 0.03, "psi_popularity": 0.4, "latency_p99": 100.0}, 2, False),
         ({"queue": 0.0, "latency_p99": 300.0, "error_rate": 0.05, "psi_popularity": 0.6}, 3, True),
         ({"error_rate": 0.05, "psi_popularity": 0.1, "queue": 9.0, "latency_p99": 300.0}, 2, True),
         ({"error_rate": 0.05, "psi_popularity": 0.1, "queue": 9.0, "latency_p99": 300.0}, 3, False),
         ({"psi_popularity": 0.5, "latency_p99": 250.0, "error_rate": 0.021}, 1, True),
         ({"psi_popularity": 0.5, "latency_p99": 250.0, "error_rate": 0.021}, 2, False)]
for measurements, min_signals, want in cases:
    got = bool(update_due(dict(measurements), dict(thresholds), min_signals))
    assert got == want, f"update_due({measurements}, {thresholds}, {min_signals}) should be {want}"

# %% 18.epochs_forgetting | 2 points
# Catches: the two runs started from different base models (a base refitted or trained again in between, so the base
# changes with the epochs), runs on different evaluation events, an interval that is not the paired interval of the
# runs' forgetting, and a verdict that does not follow from the interval.
import pandas as pd

runs = answer["results"]
first = {e: r.next_window["finetune"].loc[[1]] for e, r in runs.items()}  # window 1 is served by the base model itself
pd.testing.assert_frame_equal(first[1], first[8], obj="window 1 (the base model's own scores) must be the same in both runs")
assert runs[1].forgetting("finetune").index.equals(runs[8].forgetting("finetune").index), "the same held-out events in both runs"
from recbook.evaluation.stats import paired_comparison

low, high = float(answer["diff_low"]), float(answer["diff_high"])
ref = paired_comparison(runs[8].forgetting("finetune"), runs[1].forgetting("finetune"))
slack = 0.25 * (ref.diff.high - ref.diff.low) + 1e-9
assert abs(low - ref.diff.low) <= slack and abs(high - ref.diff.high) <= slack, \
    f"your interval [{low:+.4f}, {high:+.4f}] is not the paired bootstrap interval of your runs, about [{ref.diff.low:+.4f}, {ref.diff.high:+.4f}]"
assert answer["verdict"] == ("more" if low > 0 else "less" if high < 0 else "not shown")
