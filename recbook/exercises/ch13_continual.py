"""Checkers of notebook 13_continual."""

from __future__ import annotations

import numpy as np

from .core import _exercise


@_exercise("13.psi", "13_continual",
           "Write psi(expected_counts, actual_counts): the population stability index Σ (a − e)·ln(a / e) of the two count "
           "vectors turned into shares, each share floored at 1e-4 (then renormalised) so an empty bin does not explode.")
def _psi(fn):
    from ..drift import psi

    rng = np.random.default_rng(13)
    cases = [([10, 20, 30], [10, 20, 30]), ([5, 0, 5], [0, 5, 5]), ([100, 1, 1, 1], [1, 1, 1, 100])]
    cases += [(rng.integers(0, 50, size=n), rng.integers(0, 50, size=n)) for n in (5, 40, 300)]
    for expected, actual in cases:
        want, got = psi(expected, actual), float(fn(list(expected), list(actual)))
        if not np.isclose(got, want, rtol=1e-6, atol=1e-9):
            hint = "identical distributions must give 0." if want == 0 else "divide counts by their sum, floor at 1e-4 and renormalise."
            return False, f"expected {want:.6f}, got {got:.6f} for {len(expected)} bins — {hint}"
    return True, ("two samples of one distribution do not give PSI 0: with few events per bin noise alone gives a clear PSI "
                  "— calibrate thresholds on data without drift.")


@_exercise("13.reservoir", "13_continual",
           "Write reservoir(stream, capacity, rng): Algorithm R — keep the first `capacity` items, then replace a random slot "
           "with item n (1-based) with probability capacity / n.")
def _reservoir(fn):
    stream = list(range(400))
    kept = np.zeros(len(stream))
    for seed in range(300):
        out = list(fn(stream, 40, np.random.default_rng(seed)))
        if len(out) != 40 or len(set(out)) != 40 or not set(out) <= set(stream):
            return False, f"the reservoir must hold 40 distinct items of the stream, got {len(out)} ({len(set(out))} distinct)"
        kept[out] += 1
    short = list(fn(list(range(5)), 40, np.random.default_rng(0)))
    if sorted(short) != list(range(5)):
        return False, "a stream shorter than the capacity must be kept whole"
    early, late = kept[:200].mean() / 300, kept[200:].mean() / 300
    if not (abs(early - 0.1) < 0.015 and abs(late - 0.1) < 0.015):
        return False, (f"every item should be kept with probability 40/400 = 0.10; the first half was kept {early:.3f}, "
                       f"the second {late:.3f} of the time — is the replacement probability capacity / n?")
    return True, "old and new items are equally likely to stay: the replay buffer remembers every window, not only the last."


@_exercise("13.update_due", "13_continual",
           "Write update_due(measurements, thresholds, min_signals): True when at least min_signals of the signals in "
           "thresholds are strictly above their threshold.")
def _update_due(fn):
    from ..drift import DriftDetector

    rng = np.random.default_rng(131)
    thresholds = {"psi_popularity": 0.5, "psi_genre": 0.03, "new_item_share": 0.03}
    for _ in range(200):
        m = {k: float(v * rng.choice([0.5, 1.0, 1.5])) for k, v in thresholds.items()}
        for min_signals in (1, 2, 3):
            want = DriftDetector(thresholds, min_signals).decide(m)
            got = bool(fn(m, thresholds, min_signals))
            if got != want:
                return False, (f"measurements {m}, min_signals {min_signals}: expected {want}, got {got} "
                               "(a value equal to its threshold is not above it)")
    return True, "requiring two signals to agree is what keeps sampling noise from calling for updates."
