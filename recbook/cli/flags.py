"""The command lines' side of an error: the library names a bad setting by its field
(:class:`recbook.errors.ConfigError`), a command line by its flag; and the ``--out`` folder check every command shares."""

from __future__ import annotations

from pathlib import Path

from recbook.usage import UsageError

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
