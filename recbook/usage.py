"""What a user passes to the course's entry points, and the error a bad value raises.

Shared by the library (:func:`recbook.runs.recipe.prepare_data` …), ``python -m recbook`` (:mod:`recbook.cli`) and
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


# the library names a bad setting by its field (recbook.errors.ConfigError); a command line by its flag
FLAGS = {"backbone": "--backbone", "text_encoder": "--backbone", "peft": "--peft", "item_features": "--item-features", "model": "--model",
         "data": "--data", "split": "--split", "cold_fraction": "--cold-fraction", "max_steps": "--max-steps", "time_budget": "--time-budget",
         "seed": "--seed", "eval_users": "--eval-users", "checkpoint": "--checkpoint", "profile": "--profile", "retriever": "--retriever",
         "reranker": "--reranker", "strategy": "--strategy", "out": "--out", "since": "--since", "until": "--until"}


def flag_error(exc, flags: dict | None = None) -> UsageError:
    """A library :class:`recbook.errors.ConfigError` as a command line reports it: the setting's flag instead of its field
    name (``data='x': …`` → ``--data 'x': …``; otherwise the flag is put in front)."""
    flag = {**FLAGS, **(flags or {})}.get(exc.field, f"--{exc.field.replace('_', '-')}")
    text = str(exc)
    named = f"{exc.field}={exc.value!r}"
    if exc.value is not None and text.startswith(named):
        return UsageError(f"{flag} {exc.value!r}{text[len(named):]}")
    return UsageError(f"{flag}: {text}" if not text.startswith(exc.field) else f"{flag}{text[len(exc.field):]}")


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
