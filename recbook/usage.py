"""What a user passes to the course's entry points, and the error a bad value raises.

Shared by the library (:func:`recbook.runs.recipe.prepare_data` …), ``python -m recbook`` (:mod:`recbook.cli`) and
``torchrun -m recbook.cli.distributed_train``. Importing it is light (standard library only): the command lines read
these names for their ``--help``.

A :class:`UsageError` is a bad setting a person chose — a data source that does not exist, a folder that holds
another model. Its message says what to pass instead, in one line; the command lines print it and exit with code 2
(:mod:`recbook.cli.flags` turns a setting's name into its flag). It is a ``ValueError``, so library callers may catch it as one.
"""

from __future__ import annotations

DATA_SOURCES = ("synthetic", "movielens-100k", "synthetic-drift")
DATA_HELP = "synthetic | movielens-100k | synthetic-drift | PATH (a folder with interactions.csv and items.csv)"
SPLITS = ("leave-last-out", "cold-items")


class UsageError(ValueError):
    """A bad argument: reported in one line, exit code 2."""
