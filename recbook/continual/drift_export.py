"""Drift figures where they are used: ``drift.json`` in a serving bundle (written by ``recbook update``, checked when
loaded) and the service's Prometheus gauges (``recbook_drift_psi{signal}``, ``recbook_drift_new_item_share``,
``recbook_update_due``). The measurements themselves are :mod:`recbook.continual.drift`'s.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

PSI_SIGNALS = {"item_popularity": "psi_popularity", "genre_mix": "psi_genre", "score": None, "embedding": None}
SHARE_SIGNAL = "new_item_share"
DRIFT_FILE = "drift.json"


def drift_summary(row: Mapping, detector=None) -> dict:
    """The flat dict a service exports, from a :func:`recbook.continual.drift.drift_report` row: ``item_popularity`` and ``genre_mix`` (PSI
    against the previous window), ``new_item_share`` and ``update_due`` (0/1, the detector's decision; the default
    detector when None). Add ``score`` / ``embedding`` (:func:`recbook.continual.drift.score_drift`, :func:`recbook.continual.drift.embedding_drift`) by hand."""
    from recbook.continual.drift import DriftDetector

    detector = detector or DriftDetector()
    values = {signal: float(row[column]) for signal, column in PSI_SIGNALS.items() if column is not None}
    values[SHARE_SIGNAL] = float(row[SHARE_SIGNAL])
    values["update_due"] = int(detector.decide(row))
    return values


def check_drift_values(values: Mapping, name: str = "values") -> dict:
    """``values`` as a clean flat dict, or a ValueError naming the problem: keys are ``update_due`` (0/1), ``new_item_share``
    (in [0, 1]) and PSI signals (``item_popularity``, ``genre_mix``, ``score``, ``embedding``: finite, ≥ 0)."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a flat dict signal -> number, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if key not in PSI_SIGNALS and key not in (SHARE_SIGNAL, "update_due"):
            raise ValueError(f"{name} has an unknown signal {key!r}; known: {sorted(PSI_SIGNALS) + [SHARE_SIGNAL, 'update_due']}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}[{key!r}] must be a finite number >= 0, got {value!r}")
        if key == "update_due" and value not in (0, 1):
            raise ValueError(f"{name}['update_due'] must be 0 or 1, got {value!r}")
        if key == SHARE_SIGNAL and value > 1:
            raise ValueError(f"{name}[{SHARE_SIGNAL!r}] is a share, in [0, 1]; got {value!r}")
        out[key] = int(value) if key == "update_due" else float(value)
    if "update_due" not in out:
        raise ValueError(f"{name} lacks 'update_due' (0 or 1): the decision is what the alert watches")
    return out


def write_drift_json(folder: str | os.PathLike, values: Mapping) -> Path:
    """Write ``values`` (see :func:`check_drift_values`) to ``folder/drift.json``; return its path. A serving bundle lists
    every file in its manifest, so write it into the bundle's folder *before* the manifest is made."""
    path = Path(folder) / DRIFT_FILE
    path.write_text(json.dumps(check_drift_values(values), indent=1, sort_keys=True))
    return path


def read_drift_json(folder: str | os.PathLike) -> dict | None:
    """The checked contents of ``folder/drift.json``, or None when there is none; a malformed one is a ValueError."""
    path = Path(folder) / DRIFT_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON ({type(exc).__name__}: {exc})") from None
    return check_drift_values(values, str(path))


class DriftGauges:
    """The drift figures as Prometheus gauges on ``registry``, registered only once there is something to show:

    ``recbook_drift_psi{signal="item_popularity"|"genre_mix"|"score"|"embedding"}``, ``recbook_drift_new_item_share``
    and ``recbook_update_due`` (0/1). :meth:`set` replaces every value (a signal absent from the new values
    disappears); ``set(None)`` unregisters them all (a bundle without ``drift.json`` exposes no drift gauges).
    """

    _SPECS = {
        "psi": ("recbook_drift_psi", "Population stability index of a drift signal against the previous window", ["signal"]),
        "share": ("recbook_drift_new_item_share", "Share of the window's interactions on items new in it", []),
        "due": ("recbook_update_due", "1 when the drift detector says a model update is due", []),
    }

    def __init__(self, registry):
        self.registry = registry
        self._gauges: dict = {}

    def set(self, values: Mapping | None) -> None:
        if values is None:
            self.clear()
            return
        values = check_drift_values(values)
        from prometheus_client import Gauge

        wanted = {"due": True, "psi": any(k in PSI_SIGNALS for k in values), "share": SHARE_SIGNAL in values}
        for key, needed in wanted.items():
            if needed and key not in self._gauges:
                name, doc, labels = self._SPECS[key]
                self._gauges[key] = Gauge(name, doc, labels, registry=self.registry)
            elif not needed and key in self._gauges:
                self.registry.unregister(self._gauges.pop(key))
        if "psi" in self._gauges:
            self._gauges["psi"].clear()
            for key, value in values.items():
                if key in PSI_SIGNALS:
                    self._gauges["psi"].labels(signal=key).set(value)
        if "share" in self._gauges:
            self._gauges["share"].set(values[SHARE_SIGNAL])
        self._gauges["due"].set(values["update_due"])

    def clear(self) -> None:
        """Unregister every drift gauge (nothing about drift is exposed afterwards)."""
        for gauge in self._gauges.values():
            self.registry.unregister(gauge)
        self._gauges = {}


def drift_gauges(values: Mapping, registry) -> DriftGauges:
    """Register the drift gauges on ``registry`` (a ``prometheus_client.CollectorRegistry``) and set them from ``values``
    (a :func:`drift_summary` dict or the contents of ``drift.json``)."""
    gauges = DriftGauges(registry)
    gauges.set(values)
    return gauges


__all__ = ["DRIFT_FILE", "PSI_SIGNALS", "SHARE_SIGNAL", "DriftGauges", "check_drift_values", "drift_gauges", "drift_summary", "read_drift_json", "write_drift_json"]
