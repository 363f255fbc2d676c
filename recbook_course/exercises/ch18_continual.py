"""Checkers of notebook 18_continual."""

from __future__ import annotations

import numpy as np

from recbook_course.exercises.core import _exercise


@_exercise("18.psi", "18_continual",
           "Write psi(expected_counts, actual_counts): the population stability index Σ (a − e)·ln(a / e) of the two count "
           "vectors turned into shares, each share floored at 1e-4 (then renormalised) so an empty bin does not explode.")
def _psi(fn):
    from recbook.continual.drift import psi

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


@_exercise("18.reservoir", "18_continual",
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


@_exercise("18.update_due", "18_continual",
           "Write update_due(measurements, thresholds, min_signals): True when at least min_signals of the signals in "
           "thresholds are strictly above their threshold.")
def _update_due(fn):
    from recbook.continual.drift import DriftDetector

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
    return True, ("now run evaluate_detector with DriftDetector(detector.thresholds, min_signals=1) and compare its "
                  "stationary_streams_with_alarm with section 3's: that is what asking two signals to agree buys.")


@_exercise("18.epochs_forgetting", "18_continual",
           "Run `finetune` from section 4's base model with 1 and with 8 epochs per window (one seed, everything else as "
           "tuned); compare their forgetting on held-out events, paired (8 epochs − 1 epoch), and say whether 8 epochs "
           "forget 'more', 'less' or whether the difference is 'not shown'.")
def _epochs_forgetting(answer):
    from recbook.evaluation.stats import interval_verdict, paired_comparison
    from recbook_course.exercises.common import _dict_with

    hint = _dict_with(answer, ("results", "diff_low", "diff_high", "verdict"), "results ({1: result, 8: result}), diff_low, diff_high and verdict")
    if hint:
        return False, hint
    runs = answer["results"]
    if not isinstance(runs, dict) or set(runs) != {1, 8}:
        return False, "results must map the epochs, 1 and 8, to what run_strategies returned for each."
    for epochs, result in runs.items():
        if not hasattr(result, "forgetting") or "finetune" not in getattr(result, "next_window", {}):
            return False, f"results[{epochs}] must be a ContinualResult of run_strategies with 'finetune' among the strategies."
        trained = result.costs[(result.costs["strategy"] == "finetune") & (result.costs["examples"] > 0)]
        if "epochs" not in trained or set(trained["epochs"].dropna().astype(int)) != {epochs}:
            return False, (f"results[{epochs}]: its finetune updates ran {sorted(set(trained.get('epochs', [])))} epochs; set "
                           f"UpdateConfig(epochs={epochs}) for that run.")
    if runs[1].seed != runs[8].seed:
        return False, f"run both with one seed (got {runs[1].seed} and {runs[8].seed}): otherwise the seed changes too."
    a, b = runs[8].forgetting("finetune"), runs[1].forgetting("finetune")
    if len(a) == 0 or not a.index.equals(b.index):
        return False, "the two runs must score the same held-out events (the same stream, windows and max_per_user)."
    ref = paired_comparison(a, b, ("8 epochs", "1 epoch"))
    low, high = float(answer["diff_low"]), float(answer["diff_high"])
    if not low <= ref.diff.mean <= high:
        return False, (f"your interval [{low:+.4f}, {high:+.4f}] does not hold the mean paired difference of your runs' "
                       f"forgetting, {ref.diff.mean:+.4f}: compare results[8].forgetting('finetune') with results[1]'s, 8 minus 1.")
    want = interval_verdict(low, high, "more", "less")
    if answer["verdict"] != want:
        return False, (f"from your interval [{low:+.4f}, {high:+.4f}] the verdict is {want!r}: 'more' needs the whole interval above "
                       "0, 'less' below it; an interval that holds 0 shows no difference.")
    cpu = {e: float(r.costs.loc[r.costs["strategy"] == "finetune", "cpu_s"].sum()) for e, r in runs.items()}
    meaning = {"more": "the longer each update leans on the new window alone, the more of the old windows it overwrites",
               "less": "the longer updates did not overwrite the old windows — they served their held-out events better, a sign that "
                     "the windows share much of what users like",
               "not shown": "no difference in forgetting is shown at this sample size"}[want]
    return True, (f"8 − 1 epochs: forgetting {ref.diff.mean:+.4f} [{low:+.4f}, {high:+.4f}] → {want}: {meaning}. CPU of the "
                  f"updates: {cpu[8]:.1f} s against {cpu[1]:.1f} s.")
