"""How good is the live drift alarm? Its false-alarm rate and its power, measured — and the textbook tests on the same windows.

A drift alarm is a statistical test run again and again. On traffic that has not drifted every alarm is false; on
traffic that has, every silence is a miss. Neither rate can be read off one example, so :func:`power_curve` measures
both by **replaying** traffic into fresh live windows (:meth:`~recbook.serve.live_drift.LiveDrift.fresh`), filled
exactly as the service fills them — one request's history at a time — many times over:

- the alarm is calibrated on ``reference`` histories: what the bundle was trained on;
- **null traffic** draws from ``null`` histories — the same period, users the calibration never saw: the traffic a
  freshly trained bundle should receive. Every alarm on it is false. Its rate comes with an exact (Clopper–Pearson)
  95% interval, so "0 of 300" reads "at most 1.2%", not "never";
- **drifted traffic of size δ**: each request's history comes from ``drifted`` with probability ``δ``, else from
  ``null`` — a share ``δ`` of the users behaving like the drifted source. The alarm rate at ``δ`` is the test's
  **power** there; over ``δ`` it is the power curve.

On the very same windows it runs the tests that maintained drift libraries apply by default to one categorical
feature — here, which items the requests' histories hold — against the reference's item counts:

- ``chi2``: Pearson's χ² test of the 2 × items contingency table over the items seen in either, drift when
  p < 0.05 — alibi-detect's ``ChiSquareDrift`` with its defaults (``scipy.stats.chi2_contingency``);
- ``jensen_shannon``: the Jensen–Shannon distance of the two item shares, drift when ≥ 0.1 — Evidently's default
  test for a categorical column with a reference of more than 1000 values (``jensenshannon``);
- ``psi_0.1`` and ``psi_0.25``: Evidently's PSI of the shares (an empty share is filled with 1e-4, or with a
  millionth of the smallest non-empty share when that is below 1e-4), drift when ≥ 0.1 (Evidently's ``psi`` test)
  or > 0.25 (the credit-risk rule of thumb).

They are written here with scipy, the code those libraries call, because none of the three imports next to this
course's stack (Evidently 0.7 fails on pandas 3; alibi-detect 0.13 pins numpy < 2; NannyML pulls in a second ML stack).
``tools/evidently_crosscheck.py``, run in a separate environment with Evidently and pandas 2, checks the Evidently
two against Evidently's own code; the χ² follows alibi-detect's ``ChiSquareDrift.feature_score`` line by line.
Their lines were not chosen for this setting. The distance lines (0.1, 0.25) suit a few well-filled categories, not
~1,700 items seen a few thousand times; the χ² test assumes the window's items are **independent** draws, while a
request brings a whole history and one user's films cluster. Either can make a fixed line fire on sampling noise
alone. The live alarm's line comes from windows of whole reference histories, which carry both the sparsity and the
clustering. :func:`power_curve` shows the difference as false-alarm rates; it does not separate the two causes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recbook.serve.live_drift import LiveDrift

LIBRARY_TESTS = ("chi2", "jensen_shannon", "psi_0.1", "psi_0.25")
DEFAULT_SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _histories(histories, name: str, n_items: int) -> list[np.ndarray]:
    try:
        out = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a list of histories (sequences of catalogue rows): {exc}") from None
    out = [h for h in out if len(h)]
    if not out:
        raise ValueError(f"{name} holds no non-empty history")
    bad = next((h for h in out if h.min() < 0 or h.max() >= n_items), None)
    if bad is not None:
        raise ValueError(f"{name} holds catalogue row {int(bad.min() if bad.min() < 0 else bad.max())}, outside [0, {n_items})")
    return out


def library_tests(reference_counts, window_counts, p_value: float = 0.05) -> dict:
    """The default categorical drift tests of the maintained libraries on item counts (see the module docstring).

    Returns ``{test: (statistic, drift)}`` for ``chi2`` (the statistic is the p-value), ``jensen_shannon``, ``psi_0.1``
    and ``psi_0.25``. Items absent from both are dropped (a χ² table cannot hold an empty column)."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    ref, cur = np.asarray(reference_counts, dtype=np.float64), np.asarray(window_counts, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"reference_counts and window_counts must be 1-D and of one length, got {ref.shape} and {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("reference_counts and window_counts must each count at least one item")
    keep = (ref + cur) > 0  # the union of the categories either side holds (alibi-detect and Evidently alike)
    ref, cur = ref[keep], cur[keep]
    p = chi2_contingency(np.stack([ref, cur])).pvalue
    ref_share, cur_share = ref / ref.sum(), cur / cur.sum()
    js = float(jensenshannon(ref_share, cur_share))
    e, a = _filled(ref_share), _filled(cur_share)
    psi = float(np.sum((e - a) * np.log(e / a)))
    return {"chi2": (float(p), bool(p < p_value)), "jensen_shannon": (js, js >= 0.1),
            "psi_0.1": (psi, psi >= 0.1), "psi_0.25": (psi, psi > 0.25)}


def _filled(shares: np.ndarray) -> np.ndarray:
    """Evidently's rule for empty shares before a PSI: 1e-4, or a millionth of the smallest non-empty share if that is
    1e-4 or less (``evidently.legacy.calculations.stattests.utils.get_binned_data``)."""
    smallest = shares[shares > 0].min()
    return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)


def proportion_ci(k: int, n: int) -> tuple[float, float]:
    """The exact (Clopper–Pearson) 95% interval of a rate of ``k`` events in ``n`` trials (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def replay(live: LiveDrift, histories: Sequence[np.ndarray]) -> dict:
    """Send ``histories`` (one per request, in order) into a fresh copy of ``live`` and measure its windows.

    Returns :meth:`LiveDrift.measure`'s dict plus ``signals`` (the names over their threshold) and ``item_counts``."""
    twin = live.fresh()
    for h in histories:
        twin.observe(h)
    out = twin.measure()
    out["signals"] = [s for s, t in twin.thresholds.items() if out[s] > t]
    out["item_counts"] = twin.window_item_counts()
    return out


def _fill(live: LiveDrift, rng: np.random.Generator, null: list, drifted: list, share: float) -> list[np.ndarray]:
    """Requests until both live windows are full: each history from ``drifted`` with probability ``share``."""
    out, items = [], 0
    while len(out) < live.request_window or items < live.window:
        pool = drifted if rng.random() < share else null
        h = pool[rng.integers(len(pool))]
        out.append(h)
        items += min(len(h), live.window)
    return out


def power_curve(reference, null, drifted, n_items: int, shares=DEFAULT_SHARES, draws: int = 200, window: int = 5000,
                request_window: int | None = None, seed: int = 0, matched_quantile: float = 0.99, progress: bool = False) -> pd.DataFrame:
    """The live alarm's (and the library tests') alarm rate on replayed traffic, for each drift size in ``shares``.

    ``reference``, ``null`` and ``drifted`` are lists of histories (catalogue rows, ``0 … n_items − 1``): the alarm is
    calibrated on ``reference`` (:class:`LiveDrift` with ``window`` / ``request_window``, seeded), and each of
    ``draws`` windows per share mixes ``drifted`` (with probability ``share``) into ``null`` histories. Share 0 is
    the false-alarm rate. Windows are drawn with common random numbers: draw ``i`` uses the same seed at every share.

    Returns one row per (share, test): ``share``, ``test`` (``live`` — the service's alarm —, ``live:item_popularity``,
    ``live:history_length`` — each signal alone —, and :data:`LIBRARY_TESTS`), ``alarms``, ``draws``, ``rate``,
    ``ci_low``, ``ci_high`` (Clopper–Pearson 95%), ``median_statistic`` (the PSI, distance or p-value; for ``live``
    the largest signal ÷ its threshold) and ``matched_rate``: the alarm rate had the test's threshold been the
    ``matched_quantile`` of its own statistic on the first share's draws (share 0 when ``shares`` starts there) — every
    test then raises about the same share of false alarms, so the column compares the statistics themselves. Set on the
    draws it is then applied to, it is an in-sample, slightly optimistic figure at share 0. ``attrs["thresholds"]`` holds
    the live alarm's calibrated lines."""
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    reference, null, drifted = (_histories(h, name, int(n_items)) for h, name in
                                ((reference, "reference"), (null, "null"), (drifted, "drifted")))
    shares = [float(s) for s in shares]
    if not shares or any(not 0.0 <= s <= 1.0 for s in shares):
        raise ValueError(f"shares must be drift sizes in [0, 1], got {shares}")
    if not 0.5 <= matched_quantile < 1:
        raise ValueError(f"matched_quantile must be in [0.5, 1), got {matched_quantile}")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    rows = np.concatenate(reference)
    live = LiveDrift(rows, np.array([len(h) for h in reference]), int(n_items), window=window, request_window=request_window, seed=seed)
    ref_counts = np.bincount(rows, minlength=int(n_items))
    from tqdm.auto import tqdm

    records, null_statistic = [], {}
    for share in tqdm(shares, desc="drift sizes", disable=not progress):
        stats: dict[str, list] = {}
        for i in range(int(draws)):
            rng = np.random.default_rng([seed, i])
            out = replay(live, _fill(live, rng, null, drifted, share))
            full_results = {"live": (max(out[s] / max(t, 1e-12) for s, t in live.thresholds.items()), bool(out["update_due"]))}
            for s, t in live.thresholds.items():
                full_results[f"live:{s}"] = (out[s], out[s] > t)
            full_results.update(library_tests(ref_counts, out["item_counts"]))
            for name, value in full_results.items():
                stats.setdefault(name, []).append(value)
        for name, values in stats.items():
            alarms = sum(flag for _, flag in values)
            low, high = proportion_ci(alarms, len(values))
            statistic = np.array([v for v, _ in values], dtype=np.float64)
            if name not in null_statistic:  # the first share (0 when given): the statistic's own null draws
                null_statistic[name] = statistic
            records.append({"share": share, "test": name, "alarms": int(alarms), "draws": len(values), "rate": alarms / len(values),
                            "ci_low": low, "ci_high": high, "median_statistic": float(np.median(statistic)),
                            "matched_rate": _matched_rate(name, statistic, null_statistic[name], matched_quantile)})
    out = pd.DataFrame(records)
    out.attrs["thresholds"] = dict(live.thresholds)  # the live alarm's lines, calibrated on ``reference``
    return out


def _matched_rate(name: str, statistic: np.ndarray, null: np.ndarray, quantile: float) -> float:
    """The alarm rate with the test's threshold moved to the ``quantile`` of its own null draws (for the χ² p-value,
    which falls as drift grows, the ``1 − quantile``): how well the statistic separates, whatever its default line."""
    if name == "chi2":
        return float(np.mean(statistic < np.quantile(null, 1 - quantile)))
    return float(np.mean(statistic > np.quantile(null, quantile)))


def period_pools(before, after, item_ids, seed: int = 0, min_length: int = 2) -> dict:
    """The three pools of :func:`power_curve` from two periods of interactions (``user_id``, ``item_id``, in time order).

    ``before`` (the period a bundle was trained on) gives each user's history; its users are split at random, half
    and half, into ``reference`` (the alarm's calibration) and ``null`` (traffic from users it never saw, same period).
    ``drifted`` holds each user's history within ``after`` (what users watched since). Histories shorter than
    ``min_length`` are left out; items not in ``item_ids`` are an error. Returns ``{"reference", "null", "drifted"}``
    (lists of catalogue-row arrays) and ``"users"`` (how many histories each holds)."""
    rows = {item: r for r, item in enumerate(item_ids)}

    def histories(frame, name):
        missing = [i for i in frame["item_id"].unique() if i not in rows]
        if missing:
            raise ValueError(f"{name} holds item_id {missing[0]!r}, not in item_ids ({len(missing)} unknown in all)")
        return {u: np.array([rows[i] for i in g["item_id"]], dtype=np.int64) for u, g in frame.groupby("user_id", sort=True)
                if len(g) >= min_length}

    for frame, name in ((before, "before"), (after, "after")):
        if not isinstance(frame, pd.DataFrame) or not {"user_id", "item_id"} <= set(frame.columns):
            raise ValueError(f"{name} must be a DataFrame with user_id and item_id columns")
    old, new = histories(before, "before"), histories(after, "after")
    if len(old) < 2 or not new:
        raise ValueError(f"before needs at least 2 users and after at least 1 with {min_length}+ interactions; "
                         f"they have {len(old)} and {len(new)}")
    users = np.array(sorted(old))
    np.random.default_rng(seed).shuffle(users)
    half = len(users) // 2
    out = {"reference": [old[u] for u in users[:half]], "null": [old[u] for u in users[half:]], "drifted": list(new.values())}
    out["users"] = {k: len(v) for k, v in out.items()}
    return out


def smallest_detected_share(curve: pd.DataFrame, test: str = "live", power: float = 0.8) -> float | None:
    """The smallest drift size whose alarm rate's 95% interval lies wholly at or above ``power`` (None if none does)."""
    rows = curve[(curve["test"] == test) & (curve["share"] > 0) & (curve["ci_low"] >= power)]
    return float(rows["share"].min()) if len(rows) else None


__all__ = ["DEFAULT_SHARES", "LIBRARY_TESTS", "library_tests", "period_pools", "power_curve", "proportion_ci", "replay", "smallest_detected_share"]
