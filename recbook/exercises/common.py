"""Helpers several chapters' checkers share."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _toy_interactions(seed: int) -> pd.DataFrame:
    from ..data import make_synthetic

    return make_synthetic(seed=seed, n_users=40, n_items=60, mean_interactions=8, min_interactions=2).interactions


def _lacks(answer, keys) -> str | None:
    """The hint for the first key an answer dict misses (None when it has them all)."""
    missing = [k for k in keys if k not in answer]
    return f"the answer dict lacks {missing[0]!r}." if missing else None


def _rescored_comparison(answer, what: str, names: tuple[str, str]):
    """Experiment exercises: re-score the learner's ``answer["scorer"]`` under full ranking, check the NDCG@10 and the
    "does the paired interval exclude zero?" they report. Returns ``(hint, None)`` on a mistake, ``(None, comparison)``."""
    from ..evaluate import evaluate
    from ..stats import paired_comparison

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
