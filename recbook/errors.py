"""The errors the library raises for a bad setting — named by the setting, never by a command-line flag.

A :class:`ConfigError` carries the ``field`` it is about (``"neighbours"``, ``"data"``, ``"cold_fraction"`` …) and a
one-line message that says what to pass instead. The command line (:mod:`recbook.cli`) maps fields to its flags
(``data`` → ``--data``) when it prints the message; a notebook shows it as it is. Bad *data* (a file, a column) raises
:class:`DataError` instead (defined here, exported as :class:`recbook.data.DataError`). Both are ``ValueError`` subclasses, so callers may catch them as one.
Importing this module is light (standard library only).
"""

from __future__ import annotations

from numbers import Integral


class ConfigError(ValueError):
    """A bad value for the setting ``field``; the message says what to pass instead."""

    def __init__(self, field: str, message: str, value=None):
        super().__init__(message)
        self.field = field
        self.value = value  # the value refused, when the message starts with "field=value"


def positive_int(value, field: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum`` (numpy integers included, ``bool`` refused); a
    :class:`ConfigError` naming ``field`` otherwise — the integer check of settings (models, updates, robustness)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(field, f"{field} must be {wanted}, got {value!r}", value)
    return int(value)


class DataError(ValueError):
    """Bad input data: the message names the file, column or row and how to fix it."""
