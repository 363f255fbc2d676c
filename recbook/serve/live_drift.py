"""Drift of what the service *receives*, against what its bundle learned from.

``drift.json`` (written by ``recbook update``) describes the data a bundle was trained on: useful to decide when that
data moved, but it says nothing about today's traffic — a freshly updated bundle ships ``update_due = 1`` because
the update was due. This module watches live requests instead:

- a rolling window of the item ids in the histories that requests send (the last ``window`` items) and of the
  histories' lengths (the last ``request_window`` requests);
- each compared with the bundle's own histories — the training reference — by the population stability index
  (:func:`recbook.continual.drift.psi`): item popularity over the catalogue, and history length over a few bins;
- each PSI against a threshold **calibrated on the reference itself**: windows of the same size filled with whole
  histories drawn from the reference (as live windows fill, request by request) give the PSI that sampling noise alone
  produces (hundreds of categories and a few thousand
  items make that far above the textbook 0.25); the threshold is a high quantile of it times a margin, so a service
  receiving the traffic it was trained on stays quiet, and a shifted stream trips it.

Only histories sent in the request count (``history`` of ``/recommend``, ``/rerank``, ``/explain``): a ``user_id``
request re-reads a stored history, which is the reference itself.
"""

from __future__ import annotations

import copy
import threading
from collections import deque

import numpy as np

LENGTH_BINS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 10**9)  # history length bins: [0], [1], [2, 5), … ; the last is open


def _shares(counts: np.ndarray, eps: float) -> np.ndarray:
    p = counts.astype(np.float64)
    total = p.sum()
    p = p / total if total > 0 else np.full(len(p), 1.0 / len(p))
    p = np.maximum(p, eps)
    return p / p.sum()


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def length_bin(length: int) -> int:
    return int(np.searchsorted(LENGTH_BINS, length, side="right") - 1)


class LiveDrift:
    """Rolling-window PSI of live request histories against the bundle's histories (the training reference).

    ``reference_rows``: every catalogue row in the bundle's histories; ``reference_lengths``: their lengths;
    ``window``: items in the live item window; ``request_window``: requests in the length window (default
    ``max(50, window // 20)``); the alarm needs both windows full. ``quantile`` and ``margin`` set
    the threshold from ``draws`` reference-sampled windows (seeded). Thread-safe (requests run in worker threads).
    """

    def __init__(self, reference_rows: np.ndarray, reference_lengths: np.ndarray, n_items: int, window: int = 5000,
                 request_window: int | None = None, quantile: float = 0.99, margin: float = 1.25, draws: int = 200,
                 eps: float = 1e-4, seed: int = 0):
        if not isinstance(window, int) or window < 10:
            raise ValueError(f"window must be an integer >= 10 items, got {window!r}")
        if not 0 < quantile < 1 or margin < 1 or draws < 10:
            raise ValueError("quantile must be in (0, 1), margin >= 1, draws >= 10")
        self.n_items, self.window, self.eps = int(n_items), window, eps
        self.request_window = int(request_window or max(50, window // 20))
        ref_items = np.bincount(np.asarray(reference_rows, dtype=np.int64), minlength=self.n_items)[: self.n_items]
        ref_lengths = np.bincount([length_bin(x) for x in np.asarray(reference_lengths, dtype=np.int64)], minlength=len(LENGTH_BINS) - 1)
        self.ref_items, self.ref_lengths = _shares(ref_items, eps), _shares(ref_lengths, eps)
        rng = np.random.default_rng(seed)
        # The null: PSI between a bootstrap copy of the reference and a window drawn from it. Live traffic comes from
        # other users than the reference's, so both sides carry sampling error; comparing windows with the reference
        # itself would leave the reference's own out and alarm too often (tests/unit/continual/test_drift_power.py).
        boot_items, boot_lengths = self._bootstrap_references(reference_rows, reference_lengths, draws, rng)
        null_items = [_psi(_shares(ref, eps), _shares(counts, eps))
                      for ref, counts in zip(boot_items, self._null_windows(reference_rows, reference_lengths, draws, rng))]
        null_lengths = [_psi(_shares(ref, eps), _shares(rng.multinomial(self.request_window, self.ref_lengths), eps)) for ref in boot_lengths]
        self.thresholds = {"item_popularity": float(np.quantile(null_items, quantile) * margin),
                           "history_length": float(np.quantile(null_lengths, quantile) * margin)}
        self._empty_windows()

    def _empty_windows(self) -> None:
        self._items: deque = deque()
        self._item_counts = np.zeros(self.n_items, dtype=np.int64)
        self._n_items_in = 0
        self._lengths: deque = deque(maxlen=self.request_window)
        self._length_counts = np.zeros(len(LENGTH_BINS) - 1, dtype=np.int64)
        self._lock = threading.Lock()

    def fresh(self) -> "LiveDrift":
        """A copy with the same reference and thresholds and empty windows (no re-calibration): what a new process
        serving the same bundle starts with, and what :func:`recbook.serve.drift_power.power_curve` replays traffic into."""
        twin = copy.copy(self)
        twin._empty_windows()
        return twin

    def window_item_counts(self) -> np.ndarray:
        """How often each catalogue row is in the live item window (a copy)."""
        with self._lock:
            return self._item_counts.copy()

    def _bootstrap_references(self, rows, lengths, draws: int, rng):
        """Item and length counts of ``draws`` bootstrap copies of the reference: its histories resampled with
        replacement (each history's items stay together), or its items when no history structure is given."""
        rows, lengths = np.asarray(rows, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        bins = np.array([length_bin(x) for x in lengths], dtype=np.int64)
        structured = lengths.sum() == len(rows) and (lengths > 0).any()
        items, lens = [], []
        for _ in range(draws):
            if structured:
                weights = rng.multinomial(len(lengths), np.full(len(lengths), 1.0 / len(lengths)))
                items.append(np.bincount(rows, weights=np.repeat(weights, lengths), minlength=self.n_items)[: self.n_items])
                lens.append(np.bincount(bins, weights=weights, minlength=len(LENGTH_BINS) - 1))
            else:
                items.append(np.bincount(rng.choice(rows, len(rows)), minlength=self.n_items)[: self.n_items] if len(rows) else np.ones(self.n_items))
                lens.append(np.bincount(rng.choice(bins, len(bins)), minlength=len(LENGTH_BINS) - 1) if len(bins) else np.ones(len(LENGTH_BINS) - 1))
        return items, lens

    def _null_windows(self, rows, lengths, draws: int, rng):
        """Item counts of ``draws`` windows of the reference itself, filled as the live window is: whole histories drawn
        at random (a user's items are not independent draws: tastes cluster), each cut to its last ``window`` items."""
        rows, lengths = np.asarray(rows, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        if lengths.sum() != len(rows) or not (lengths > 0).any():  # no history structure given: independent items
            for _ in range(draws):
                yield rng.multinomial(self.window, self.ref_items)
            return
        histories = [h[-self.window:] for h in np.split(rows, np.cumsum(lengths)[:-1]) if len(h)]
        for _ in range(draws):
            counts, filled = np.zeros(self.n_items, dtype=np.int64), 0
            while filled < self.window:
                h = histories[rng.integers(len(histories))]
                np.add.at(counts, h, 1)
                filled += len(h)
            yield counts

    @classmethod
    def from_bundle(cls, bundle, **kwargs) -> "LiveDrift":
        """The reference of a loaded :class:`~recbook.serve.bundle.Bundle`: its stored histories."""
        histories = list(bundle.histories.values())
        rows = np.concatenate(histories) if histories else np.zeros(0, dtype=np.int64)
        return cls(rows, np.array([len(h) for h in histories]), bundle.n_items, **kwargs)

    def observe(self, rows: np.ndarray) -> None:
        """Add one request's history (catalogue rows): its items enter the item window, its length the length window."""
        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            if len(self._lengths) == self._lengths.maxlen:
                self._length_counts[length_bin(self._lengths[0])] -= 1
            self._lengths.append(len(rows))
            self._length_counts[length_bin(len(rows))] += 1
            if len(rows):
                rows = rows[-self.window:]
                self._items.append(rows)
                np.add.at(self._item_counts, rows, 1)
                self._n_items_in += len(rows)
                while self._n_items_in - len(self._items[0]) >= self.window:
                    old = self._items.popleft()
                    np.subtract.at(self._item_counts, old, 1)
                    self._n_items_in -= len(old)

    def measure(self) -> dict:
        """``{"item_popularity": psi, "history_length": psi, "window_items": n, "window_requests": n, "update_due": 0/1}``;
        ``update_due`` is 1 only with full windows and a PSI over its threshold."""
        with self._lock:
            items, lengths = self._item_counts.copy(), self._length_counts.copy()
            n_items, n_requests = self._n_items_in, len(self._lengths)
        out = {"item_popularity": _psi(self.ref_items, _shares(items, self.eps)) if n_items else 0.0,
               "history_length": _psi(self.ref_lengths, _shares(lengths, self.eps)) if n_requests else 0.0,
               "window_items": n_items, "window_requests": n_requests}
        full = n_items >= self.window and n_requests >= self.request_window
        out["update_due"] = int(full and any(out[s] > t for s, t in self.thresholds.items()))
        return out


class LiveDriftGauges:
    """``recbook_live_drift_psi{signal}``, ``recbook_live_drift_threshold{signal}``, ``recbook_live_drift_window_items``
    and ``recbook_live_update_due``, read from a :class:`LiveDrift` at every scrape (a custom collector: no per-request
    cost beyond :meth:`LiveDrift.observe`)."""

    def __init__(self, registry):
        self.drift: LiveDrift | None = None
        registry.register(self)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        drift = self.drift
        if drift is None:
            return
        values = drift.measure()
        psi = GaugeMetricFamily("recbook_live_drift_psi", "PSI of live request histories against the bundle's histories", labels=["signal"])
        threshold = GaugeMetricFamily("recbook_live_drift_threshold", "PSI that sampling noise alone stays under (calibrated)",
                                      labels=["signal"])
        for signal, limit in drift.thresholds.items():
            psi.add_metric([signal], values[signal])
            threshold.add_metric([signal], limit)
        yield psi
        yield threshold
        yield GaugeMetricFamily("recbook_live_drift_window_items", "Items in the live drift window", value=values["window_items"])
        yield GaugeMetricFamily("recbook_live_update_due", "1 when live traffic has drifted from what the model learned",
                                value=values["update_due"])

    def describe(self):
        return []
