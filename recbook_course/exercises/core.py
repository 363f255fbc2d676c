"""The exercise registry: ``check(key, answer)`` runs the checker a chapter module registered under ``key``."""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Exercise:
    notebook: str
    task: str
    checker: Callable[[object], tuple[bool, str]]


_REGISTRY: dict[str, Exercise] = {}


def _exercise(key: str, notebook: str, task: str):
    def wrap(fn):
        _REGISTRY[key] = Exercise(notebook, task, fn)
        return fn

    return wrap


def list_exercises(notebook: str | None = None) -> dict[str, str]:
    """``{exercise id: task}``, optionally only those of one notebook (e.g. ``"01_cross_entropy"``)."""
    return {k: e.task for k, e in _REGISTRY.items() if notebook is None or e.notebook == notebook}


def check(key: str, answer) -> bool:
    """Check an answer; print ✅ or ❌ with a hint, and return whether it is right."""
    if key not in _REGISTRY:
        raise KeyError(f"unknown exercise {key!r}; known: {sorted(_REGISTRY)}")
    try:
        ok, message = _REGISTRY[key].checker(answer)
    except Exception as exc:  # a learner's function may raise anything: report it, don't crash
        ok, message = False, f"your answer raised {type(exc).__name__}: {exc}"
    print(("✅ " if ok else "❌ ") + f"{key}: " + message)
    return ok


def _close(a, b, tol=1e-5) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=tol, atol=tol)
