"""Checkers of notebook 17_serving."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.core import _exercise


@_exercise("17.hpa_replicas", "17_serving",
           "Write desired_replicas(current, utilisation, target, min_replicas, max_replicas): the HPA's ceil(current × utilisation / "
           "target), unchanged within ±10 % of the target, clamped to [min, max].")
def _hpa_replicas(fn):
    from recbook.serve.scaling import desired_replicas

    # (current, utilisation %, target %, min, max): scale up, within tolerance (both sides), scale down, both clamps
    cases = ((2, 150, 60, 2, 10), (3, 64, 60, 1, 10), (4, 55, 60, 1, 10), (4, 30, 60, 1, 10), (4, 10, 60, 2, 10),
             (8, 200, 60, 2, 10), (1, 95, 60, 1, 10), (6, 45, 60, 1, 20))
    for current, utilisation, target, lo, hi in cases:
        want = desired_replicas(current, utilisation, target, tolerance=0.1, min_replicas=lo, max_replicas=hi)
        got = fn(current, utilisation, target, lo, hi)
        if got != want:
            ratio = utilisation / target
            if abs(ratio - 1) <= 0.1:
                hint = f"the ratio {ratio:.3f} is within 1 ± 0.1: the HPA keeps {current} replicas (no flapping on noise)."
            elif not lo <= got <= hi:
                hint = f"the result must stay within [{lo}, {hi}]."
            else:
                hint = f"ceil({current} × {utilisation} / {target}) = ceil({current * ratio:.3f})."
            return False, f"desired_replicas({current}, {utilisation}, {target}, {lo}, {hi}) should be {want}, got {got}: {hint}"
    return True, "the HPA scales in proportion to the load per pod, with a dead band against noise and hard bounds."


@_exercise("17.percentile", "17_serving",
           "Write percentile(latencies_ms, q): NumPy's default (linear) percentile — sorted values, rank (n − 1)·q/100, interpolated.")
def _percentile(fn):
    rng = np.random.default_rng(12)
    for n in (1, 2, 7, 100, 333):
        values = rng.lognormal(3.0, 0.8, size=n)  # latency-like: a long right tail
        for q in (0, 50, 95, 99, 100):
            want = float(np.percentile(values, q))
            got = float(fn(rng.permutation(values).tolist(), q))
            if not np.isclose(got, want, rtol=1e-9, atol=1e-9):
                hint = "sort the values first." if n > 2 else "interpolate between the two values around rank (n − 1)·q/100."
                return False, f"n={n}, q={q}: expected {want:.4f}, got {got:.4f} — {hint}"
    return True, ("with 100 requests, p99 sits between the two slowest; with fewer it is nearly the maximum — "
                  "tail percentiles need many requests to be stable.")


@_exercise("17.token_bucket", "17_serving",
           "Write token_bucket(arrivals, rate, burst): which requests a token bucket (starts full, refills rate/s up to burst) lets through.")
def _token_bucket(fn):
    from recbook.serve.security import TokenBucket

    rng = np.random.default_rng(13)
    cases = [([0.0, 0.1, 0.2, 1.3, 1.4], 1.0, 1.0), ([0.0, 0.01, 0.02, 0.03, 0.6, 0.61], 2.0, 2.0)]
    cases += [(np.cumsum(rng.exponential(1 / 8.0, size=40)).tolist(), 5.0, 3.0) for _ in range(3)]
    for arrivals, rate, burst in cases:
        clock = iter([arrivals[0], *arrivals])  # the bucket is created (full) at the first arrival
        bucket = TokenBucket(rate, burst, clock=lambda: next(clock))
        want = [bucket.take() == 0.0 for _ in arrivals]
        got = [bool(x) for x in fn(list(arrivals), rate, burst)]
        if len(got) != len(want):
            return False, f"{len(arrivals)} arrivals need {len(arrivals)} answers, got {len(got)}."
        if got != want:
            first = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
            return False, (f"rate {rate}/s, burst {burst}: request {first} (t = {arrivals[first]:.3f} s) should "
                           f"{'pass' if want[first] else 'be refused'}; refill by (elapsed × rate), never above the burst, "
                           "and take a token only when one is there.")
    return True, "a burst passes at once, then the rate rules: what RECBOOK_RATE_LIMIT gives each key."


@_exercise("17.burst_sustained", "17_serving",
           "Send 60 s of Poisson arrivals at 3 requests/s through the service's TokenBucket (rate 1/s) with burst 1, 10 and 50; "
           "count what passes, the sustained rate beyond the first burst, and whether a bigger burst raises it.")
def _burst_sustained(answer):
    from recbook_course.exercises.common import _dict_with

    hint = _dict_with(answer, ("arrivals", "accepted", "sustained", "verdict"))
    if hint:
        return False, hint
    arrivals = np.asarray(answer["arrivals"], dtype=float)
    if arrivals.ndim != 1 or len(arrivals) < 2 or (np.diff(arrivals) < 0).any() or arrivals[0] < 0 or arrivals[-1] > 60:
        return False, "arrivals must be increasing times in seconds within [0, 60]: np.cumsum of exponential gaps, cut at 60."
    if not 2.5 <= len(arrivals) / 60 <= 3.5:
        return False, f"{len(arrivals)} arrivals in 60 s is {len(arrivals) / 60:.2f}/s: draw gaps with mean 1/3 s (rng.exponential(1 / 3))."
    for name in ("accepted", "sustained"):
        if not isinstance(answer[name], dict) or set(answer[name]) != {1, 10, 50}:
            return False, f"answer[{name!r}] must be a dict with keys 1, 10 and 50 (the bursts)."
    for b in (1, 10, 50):
        if not 0 < answer["accepted"][b] <= len(arrivals):
            return False, f"burst {b}: {answer['accepted'][b]} accepted of {len(arrivals)} arrivals is impossible."
        want = (answer["accepted"][b] - b) / 60
        if abs(answer["sustained"][b] - want) > 1e-9:
            return False, f"burst {b}: sustained is (accepted − burst) / 60 s = {want:.4f}, not {answer['sustained'][b]:.4f}."
    from recbook.serve.security import TokenBucket

    for b in (1, 10, 50):  # the service's own bucket on these arrivals, a fresh one per burst
        times = iter([0.0, *arrivals.tolist()])
        bucket = TokenBucket(1.0, b, clock=lambda: next(times))
        want = sum(bucket.take() == 0.0 for _ in arrivals)
        if answer["accepted"][b] != want:
            return False, (f"burst {b}: a fresh TokenBucket(1.0, {b}) lets {want} of your arrivals through, not {answer['accepted'][b]}: "
                           "make a new bucket for each burst, with a clock that returns 0.0 at creation, then each arrival's time.")
    gain = answer["sustained"][50] - answer["sustained"][1]
    flat = gain <= 0.1
    if answer["verdict"] != ("no" if flat else "yes"):
        return False, (f"sustained[50] − sustained[1] = {gain:+.3f} requests/s: {'not ' if flat else ''}more than 0.1, "
                       f"so the verdict is {'no' if flat else 'yes'!r}.")
    a, r = answer["accepted"], answer["sustained"]
    if flat:
        return True, (f"accepted {a[1]}, {a[10]} and {a[50]}: every burst sustained about the same rate ({r[1]:.3f} to {r[50]:.3f}/s) — "
                      "a burst adds its size once and the rate rules after it.")
    return True, (f"accepted {a[1]}, {a[10]} and {a[50]}: with burst 1 the key sustained only {r[1]:.2f}/s of its 1/s — after each "
                  "pass it waits for the token (1 s) and then for the next arrival (1/3 s on average), so 1 / (1 + 1/3) = 0.75. "
                  f"A deeper bucket keeps the tokens that come during pauses ({r[10]:.2f}/s with burst 10, {r[50]:.2f}/s with 50). "
                  "No burst lifts the long-run rate above 1/s: it lets a bursty client use its rate — set the rate from capacity, "
                  "the burst from the clients' spikes.")
