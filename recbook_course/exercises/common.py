"""Helpers several chapters' checkers share."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _toy_interactions(seed: int) -> pd.DataFrame:
    from recbook.data import make_synthetic

    return make_synthetic(seed=seed, n_users=40, n_items=60, mean_interactions=8, min_interactions=2).interactions


def _lacks(answer, keys) -> str | None:
    """The hint for the first key an answer dict misses (None when it has them all)."""
    missing = [k for k in keys if k not in answer]
    return f"the answer dict lacks {missing[0]!r}." if missing else None


def _dict_with(answer, keys, described: str | None = None) -> str | None:
    """Experiment exercises hand in a dict: the hint when ``answer`` is not one holding every key of ``keys`` (None
    when it is). ``described`` replaces the plain list of keys in the hint (e.g. to say what a key holds)."""
    if isinstance(answer, dict) and set(keys) <= set(answer):
        return None
    return f"pass a dict with keys {described or ', '.join(keys)}."


def _ratios_table(table, callables: str, first: str) -> str | None:
    """The hint when ``table`` is not :func:`recbook.perf.timing.interleaved_ratios`' DataFrame for two callables
    (``callables`` says which, baseline first) plus its A/A row, or when its baseline is not first (``first`` says how
    to fix that); None when it is."""
    if not isinstance(table, pd.DataFrame) or not {"speed_up", "low", "high", "verdict"} <= set(table.columns) or len(table) != 3:
        return f"table must be interleaved_ratios' DataFrame for two callables ({callables}) plus its A/A row."
    if table.iloc[0]["verdict"] != "baseline":
        return f"the first callable is the baseline: {first}."
    return None


def _rescored_comparison(answer, what: str, names: tuple[str, str]):
    """Experiment exercises: re-score the learner's ``answer["scorer"]`` under full ranking, check the NDCG@10 and the
    "does the paired interval exclude zero?" they report. Returns ``(hint, None)`` on a mistake, ``(None, comparison)``."""
    from recbook.evaluation.protocol import evaluate
    from recbook.evaluation.stats import paired_comparison

    hint = _lacks(answer, ("scorer", "ndcg_full", "significant", "eval_set", "reference"))
    if hint:
        return hint, None
    res = evaluate(answer["scorer"], answer["eval_set"], "full", per_user=True)
    if not np.isclose(res["NDCG@10"], answer["ndcg_full"], atol=1e-6):
        return f"re-scoring your {what} gives full-ranking NDCG@10 {res['NDCG@10']:.4f}, not {answer['ndcg_full']:.4f}.", None
    reference = answer["reference"]
    if isinstance(reference, pd.DataFrame):  # a per-user table: compare on NDCG@10
        reference = reference["NDCG@10"]
    c = paired_comparison(res["per_user"]["NDCG@10"], reference, names)
    if bool(answer["significant"]) != c.significant:
        return f"the paired interval is {c.diff}; does it exclude zero?", None
    return None, c


def _per_user_tables(answer, metric: str, how: str) -> str | None:
    """The hint when ``answer["per_user"]`` or ``answer["reference"]`` is not a per-user DataFrame with a ``metric``
    column (``how`` says where such a table comes from); None when both are."""
    for key in ("per_user", "reference"):
        if not isinstance(answer[key], pd.DataFrame) or metric not in answer[key]:
            return f"{key} must be {how}: a DataFrame with an {metric} column per user."
    return None


def _paired_interval(values, reference, low, high, verdict, what: str, how: str, prefix: str = ""):
    """Experiment exercises: re-compute the paired interval of ``values − reference`` (per-user Series of one metric)
    and check the interval and the verdict the learner reports (:func:`stats.interval_verdict`). ``what`` names the
    difference, ``how`` says how to compute it, ``prefix`` starts each hint.
    Returns ``(hint, None)`` on a mistake, ``(None, comparison)`` otherwise."""
    from recbook.evaluation.stats import interval_verdict, paired_comparison

    c = paired_comparison(values, reference)
    if not (abs(c.diff.low - low) < 1e-9 and abs(c.diff.high - high) < 1e-9):
        return (f"{prefix}the paired interval ({what}) is [{c.diff.low:+.4f}, {c.diff.high:+.4f}], "
                f"not [{low:+.4f}, {high:+.4f}]: {how}."), None
    want = interval_verdict(c.diff.low, c.diff.high)
    if verdict != want:
        return f"{prefix}the interval [{c.diff.low:+.4f}, {c.diff.high:+.4f}] says {want!r}, not {verdict!r}.", None
    return None, c


def _warm_auc_interval(per_user, reference, low, high, verdict, what: str, how: str, prefix: str = ""):
    """Experiment exercises that re-embed the catalogue (11, 12, 13): :func:`_paired_interval` on warm AUC."""
    return _paired_interval(per_user["warm"]["AUC"], reference["warm"]["AUC"], low, high, verdict, f"warm AUC, {what}", how, prefix)
