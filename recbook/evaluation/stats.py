"""Separate signal from noise: confidence intervals over users and paired comparisons.

Taught in notebook ``04_sequential`` (and used by every notebook that compares models).

A metric such as NDCG@10 is a *mean over users*. Score a different set of users and it moves,
so a number means little without its uncertainty:

- :func:`mean_ci` — the mean of per-user values with a 95% **bootstrap** confidence interval
  (resample the users with replacement, recompute the mean, take the 2.5% and 97.5% quantiles);
- :func:`paired_comparison` — model A vs model B **on the same users**: the mean of the per-user
  differences with its bootstrap interval, and a paired (sign-flip) permutation p-value. Pairing
  removes the user-to-user variation both models share (some users are easy for everyone), so it
  detects differences that two separate intervals would hide. "A beats B" is only said when the
  interval of the difference excludes zero.

Both take per-user values, e.g. ``evaluate(..., per_user=True)["per_user"]["NDCG@10"]``
(a pandas Series indexed by ``user_id``); Series are aligned on their index, so a comparison never
pairs different users by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% (or ``level``) confidence interval over ``n`` users."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}mean": self.mean, f"{prefix}ci_low": self.low, f"{prefix}ci_high": self.high, f"{prefix}n": self.n}


@dataclass(frozen=True)
class Comparison:
    """Mean per-user difference A − B on the same users, its CI and a paired permutation p-value."""

    a: str
    b: str
    diff: Estimate
    p_value: float
    mean_a: float
    mean_b: float

    @property
    def significant(self) -> bool:
        """True when the CI of the difference excludes zero."""
        return self.diff.low > 0 or self.diff.high < 0

    @property
    def verdict(self) -> str:
        if not self.significant:
            return f"{self.a} vs {self.b}: inconclusive (the CI of the difference contains 0)"
        better, worse = (self.a, self.b) if self.diff.mean > 0 else (self.b, self.a)
        return f"{better} beats {worse}"

    def __str__(self) -> str:
        return f"{self.a} − {self.b} = {self.diff} (n={self.diff.n}, p={self.p_value:.3g}): {self.verdict}"

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mean_a": self.mean_a, "mean_b": self.mean_b, **self.diff.as_dict("diff_"),
                "p_value": self.p_value, "significant": self.significant}


def finite_values(values, name: str, purpose: str = "a confidence interval") -> np.ndarray:
    """``values`` as a flat float array, refused with a message naming ``name`` when it is empty or holds NaN/inf —
    what ``purpose`` (an interval, a picture, …) cannot be computed from."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError(f"{name} is empty: {purpose} needs at least one value")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values; {purpose} needs finite ones (drop or fix them first)")
    return x


def _check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")


def bootstrap_means(x: np.ndarray, n_boot: int = 2000, seed: int = 0, chunk: int = 200) -> np.ndarray:
    """``n_boot`` means of ``x`` resampled with replacement (seeded; computed in chunks to bound memory)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        idx = rng.integers(0, len(x), size=(size, len(x)))
        out[start : start + size] = x[idx].mean(axis=1)
    return out


def mean_ci(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean of per-user ``values`` with a percentile bootstrap confidence interval (resampling users)."""
    _check_level(level, n_boot)
    x = finite_values(values, "values")
    if len(x) == 1:
        return Estimate(float(x[0]), float(x[0]), float(x[0]), 1, level)
    means = bootstrap_means(x, n_boot, seed)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(float(x.mean()), float(low), float(high), len(x), level)


def align(a, b, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of two models on the same users: Series are matched by index (user id), arrays by position."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if a.index.has_duplicates or b.index.has_duplicates:
            raise ValueError("per-user Series must have one row per user (duplicate index values found)")
        if set(a.index) != set(b.index):
            only_a, only_b = len(a.index.difference(b.index)), len(b.index.difference(a.index))
            raise ValueError(f"{names[0]} and {names[1]} were scored on different users ({only_a} only in {names[0]}, "
                             f"{only_b} only in {names[1]}); a paired comparison needs the same users")
        b = b.reindex(a.index)
    a, b = finite_values(a, names[0]), finite_values(b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must hold one value per user each, got {a.shape} and {b.shape}")
    return a, b


def interval_verdict(low: float, high: float, above: str = "higher", below: str = "lower", neither: str = "not shown") -> str:
    """The word an interval supports: ``above`` when all of it lies above 0, ``below`` when all of it lies below, else
    ``neither`` — an interval that holds 0 shows no difference, in either direction."""
    return above if low > 0 else below if high < 0 else neither


def paired_comparison(a, b, names: tuple[str, str] = ("A", "B"), level: float = 0.95, n_boot: int = 2000,
                      n_permutations: int = 5000, seed: int = 0) -> Comparison:
    """Compare two models on the same users: mean difference A − B with a bootstrap CI, and a p-value.

    The p-value is a paired permutation test: under "no difference" each user's pair could be
    swapped, so the sign of each per-user difference is flipped at random ``n_permutations`` times;
    p = share of flips whose |mean| is at least the observed one (two-sided, with +1 smoothing).
    """
    _check_level(level, n_boot)
    x, y = align(a, b, names)
    d = x - y
    diff = mean_ci(d, level, n_boot, seed)
    rng = np.random.default_rng(seed + 1)
    observed = abs(d.mean())
    hits = 0
    for start in range(0, n_permutations, 500):
        size = min(500, n_permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, len(d)))
        hits += int((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum())
    p = (hits + 1) / (n_permutations + 1)
    return Comparison(names[0], names[1], diff, float(p), float(x.mean()), float(y.mean()))


def ratio_ci(a, b, names: tuple[str, str] = ("a", "b"), level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """``mean(a) / mean(b)`` on the same users with a paired bootstrap CI (the same resampled users for both),
    e.g. "SASRec reaches 1.5× MF's NDCG" or "int8 keeps 99% of fp32's quality"."""
    _check_level(level, n_boot)
    x, y = align(a, b, names)
    if y.mean() <= 0:
        raise ValueError(f"mean of {names[1]} is {y.mean()}; a ratio needs a positive denominator")
    rng = np.random.default_rng(seed)
    ratios = np.empty(n_boot)
    for start in range(0, n_boot, 200):
        size = min(200, n_boot - start)
        idx = rng.integers(0, len(x), size=(size, len(x)))
        den = y[idx].mean(axis=1)
        ratios[start : start + size] = x[idx].mean(axis=1) / np.where(den > 0, den, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Estimate(float(x.mean() / y.mean()), float(low), float(high), len(x), level)


def ci_table(per_user: dict[str, pd.DataFrame], metrics=("NDCG@10", "HR@10"), level: float = 0.95, n_boot: int = 2000,
             seed: int = 0) -> pd.DataFrame:
    """One row per model: each metric as ``mean`` with ``[low, high]`` columns (models scored on any users)."""
    rows = {}
    for model, frame in per_user.items():
        row = {}
        for m in metrics:
            if m not in frame:
                raise KeyError(f"per-user table of {model!r} has no column {m!r}; it has {list(frame.columns)}")
            est = mean_ci(frame[m], level, n_boot, seed)
            row.update({m: round(est.mean, 4), f"{m} low": round(est.low, 4), f"{m} high": round(est.high, 4)})
        row["users"] = len(frame)
        rows[model] = row
    return pd.DataFrame(rows).T


def comparison_table(per_user: dict[str, pd.DataFrame], reference: str, metric: str = "NDCG@10", level: float = 0.95,
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every model against ``reference`` on ``metric``, paired on the users both were scored on."""
    if reference not in per_user:
        raise KeyError(f"reference {reference!r} is not among the models {list(per_user)}")
    rows = {}
    ref = per_user[reference][metric]
    for model, frame in per_user.items():
        if model == reference:
            continue
        c = paired_comparison(frame[metric], ref, (model, reference), level, n_boot, seed=seed)
        rows[model] = {f"{metric} − {reference}": round(c.diff.mean, 4), "low": round(c.diff.low, 4), "high": round(c.diff.high, 4),
                       "p": round(c.p_value, 4), "verdict": c.verdict}
    return pd.DataFrame(rows).T


def ci_text_table(per_user: dict[str, pd.DataFrame], metrics=("HR@10", "NDCG@10", "MRR", "AUC"), digits: int = 3,
                  level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """:func:`ci_table` for reading: one column per metric, each cell ``"mean [low, high]"``, plus ``users``."""
    rows = {}
    for model, frame in per_user.items():
        missing = [m for m in metrics if m not in frame]
        if missing:
            raise KeyError(f"per-user table of {model!r} has no column(s) {missing}; it has {list(frame.columns)}")
        estimates = {m: mean_ci(frame[m], level, n_boot, seed) for m in metrics}  # unrounded, so the text agrees with str(mean_ci(...))
        rows[model] = {m: f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]" for m, e in estimates.items()}
        rows[model]["users"] = len(frame)
    return pd.DataFrame(rows).T


def pairs_table(per_user: dict[str, pd.DataFrame], pairs, metric: str = "NDCG@10", level: float = 0.95, n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of chosen ``(a, b)`` model pairs on ``metric``: one row ``"a − b"`` per pair with the mean
    difference, its CI, the permutation p-value and the verdict (each pair on the users both were scored on)."""
    rows = {}
    for a, b in pairs:
        c = paired_comparison(per_user[a][metric], per_user[b][metric], (a, b), level, n_boot, seed=seed)
        rows[f"{a} − {b}"] = {f"{metric} difference": round(c.diff.mean, 4), "low": round(c.diff.low, 4), "high": round(c.diff.high, 4),
                             "p": round(c.p_value, 4), "verdict": c.verdict}
    return pd.DataFrame(rows).T


@dataclass(frozen=True)
class SeedStudy:
    """Model A against model B trained at several seeds, each seed's pair scored on the same users.

    Two sources of uncertainty of the difference A − B, on one scale (standard deviations): :attr:`diff_sd`, how far
    the difference moves when only the training seeds change, and :attr:`diff_se`, how far it moves when only the
    users change (the paired bootstrap's standard error within one seed). A paired interval cancels what the users
    share between A and B; it does not average over seeds, which is why ``per_seed`` keeps one comparison per seed and
    :attr:`every_seed` asks whether all of them agree.
    """

    a: str
    b: str
    seeds: tuple
    mean_a: dict  # seed -> mean over users
    mean_b: dict
    per_seed: dict  # seed -> Comparison (A at that seed − B at that seed)
    pooled: Comparison  # A's per-user value averaged over seeds − B's, bootstrapped over users (seeds held fixed)

    @staticmethod
    def _sd(values) -> float:
        v = np.asarray(list(values), dtype=float)
        return float(v.std(ddof=1)) if len(v) > 1 else float("nan")

    @property
    def seed_sd(self) -> dict:
        """The standard deviation of each model's mean over its seeds (NaN for a single seed)."""
        return {self.a: self._sd(self.mean_a.values()), self.b: self._sd(self.mean_b.values())}

    @property
    def diff_sd(self) -> float:
        """The standard deviation over seeds of the difference A − B (NaN for a single seed)."""
        return self._sd(c.diff.mean for c in self.per_seed.values())

    @property
    def diff_se(self) -> float:
        """The users' standard error of the difference within one seed: the median over seeds of each paired
        interval's half-width divided by its normal quantile (1.96 for 95%), on the same scale as :attr:`diff_sd`."""
        from statistics import NormalDist

        c = next(iter(self.per_seed.values()))
        z = NormalDist().inv_cdf(0.5 + c.diff.level / 2)
        return float(np.median([c.diff.half_width for c in self.per_seed.values()]) / z)

    @property
    def every_seed(self) -> str:
        """``"a"``: A beats B at every seed; ``"b"``: B beats A at every seed; ``"none"``: no seed's interval excludes
        zero; ``"mixed"``: some seeds decide and others do not, or they point opposite ways."""
        comparisons = self.per_seed.values()
        if all(c.diff.low > 0 for c in comparisons):
            return "a"
        if all(c.diff.high < 0 for c in comparisons):
            return "b"
        if not any(c.significant for c in comparisons):
            return "none"
        return "mixed"

    @property
    def every_seed_text(self) -> str:
        """:attr:`every_seed` as a sentence: ``"lmrec beats SASRec at every one of the 3 seeds"``."""
        n = len(self.seeds)
        at = "at its one seed" if n == 1 else f"at every one of the {n} seeds"
        if self.every_seed == "a":
            return f"{self.a} beats {self.b} {at}"
        if self.every_seed == "b":
            return f"{self.b} beats {self.a} {at}"
        if self.every_seed == "none":
            return f"no seed's interval excludes zero: {self.a} and {self.b} are not told apart {at.replace('every one', 'any')}"
        ahead_a = sum(c.diff.low > 0 for c in self.per_seed.values())
        ahead_b = sum(c.diff.high < 0 for c in self.per_seed.values())
        return (f"the seeds disagree: {self.a} ahead at {ahead_a}, {self.b} ahead at {ahead_b}, inconclusive at "
                f"{n - ahead_a - ahead_b} of the {n} seeds, so the verdict is not the recipe's alone")

    def table(self) -> pd.DataFrame:
        """One row per seed: both means and the paired difference with its interval."""
        rows = {s: {self.a: round(self.mean_a[s], 4), self.b: round(self.mean_b[s], 4),
                    f"{self.a} − {self.b}": round(c.diff.mean, 4), "low": round(c.diff.low, 4),
                    "high": round(c.diff.high, 4)} for s, c in self.per_seed.items()}
        return pd.DataFrame(rows).T.rename_axis("seed")


def seed_study(a_by_seed: dict, b_by_seed: dict, names: tuple[str, str] = ("A", "B"), level: float = 0.95,
               n_boot: int = 2000, seed: int = 0) -> SeedStudy:
    """Compare two models trained at the same seeds: ``{seed: per-user values}`` for each, paired seed by seed.

    ``pooled`` averages each user's value over the seeds before the paired bootstrap over users, so it estimates the
    difference between the two *recipes* (not two particular trained models) for these users; its interval holds the
    seeds fixed. Give every value as a pandas Series indexed by user (matched by index) or every one as an array
    (matched by position), not a mix.
    """
    if not a_by_seed or set(a_by_seed) != set(b_by_seed):
        raise ValueError(f"{names[0]} and {names[1]} must cover the same, non-empty seeds; got "
                         f"{sorted(a_by_seed)} and {sorted(b_by_seed)}")
    seeds = tuple(sorted(a_by_seed))
    entries = [(names[i], s, by_seed[s]) for i, by_seed in enumerate((a_by_seed, b_by_seed)) for s in seeds]
    n_series = sum(isinstance(v, pd.Series) for _, _, v in entries)
    if 0 < n_series < len(entries):
        raise ValueError("give every seed's per-user values as a pandas Series indexed by user, or every one as an "
                         "array in the same user order — not a mix (a mix could pair different users)")
    first_name, first_seed, reference = entries[0]
    for name, s, values in entries[1:]:
        if n_series:
            only_here, only_first = len(values.index.difference(reference.index)), len(reference.index.difference(values.index))
            if only_here or only_first:
                raise ValueError(f"{name} at seed {s} was scored on other users than {first_name} at seed {first_seed} "
                                 f"({only_here} users only at seed {s}, {only_first} only at seed {first_seed}): every seed "
                                 "must be scored on the same users")
        elif np.asarray(values).size != np.asarray(reference).size:
            raise ValueError(f"{name} at seed {s} has {np.asarray(values).size} users' values, {first_name} at seed "
                             f"{first_seed} {np.asarray(reference).size}: every seed must be scored on the same users")
    per_seed = {s: paired_comparison(a_by_seed[s], b_by_seed[s], names, level, n_boot, seed=seed) for s in seeds}
    if n_series:  # average user by user, whatever the order each seed's Series came in
        mean_over = lambda by_seed: pd.concat([by_seed[s].reindex(reference.index) for s in seeds], axis=1).mean(axis=1)  # noqa: E731
    else:
        mean_over = lambda by_seed: np.mean([np.asarray(by_seed[s], dtype=float).ravel() for s in seeds], axis=0)  # noqa: E731
    pooled = paired_comparison(mean_over(a_by_seed), mean_over(b_by_seed), names, level, n_boot, seed=seed)
    return SeedStudy(names[0], names[1], seeds, {s: c.mean_a for s, c in per_seed.items()},
                     {s: c.mean_b for s, c in per_seed.items()}, per_seed, pooled)
