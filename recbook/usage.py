"""What a user passes to the course's entry points, and the error a bad value raises.

Shared by the library (:func:`recbook.pipeline.prepare_data` …), ``python -m recbook`` (:mod:`recbook.cli`) and
``torchrun -m recbook.distributed.train``. Importing it is light (standard library only): the command lines read
these names for their ``--help``.

A :class:`UsageError` is a bad setting a person chose — a data source that does not exist, a split fraction out
of range, an output folder that is a file. Its message names the option and says what to pass instead, in one
line; the command lines print it and exit with code 2. It is a ``ValueError``, so library callers may catch it as one.
"""

from __future__ import annotations

from pathlib import Path

DATA_SOURCES = ("synthetic", "movielens-100k", "synthetic-drift")
DATA_HELP = "synthetic | movielens-100k | synthetic-drift | PATH (a folder with interactions.csv and items.csv)"
SPLITS = ("leave-last-out", "cold-items")


class UsageError(ValueError):
    """A bad argument: reported in one line, exit code 2."""


def check_out_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder that can be created or written into; :class:`UsageError` when it (or a parent) is a file."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" (its parent {str(p)!r} is a file)"
                raise UsageError(f"{option} {str(path)!r} is not a folder{where}; pass a folder (it is created if missing)")
            break
    return path
