"""What a notebook measured, recorded for the course summary.

Used by every notebook; ``tools/run_course.py`` collects the records and prints one
summary table after running the course. A record is printed in the notebook too, so
the learner sees exactly what the summary will say.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

RESULTS_ENV = "RECBOOK_RESULTS"
FIGURES_ENV = "RECBOOK_FIGURES"


def figure_path(name: str) -> Path:
    """Where a notebook saves figure ``name``: ``$RECBOOK_FIGURES``, else the repository's
    ``figures/`` when run from ``notebooks/``, else ``./figures`` (e.g. on Colab)."""
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file name like '01_loss.png', got {name!r}")
    if os.environ.get(FIGURES_ENV):
        folder = Path(os.environ[FIGURES_ENV])
    elif Path.cwd().name == "notebooks":
        folder = Path.cwd().parent / "figures"
    else:
        folder = Path.cwd() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def record(name: str, value, unit: str = "") -> None:
    """Print ``name = value unit`` and, when ``$RECBOOK_RESULTS`` names a file, append it there as JSON."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("record() needs a non-empty name")
    if hasattr(value, "item") and callable(value.item):  # NumPy / PyTorch scalars → Python numbers
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"record({name!r}): value is {value}; a measurement must be a finite number")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    print(f"[recorded] {name} = {shown}{(' ' + unit) if unit else ''}")
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": value, "unit": unit}, default=str) + "\n")


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records appended to ``path`` by :func:`record` (an empty list if there is no file)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
