"""Drift monitoring: is the data (or the model's view of it) still what the model was trained on — is an update due?

Taught in notebook ``18`` (keeping a recommender good over time). Everything here compares two **discrete
distributions** — a reference (the previous window, or the base period) and a new window:

- :func:`psi` — the **population stability index** ``Σ (a − e) · ln(a / e)`` over categories with shares ``e``
  (expected, the reference) and ``a`` (actual, the new window). It is the symmetric KL divergence,
  ``KL(a‖e) + KL(e‖a)``. Credit-risk's rules of thumb: **< 0.1** no significant change, **0.1 – 0.25** a moderate
  change worth watching, **> 0.25** a major shift. Those rules assume few, well-filled categories (~10 score
  bins); with hundreds of items and a few thousand events per window, **sampling noise alone** gives a PSI
  of that size (roughly ``(K − 1)(1/n₁ + 1/n₂)`` for ``K`` categories), so thresholds here are *calibrated* on
  streams known to be stationary instead (:func:`calibrate_thresholds`).
- :func:`kl_divergence` — ``KL(p‖q) = Σ p · ln(p / q)``, asymmetric: how surprised a model of ``q`` is by ``p``.

What is compared:

- :func:`item_popularity` — each catalogue item's share of a window's interactions (new items included);
- :func:`genre_mix` — each genre's share (an item with ``k`` genres gives ``1/k`` to each);
- :func:`score_drift` — the model's score distribution: PSI on ten quantile bins of the reference's scores;
- :func:`embedding_drift` — the user-embedding distribution: mean PSI along the reference's first principal
  components.

:func:`drift_report` measures every window of a :class:`recbook.data.TemporalWindows` against the one before it
and against the base period; a :class:`DriftDetector` turns a row of measurements into an **update due**
decision (any signal over its threshold); :func:`evaluate_detector` checks it against the ground truth of
:func:`recbook.data.make_drift_stream` (detection delay, false alarms, and alarms on a stationary stream).
:func:`~recbook.continual.drift_export.drift_summary` and :class:`~recbook.continual.drift_export.DriftGauges` export the figures as Prometheus gauges (``recbook_drift_psi{signal}``,
``recbook_drift_new_item_share``, ``recbook_update_due``; :mod:`recbook.continual.drift_export`): the service shows them when
its bundle folder holds a ``drift.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recbook.data.splits import TemporalWindows

DEFAULT_EPS = 1e-4  # the share an empty category is given (then renormalised): ln(a / 0) would be infinite
NO_GENRE = "(no genre)"  # the category of an item whose ``genres`` field is empty

# ------------------------------------------------------------------ the two divergences


def _distribution(values, name: str, eps: float) -> np.ndarray:
    """Counts or shares → shares floored at ``eps`` and renormalised; a ValueError names ``name`` on bad input."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (counts or shares per category), got {type(values).__name__}") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one count or share per category), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: a distribution needs at least one category")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values at position(s) {np.flatnonzero(~np.isfinite(x))[:5].tolist()}")
    if (x < 0).any():
        raise ValueError(f"{name} holds negative counts at position(s) {np.flatnonzero(x < 0)[:5].tolist()}; counts and shares are >= 0")
    total = x.sum()
    if total <= 0:
        raise ValueError(f"{name} sums to 0: no observation to compare")
    p = np.maximum(x / total, eps)
    return p / p.sum()


def _pair(a, b, names: tuple[str, str], eps: float) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(eps, (int, float)) and 0 < eps < 1):
        raise ValueError(f"eps must be a number in (0, 1), e.g. {DEFAULT_EPS}; got {eps!r}")
    p, q = _distribution(a, names[0], eps), _distribution(b, names[1], eps)
    if p.shape != q.shape:
        raise ValueError(f"{names[0]} and {names[1]} have different lengths ({p.size} vs {q.size}): both need one value per category, "
                         "in the same order")
    return p, q


def psi(expected, actual, eps: float = DEFAULT_EPS) -> float:
    """Population stability index of ``actual`` against ``expected`` (counts or shares, one per category, same order).

    ``PSI = Σ (a − e) · ln(a / e)`` with both normalised to shares; a share of 0 is raised to ``eps`` (and the
    vector renormalised) so a category seen in one window only adds a large but finite term. Symmetric, ≥ 0,
    0 for identical distributions. Rules of thumb (for ~10 well-filled bins): < 0.1 stable, 0.1–0.25 moderate,
    > 0.25 major shift — see the module docstring for why sparse categories need calibrated thresholds instead.
    """
    e, a = _pair(expected, actual, ("expected", "actual"), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def kl_divergence(p, q, eps: float = DEFAULT_EPS) -> float:
    """``KL(p‖q) = Σ p · ln(p / q)`` in nats (counts or shares, one per category, same order; zeros floored at ``eps``).

    Asymmetric: ``p`` is the new window, ``q`` the reference. Equals ``scipy.stats.entropy(p, q)`` when no share is
    below ``eps``.
    """
    p, q = _pair(p, q, ("p", "q"), eps)
    return float(np.sum(p * np.log(p / q)))


# ------------------------------------------------------------------ distributions of one window


def _check_interactions(interactions, name: str = "interactions") -> pd.DataFrame:
    if not isinstance(interactions, pd.DataFrame) or "item_id" not in interactions.columns:
        raise ValueError(f"{name} must be a DataFrame with an item_id column, got {type(interactions).__name__}")
    if len(interactions) == 0:
        raise ValueError(f"{name} is empty: no interaction to measure a distribution on")
    return interactions


def _item_counts(interactions: pd.DataFrame, catalogue: pd.Index, name: str = "interactions") -> np.ndarray:
    counts = interactions["item_id"].value_counts()
    unknown = counts.index.difference(catalogue)
    if len(unknown):
        raise ValueError(f"{name} refer to {len(unknown)} item(s) not in the catalogue, e.g. {sorted(unknown.tolist())[:5]}; pass the "
                         "ids of every item, including those released later")
    return counts.reindex(catalogue, fill_value=0).to_numpy(dtype=np.float64)


def _catalogue(item_ids, name: str = "item_ids") -> pd.Index:
    index = pd.Index(np.asarray(item_ids).ravel())
    if len(index) == 0:
        raise ValueError(f"{name} is empty: the catalogue needs at least one item")
    if index.has_duplicates:
        raise ValueError(f"{name} holds duplicates, e.g. {index[index.duplicated()][:5].tolist()}")
    return index


def item_popularity(interactions: pd.DataFrame, item_ids) -> pd.Series:
    """Each catalogue item's share of ``interactions`` (a Series indexed by ``item_ids``, in that order, summing to 1).

    ``item_ids`` is the whole catalogue — items not yet released included (share 0), so two windows give vectors
    of the same length for :func:`psi`. An interaction on an item outside it is a ValueError.
    """
    interactions = _check_interactions(interactions)
    catalogue = _catalogue(item_ids)
    counts = _item_counts(interactions, catalogue)
    return pd.Series(counts / counts.sum(), index=catalogue, name="share")


def _genre_weights(items: pd.DataFrame) -> pd.DataFrame:
    """items × genres, each row summing to 1 (an item with k genres gives 1/k to each; no genre → ``NO_GENRE``)."""
    if not isinstance(items, pd.DataFrame) or not {"item_id", "genres"} <= set(items.columns):
        raise ValueError(f"items must be a DataFrame with item_id and genres ('A|B') columns, got "
                         f"{list(items.columns) if isinstance(items, pd.DataFrame) else type(items).__name__}")
    catalogue = _catalogue(items["item_id"], "items.item_id")
    lists = [[g.strip() for g in str(s).split("|") if g.strip()] if isinstance(s, str) else [] for s in items["genres"]]
    lists = [gs or [NO_GENRE] for gs in lists]
    genres = sorted({g for gs in lists for g in gs})
    column = {g: j for j, g in enumerate(genres)}
    w = np.zeros((len(lists), len(genres)))
    for i, gs in enumerate(lists):
        for g in gs:
            w[i, column[g]] += 1.0 / len(gs)
    return pd.DataFrame(w, index=catalogue, columns=genres)


def genre_mix(interactions: pd.DataFrame, items: pd.DataFrame) -> pd.Series:
    """Each genre's share of ``interactions`` (a Series indexed by every genre of the catalogue ``items``, summing to 1).

    ``items`` needs ``item_id`` and ``genres`` (``"A|B"``); an interaction with an item of ``k`` genres adds ``1/k``
    to each, and an item with no genre counts as ``"(no genre)"``.
    """
    interactions = _check_interactions(interactions)
    weights = _genre_weights(items)
    return _genre_mix(interactions, weights)


def _genre_mix(interactions: pd.DataFrame, weights: pd.DataFrame) -> pd.Series:
    counts = _item_counts(interactions, weights.index)
    mix = counts @ weights.to_numpy()
    return pd.Series(mix / mix.sum(), index=weights.columns, name="share")


# ------------------------------------------------------------------ what the model sees: scores and embeddings


def _finite(values, name: str, ndim: int | None = None) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {type(values).__name__}") from None
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _binned_psi(ref: np.ndarray, new: np.ndarray, bins: int, eps: float) -> float:
    """PSI of two samples on the reference's quantile bins (tied edges merged; outer bins open-ended)."""
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if inner.size == 0:  # a constant reference: one bin, and whether new values equal it
        inner = np.array([ref[0], np.nextafter(ref[0], np.inf)])
    n_bins = inner.size + 1
    a = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=n_bins)
    b = np.bincount(np.searchsorted(inner, new, side="right"), minlength=n_bins)
    return psi(a, b, eps)


def _check_bins(bins) -> None:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2 (10 deciles is usual), got {bins!r}")


def score_drift(scores_ref, scores_new, bins: int = 10, eps: float = DEFAULT_EPS) -> float:
    """PSI of the model's score distribution: ``scores_new`` against ``scores_ref`` (any shape; flattened).

    The bins are the reference's ``bins`` quantiles (deciles by default, so each holds 1/bins of the reference —
    the setting the 0.1 / 0.25 rules of thumb were made for), open-ended at both ends so new scores outside the
    reference's range still count. Scores of the same model on two windows' users (or candidates) make a signal
    that needs no labels.
    """
    _check_bins(bins)
    ref = _finite(scores_ref, "scores_ref").ravel()
    new = _finite(scores_new, "scores_new").ravel()
    return _binned_psi(ref, new, bins, eps)


def embedding_drift(emb_ref, emb_new, n_components: int = 5, bins: int = 10, eps: float = DEFAULT_EPS) -> float:
    """Drift of the user-embedding distribution: the **mean PSI along the reference's first principal components**.

    Both matrices (rows = users, same width) are centred on the reference's mean and projected on the reference's
    top ``n_components`` principal axes; each axis gives a PSI on the reference's quantile bins (as
    :func:`score_drift`) and the mean is returned. Why this choice rather than the distance between mean
    embeddings: it is in PSI units (one scale for every signal), it sees a change of spread or shape as well as a
    moved mean, and it looks only at the directions the reference actually varies in (raw coordinates of a
    learnt embedding are arbitrary and mostly noise). It needs enough users per window to fill the bins
    (≥ 10 × ``bins`` is a fair minimum).
    """
    _check_bins(bins)
    ref = _finite(emb_ref, "emb_ref", ndim=2)
    new = _finite(emb_new, "emb_new", ndim=2)
    if ref.shape[1] != new.shape[1]:
        raise ValueError(f"emb_ref and emb_new have different widths ({ref.shape[1]} vs {new.shape[1]}): embeddings of the same model")
    if ref.shape[0] < 2:
        raise ValueError(f"emb_ref needs at least 2 rows (users) to have principal components, got {ref.shape[0]}")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    mean = ref.mean(axis=0)
    _, s, vt = np.linalg.svd(ref - mean, full_matrices=False)
    keep = vt[: min(n_components, int((s > s.max() * 1e-9).sum()) if s.size and s.max() > 0 else 0)]
    if keep.shape[0] == 0:
        raise ValueError("emb_ref has no spread (all rows equal): there is no principal component to measure drift along")
    pr, pn = (ref - mean) @ keep.T, (new - mean) @ keep.T
    return float(np.mean([_binned_psi(pr[:, j], pn[:, j], bins, eps) for j in range(keep.shape[0])]))


# ------------------------------------------------------------------ a report over temporal windows


def drift_report(windows: TemporalWindows, items: pd.DataFrame, eps: float = DEFAULT_EPS) -> pd.DataFrame:
    """One row per update window ``w`` (index 1 … ``n_windows``) of data-drift measurements.

    Columns: ``interactions``; ``new_items`` (items first seen in ``w``) and ``new_item_share`` (the share of
    ``w``'s interactions on them); ``psi_popularity`` / ``kl_popularity`` (item popularity of ``w`` against
    ``w − 1``), ``psi_genre`` / ``kl_genre`` (genre mix, the same), the four again with suffix ``_base`` against
    the base period (window 0), and ``genre_up`` — the genre whose share grew most since ``w − 1``. KL is
    ``KL(window w ‖ reference)``. ``items`` is the catalogue (``item_id``, ``genres``).
    """
    if not hasattr(windows, "window") or not hasattr(windows, "n_windows"):
        raise ValueError(f"windows must be a recbook.data.TemporalWindows (from temporal_windows(...)), got {type(windows).__name__}")
    weights = _genre_weights(items)
    pops, mixes = [], []
    for w in range(windows.n_windows + 1):
        part = _check_interactions(windows.window(w), f"window {w}")
        counts = _item_counts(part, weights.index, f"window {w}'s interactions")
        pops.append(counts)
        mixes.append(_genre_mix(part, weights))
    rows = []
    for w in range(1, windows.n_windows + 1):
        part = windows.window(w)
        cold = windows.cold_items(w)
        up = (mixes[w] - mixes[w - 1]).idxmax()
        rows.append({"window": w, "interactions": len(part), "new_items": len(cold),
                     "new_item_share": float(part["item_id"].isin(cold).mean()),
                     "psi_popularity": psi(pops[w - 1], pops[w], eps), "kl_popularity": kl_divergence(pops[w], pops[w - 1], eps),
                     "psi_genre": psi(mixes[w - 1], mixes[w], eps), "kl_genre": kl_divergence(mixes[w], mixes[w - 1], eps),
                     "psi_popularity_base": psi(pops[0], pops[w], eps), "kl_popularity_base": kl_divergence(pops[w], pops[0], eps),
                     "psi_genre_base": psi(mixes[0], mixes[w], eps), "kl_genre_base": kl_divergence(mixes[w], mixes[0], eps),
                     "genre_up": up})
    return pd.DataFrame(rows).set_index("window")


def stream_report(dataset, eps: float = DEFAULT_EPS) -> pd.DataFrame:
    """:func:`drift_report` of a :func:`recbook.data.make_drift_stream` dataset on its own windows (window 0 = base)."""
    from recbook.data.splits import temporal_windows

    truth = (getattr(dataset, "info", None) or {}).get("drift")
    if not truth:
        raise ValueError("dataset has no info['drift']: pass a stream from recbook.data.make_drift_stream")
    windows = temporal_windows(dataset.interactions, bounds=truth["window_bounds"][1:])
    return drift_report(windows, dataset.items, eps)


# ------------------------------------------------------------------ from measurements to a decision

DEFAULT_SIGNALS = ("psi_popularity", "psi_genre", "new_item_share")
CALIBRATION_SEEDS = range(100, 140)  # stationary streams used for the default thresholds — never the evaluation seeds 0–9
# Calibrated with calibrate_thresholds(CALIBRATION_SEEDS, quantile=0.99, margin=1.25) on the default make_drift_stream
# (300 users, 300 items, 2500 events per window): see DriftDetector.
DEFAULT_THRESHOLDS = {"psi_popularity": 0.512, "psi_genre": 0.0316, "new_item_share": 0.0335}


@dataclass
class DriftDetector:
    """Turns a window's measurements into an **update due** decision: due when at least ``min_signals`` of the
    signals in ``thresholds`` (report column → threshold) are **strictly above** their threshold. ``min_signals``
    defaults to two (one when a single signal is watched): a real shift moves several signals at once, while
    sampling noise pushes one at a time over its line.

    The default thresholds (:data:`DEFAULT_THRESHOLDS`) watch item popularity and genre mix against the previous
    window (``psi_popularity``, ``psi_genre``) and the share of interactions on new items (``new_item_share``).
    They were calibrated, not taken from the 0.1 / 0.25 rules of thumb: on the stationary streams
    (``change_window=None``) of seeds 100–139 — different from the evaluation seeds 0–9 — each is the 99th
    percentile of that signal over all 200 windows, times a margin of 1.25. Sampling noise alone puts the
    popularity PSI of two windows of ~2500 events over 300 items near 0.3, which the 0.25 rule would call a major
    shift. They hold for streams of that size: a window with other counts or another catalogue has another noise
    floor — calibrate there (:meth:`calibrate`, :func:`calibrate_thresholds`).

    Measured with :func:`evaluate_detector` on seeds 0–9 (default stream, change at window 3): with two signals
    required, detected in the change window itself for 10 of 10 seeds, no alarm before the change and none in the
    50 stationary windows — also for a smaller drift (``taste_shift=0.2, genre_boost=0.7, new_items=0.05``).
    With one signal enough, 2 of the 10 stationary streams raised an alarm (``psi_genre`` early in the stream,
    when users' first picks still deplete their favourite genres).
    """

    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    min_signals: int | None = None  # None: two, or one when a single signal is watched

    def __post_init__(self):
        if not isinstance(self.thresholds, Mapping) or not self.thresholds:
            raise ValueError(f"thresholds must be a non-empty dict signal -> threshold, got {self.thresholds!r}")
        for name, value in self.thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"thresholds[{name!r}] must be a finite number, got {value!r}")
        self.thresholds = {str(k): float(v) for k, v in self.thresholds.items()}
        if self.min_signals is None:
            self.min_signals = min(2, len(self.thresholds))
        if isinstance(self.min_signals, bool) or not isinstance(self.min_signals, int) or not 1 <= self.min_signals <= len(self.thresholds):
            raise ValueError(f"min_signals must be an integer in [1, {len(self.thresholds)}], got {self.min_signals!r}")

    def over(self, measurements: Mapping) -> list[str]:
        """The signals above their threshold in ``measurements`` (a dict or a report row); a missing signal is a ValueError."""
        missing = [s for s in self.thresholds if s not in measurements]
        if missing:
            raise ValueError(f"measurements lack signal(s) {missing} the detector has thresholds for; they have {list(measurements.keys())}")
        return [s for s, t in self.thresholds.items() if float(measurements[s]) > t]

    def decide(self, measurements: Mapping) -> bool:
        """True when an update is due."""
        return len(self.over(measurements)) >= self.min_signals

    def apply(self, report: pd.DataFrame) -> pd.DataFrame:
        """``report`` with two columns added: ``update_due`` (bool) and ``signals_over`` (comma-separated names)."""
        over = [self.over(row) for _, row in report.iterrows()]
        return report.assign(update_due=[len(o) >= self.min_signals for o in over], signals_over=[",".join(o) for o in over])

    @classmethod
    def calibrate(cls, reports, quantile: float = 0.99, margin: float = 1.0, signals=DEFAULT_SIGNALS, min_signals: int | None = None) -> DriftDetector:
        """Thresholds from reports of streams **known to be stationary**: per signal, the ``quantile`` of its values over
        every window of every report, times ``margin``."""
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        reports = list(reports)
        if not reports:
            raise ValueError("reports is empty: calibration needs at least one stationary report")
        pooled = pd.concat(reports)
        missing = [s for s in signals if s not in pooled.columns]
        if missing:
            raise ValueError(f"the reports lack signal(s) {missing}; they have {list(pooled.columns)}")
        return cls({s: round(float(np.quantile(pooled[s].to_numpy(dtype=float), quantile) * margin), 4) for s in signals}, min_signals)


def calibrate_thresholds(seeds=CALIBRATION_SEEDS, quantile: float = 0.99, margin: float = 1.25, signals=DEFAULT_SIGNALS,
                         **stream_kwargs) -> dict:
    """The thresholds :meth:`DriftDetector.calibrate` derives from the stationary streams
    ``make_drift_stream(seed, change_window=None, **stream_kwargs)`` of ``seeds`` (how :data:`DEFAULT_THRESHOLDS`
    were made)."""
    from recbook.data.synthetic import make_drift_stream

    stream_kwargs.pop("change_window", None)
    reports = [stream_report(make_drift_stream(seed, change_window=None, **stream_kwargs)) for seed in seeds]
    return DriftDetector.calibrate(reports, quantile, margin, signals).thresholds


def evaluate_detector(detector: DriftDetector, seeds=range(10), **stream_kwargs) -> dict:
    """Run ``detector`` on ``make_drift_stream(seed, **stream_kwargs)`` (drift at ``change_window``, 3 by default) and on
    the stationary stream of the same seed (``change_window=None``) for every seed.

    Returns ``seeds`` (how many), ``change_window``, ``detection_rate`` (share of seeds whose first alarm at or after
    the change comes within one window: at ``change_window`` or the next), ``mean_delay`` (windows from the change to
    that first alarm, over seeds that raise one at all; NaN if none does), ``false_alarms_per_window`` (alarms in the
    drift stream's windows before the change, per window), ``stationary_false_alarm_rate`` (alarms per window of the
    stationary streams), ``stationary_streams_with_alarm`` (share of stationary streams with any alarm) and
    ``per_seed`` (a DataFrame: seed, first alarm, delay, alarms before the change, stationary alarms).
    """
    from recbook.data.synthetic import make_drift_stream

    if not isinstance(detector, DriftDetector):
        raise ValueError(f"detector must be a DriftDetector, got {type(detector).__name__}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: evaluate on at least one seed")
    change = stream_kwargs.pop("change_window", 3)
    if change is None:
        raise ValueError("change_window must be a window number: the stationary stream is run for every seed anyway")
    rows = []
    for seed in seeds:
        drifted = detector.apply(stream_report(make_drift_stream(seed, change_window=change, **stream_kwargs)))["update_due"]
        steady = detector.apply(stream_report(make_drift_stream(seed, change_window=None, **stream_kwargs)))["update_due"]
        after = [w for w in drifted.index if w >= change and drifted[w]]
        first = after[0] if after else None
        rows.append({"seed": seed, "first_alarm": first, "delay": None if first is None else first - change,
                     "detected": first is not None and first - change <= 1,
                     "alarms_before_change": int(drifted[drifted.index < change].sum()), "windows_before_change": int((drifted.index < change).sum()),
                     "stationary_alarms": int(steady.sum()), "stationary_windows": len(steady)})
    per_seed = pd.DataFrame(rows)
    delays = per_seed["delay"].dropna().astype(float)
    before = per_seed["windows_before_change"].sum()
    return {"seeds": len(seeds), "change_window": change,
            "detection_rate": float(per_seed["detected"].mean()),
            "mean_delay": float(delays.mean()) if len(delays) else float("nan"),
            "false_alarms_per_window": float(per_seed["alarms_before_change"].sum() / before) if before else float("nan"),
            "stationary_false_alarm_rate": float(per_seed["stationary_alarms"].sum() / per_seed["stationary_windows"].sum()),
            "stationary_streams_with_alarm": float((per_seed["stationary_alarms"] > 0).mean()),
            "per_seed": per_seed}


__all__ = ["CALIBRATION_SEEDS", "DEFAULT_SIGNALS", "DEFAULT_THRESHOLDS", "DriftDetector", "calibrate_thresholds", "drift_report",
           "embedding_drift", "evaluate_detector", "genre_mix", "item_popularity", "kl_divergence", "psi", "score_drift",
           "stream_report"]
