"""Hidden tests for notebooks/17_serving.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 17.hpa_replicas | 1 point
# Catches: other loads and bounds than the self-check's eight cases: random, a third of them inside the ±10 % band
# (kept as they are), away from its edge.
import numpy as np

from recbook.serve.scaling import desired_replicas as reference

rng = np.random.default_rng(121)
checked = 0
while checked < 60:
    current, target = int(rng.integers(1, 30)), float(rng.integers(20, 95))
    ratio = (rng.uniform(0.2, 0.88), rng.uniform(0.92, 1.08), rng.uniform(1.12, 4.0))[checked % 3]  # below, inside, above the band
    utilisation = round(target * ratio, 2)
    lo = int(rng.integers(1, 5))
    hi = lo + int(rng.integers(0, 40))
    if abs(abs(utilisation / target - 1) - 0.1) < 1e-6 or abs(current * utilisation / target - round(current * utilisation / target)) < 1e-6:
        continue  # exactly on the tolerance edge or on a whole number: left to the self-check
    want = reference(current, utilisation, target, tolerance=0.1, min_replicas=lo, max_replicas=hi)
    got = desired_replicas(current, utilisation, target, lo, hi)
    assert got == want, f"desired_replicas({current}, {utilisation}, {target}, {lo}, {hi}) should be {want}, got {got}"
    checked += 1

# %% 17.percentile | 1 point
# Catches: sorting the caller's list in place (later code reads it in arrival order), quartiles, fractional q.
import numpy as np

rng = np.random.default_rng(122)
for n in (3, 10, 1000):
    values = rng.lognormal(3.0, 0.8, size=n).tolist()
    arrival = list(values)
    for q in (25, 75, 12.5, 99.9):
        want = float(np.percentile(arrival, q))
        got = float(percentile(values, q))
        assert np.isclose(got, want, rtol=1e-9), f"n={n}, q={q}: expected {want:.4f}, got {got:.4f}"
    assert values == arrival, "percentile must not reorder the list it is given (sort a copy)"

# %% 17.token_bucket | 1 point
# Catches: refilling above the burst after a long idle gap, simultaneous requests, no requests, a slow rate.
from recbook.serve.security import TokenBucket

cases = [([0.0, 10.0, 10.0, 10.0, 10.0], 1.0, 2.0), ([5.0, 5.0, 5.0, 5.0], 3.0, 2.0), ([0.0, 1.0, 2.5, 3.0, 4.9, 5.0], 0.5, 1.0),
         ([0.0, 30.0, 30.1, 30.2, 30.3, 30.4, 31.0], 2.0, 3.0)]
for arrivals, rate, burst in cases:
    clock = iter([arrivals[0], *arrivals])
    bucket = TokenBucket(rate, burst, clock=lambda: next(clock))
    want = [bucket.take() == 0.0 for _ in arrivals]
    got = [bool(x) for x in token_bucket(list(arrivals), rate, burst)]
    assert got == want, f"arrivals {arrivals}, rate {rate}/s, burst {burst}: expected {want}, got {got}"
assert list(token_bucket([], 1.0, 1.0)) == [], "no requests, no answers"

# %% 17.burst_sustained | 2 points
# Catches: arrivals that are not a Poisson process (evenly spaced requests never pause, which hides what the burst is
# for): exponential gaps have a standard deviation equal to their mean.
gaps = np.diff([0.0, *answer["arrivals"]])
assert 0.75 <= gaps.std() / gaps.mean() <= 1.25, f"the gaps' coefficient of variation is {gaps.std() / gaps.mean():.2f}, not about 1: draw them with rng.exponential(1 / 3)"
