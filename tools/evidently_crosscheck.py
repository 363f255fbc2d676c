"""Check ``recbook.serve.drift_power.library_tests`` against Evidently's own drift tests, on random item counts.

Evidently 0.7 does not import beside this course's pandas 3, so this runs in a separate environment::

    python3 -m venv /tmp/evidently && /tmp/evidently/bin/pip install "evidently==0.7.23" "pandas<3"
    PYTHONPATH=. /tmp/evidently/bin/python tools/evidently_crosscheck.py

For each case it expands two count vectors into samples (one row per item occurrence), runs Evidently's
``jensenshannon_stat_test`` and ``psi_stat_test`` on them as a categorical feature, and compares the statistics and
the verdicts with ``library_tests``. It prints the largest differences and exits 1 if any verdict differs or a
statistic differs by more than 1e-9 (relative). The χ² test follows alibi-detect's ``ChiSquareDrift`` (a contingency
table over the union of categories, ``scipy.stats.chi2_contingency``), whose package does not install beside numpy 2.
"""

from __future__ import annotations

import sys

import numpy as np


def cases(n: int = 60, seed: int = 0):
    """Count vectors like the live windows': a Zipf-shaped reference, windows with sparse and empty items."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        items = int(rng.integers(20, 400))
        popularity = 1.0 / np.arange(1, items + 1) ** rng.uniform(0.6, 1.2)
        reference = rng.multinomial(int(rng.integers(2_000, 60_000)), popularity / popularity.sum())
        tilt = np.exp(rng.uniform(-2, 2) * np.linspace(-1, 1, items)) if i % 2 else np.ones(items)
        window = rng.multinomial(int(rng.integers(200, 6_000)), popularity * tilt / (popularity * tilt).sum())
        yield reference, window


def main() -> int:
    import pandas as pd
    from evidently.legacy.calculations.stattests import jensenshannon_stat_test, psi_stat_test
    from evidently.legacy.core import ColumnType

    from recbook.serve.drift_power import library_tests

    worst = {"jensen_shannon": 0.0, "psi": 0.0}
    disagreements = 0
    for reference, window in cases():
        ref = pd.Series(np.repeat(np.arange(len(reference)), reference)).astype("category")
        cur = pd.Series(np.repeat(np.arange(len(window)), window)).astype("category")
        ours = library_tests(reference, window)
        theirs = {"jensen_shannon": jensenshannon_stat_test(ref, cur, ColumnType.Categorical, None),
                  "psi": psi_stat_test(ref, cur, ColumnType.Categorical, None)}
        for name, key in (("jensen_shannon", "jensen_shannon"), ("psi", "psi_0.1")):
            value, drift = ours[key]
            worst[name] = max(worst[name], abs(value - theirs[name].drift_score) / max(abs(theirs[name].drift_score), 1e-12))
            disagreements += bool(drift) != bool(theirs[name].drifted)
    print(f"largest relative difference: Jensen-Shannon {worst['jensen_shannon']:.1e}, PSI {worst['psi']:.1e}; "
          f"verdicts that differ: {disagreements}")
    return 0 if disagreements == 0 and max(worst.values()) < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
