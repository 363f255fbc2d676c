"""The evaluation protocol of the course, stated once and used everywhere.

Taught in notebook ``03_baselines`` (used by every model notebook and the command line).

**Leave-last-out.** Each user's last interaction is the test item, the second-to-last the
validation item; models see everything before (for the test: training + validation).

- **sampled**: the held-out item is ranked against ``n_negatives`` (99) items the user never
  interacted with, drawn uniformly and fixed by a seed — cheap, and what many papers report;
- **full**: the held-out item is ranked against *every* catalogue item the user has not
  interacted with — the number that predicts production behaviour; 2–10× lower;
- **cascade**: a cheap retriever keeps its top-N candidates and an expensive model re-ranks only
  those (see :func:`cascade`).

Metrics: HR@10, NDCG@10, MRR and per-user AUC, tie-averaged (:mod:`recbook.evaluation.metrics`). Every
result carries its ``protocol`` string; print it next to the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook.data import RecDataset, Split, leave_last_out, sample_negatives
from recbook.data.splits import history_for_test
from recbook.evaluation.metrics import ScoreFn, evaluate_full, evaluate_sampled


@dataclass
class EvalSet:
    """What one evaluation needs: held-out items, their fixed negatives, and the visible history."""

    stage: str  # "valid" or "test"
    heldout: pd.DataFrame  # one row per user: user_id, item_id
    negatives: np.ndarray  # (users, n_negatives) item ids, never the user's positives
    history: pd.DataFrame  # interactions models may use (and full ranking excludes)
    all_items: np.ndarray

    @property
    def description(self) -> str:
        seen = "train" if self.stage == "valid" else "train + valid"
        return f"leave-last-out, {self.stage} item of {len(self.heldout)} users, history = {seen}"


def user_subset(heldout: pd.DataFrame, n_users: int | None, seed: int = 0) -> pd.DataFrame:
    """The first ``n_users`` rows of one seeded permutation of ``heldout``, in their original order (all rows when
    ``n_users`` is None or not smaller): smaller subsets nest in larger ones, and every evaluation of the course
    that draws ``n_users`` with the same ``seed`` draws the same users."""
    if n_users is None or n_users >= len(heldout):
        return heldout
    rng = np.random.default_rng(seed)
    return heldout.iloc[np.sort(rng.permutation(len(heldout))[:n_users])].reset_index(drop=True)


def make_eval_set(dataset: RecDataset, split: Split | None = None, stage: str = "test", n_negatives: int = 99,
                  n_users: int | None = None, seed: int = 0) -> EvalSet:
    """Build the evaluation set for ``stage`` (``"valid"`` or ``"test"``) of a leave-last-out split.

    ``n_users`` evaluates a seeded random subset of users (the quick profile does this for slow
    models): the first ``n_users`` of one seeded permutation, so smaller subsets nest in larger
    ones. Negatives are drawn against *all* the user's interactions, so they are never held-out
    items, from a generator seeded per user: a user has the same negatives in every subset.
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    split = split or leave_last_out(dataset.interactions, drop_short_users=True)
    heldout = (split.test if stage == "test" else split.valid)[["user_id", "item_id"]].reset_index(drop=True)
    history = history_for_test(split) if stage == "test" else split.train
    heldout = user_subset(heldout, n_users, seed)
    negatives = sample_negatives(heldout["user_id"].to_numpy(), dataset.interactions, dataset.item_ids, n_negatives, seed=seed + 1)
    return EvalSet(stage, heldout, negatives, history, dataset.item_ids)


def evaluate(score_fn: ScoreFn, eval_set: EvalSet, protocol: str = "sampled", k: int = 10, batch_size: int = 256,
             per_user: bool = False) -> dict[str, object]:
    """HR@k, NDCG@k, MRR and AUC of ``score_fn`` under ``protocol`` (``"sampled"`` or ``"full"``).

    ``per_user=True`` adds ``"per_user"`` (one row per user) for confidence intervals (:mod:`recbook.evaluation.stats`).
    """
    if protocol == "sampled":
        result = evaluate_sampled(score_fn, eval_set.heldout, eval_set.negatives, k, batch_size, per_user=per_user)
    elif protocol == "full":
        result = evaluate_full(score_fn, eval_set.heldout, eval_set.history, eval_set.all_items, k, batch_size, per_user=per_user)
    else:
        raise ValueError(f"protocol must be 'sampled' or 'full', got {protocol!r}")
    result["protocol"] = f"{result['protocol']} ({eval_set.description})"
    return result


def cascade(retriever: ScoreFn, reranker: ScoreFn, top_n: int = 100, exclude: pd.DataFrame | None = None, seed: int = 0) -> ScoreFn:
    """A two-stage scorer: ``retriever`` picks each user's ``top_n`` candidates, ``reranker`` orders them.

    Candidates outside the top-N keep the retriever's order below every re-ranked one; the
    reranker is called on ``top_n`` items per user only (that is the point: it may be 1000×
    more expensive). ``exclude`` (interactions) removes items a user has seen before retrieval,
    as production retrieval would. Ties at the top-N boundary are broken at random (seeded),
    so the held-out item's position among the candidates gives it no advantage.
    """
    from scipy.stats import rankdata

    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    seen = None if exclude is None else exclude.groupby("user_id")["item_id"].agg(set)
    rng = np.random.default_rng(seed)

    def score(users, items):
        users, items = np.asarray(users), np.asarray(items)
        base = np.asarray(retriever(users, items), dtype=float).copy()
        if seen is not None:
            for row, u in enumerate(users):
                s = seen.get(u)
                if s:
                    base[row, np.isin(items[row], list(s))] = -np.inf
        n = min(top_n, items.shape[1])
        jitter = rng.random(base.shape) * 1e-9 * (np.abs(base[np.isfinite(base)]).max(initial=1.0))
        top = np.argpartition(-(base + jitter), n - 1, axis=1)[:, :n]
        reranked = np.asarray(reranker(users, np.take_along_axis(items, top, axis=1)), dtype=float)
        composite = -rankdata(-base, axis=1, method="average")  # ≤ −1, retriever order, ties kept
        composite[~np.isfinite(base)] = -np.inf
        np.put_along_axis(composite, top, rankdata(reranked, axis=1, method="average"), axis=1)  # ≥ 1
        return composite

    return score


class ColdEvalSet(EvalSet):
    """The cold-item side of a :class:`recbook.data.splits.ColdStartSplit`: each user's first pick of a
    cold item, scored with the warm items they had before it as history."""

    negatives_from: str = "catalogue"

    @property
    def description(self) -> str:
        among = "other cold items" if self.negatives_from == "cold" else "any unseen catalogue items"
        return (f"cold items: each user's first pick of an item never seen in training, {len(self.heldout)} users, "
                f"history = that user's earlier warm interactions; sampled negatives: {among}")


def make_cold_eval_set(dataset: RecDataset, cold_split, n_negatives: int = 99, seed: int = 0, negatives_from: str = "catalogue") -> ColdEvalSet:
    """Evaluation set for the cold test rows of ``cold_split``.

    ``negatives_from="catalogue"``: negatives are any items the user never touched (warm or cold) — "is the new
    item recommended at all?"; ``"cold"``: only other cold items — "which new item?", where a model that gives
    every new item the same score sits exactly at chance (AUC 0.5). ``n_negatives`` is capped by what the cold
    catalogue leaves every user.
    """
    if negatives_from not in ("catalogue", "cold"):
        raise ValueError(f"negatives_from must be 'catalogue' or 'cold', got {negatives_from!r}")
    heldout = cold_split.test_cold[["user_id", "item_id"]].reset_index(drop=True)
    if heldout.empty:
        raise ValueError("the cold split has no cold test rows (no user picked a cold item after a warm one); raise fraction")
    pool = dataset.item_ids if negatives_from == "catalogue" else np.asarray(cold_split.cold_items)
    if negatives_from == "cold":
        touched = dataset.interactions[dataset.interactions["item_id"].isin(pool) & dataset.interactions["user_id"].isin(heldout["user_id"])]
        most = int(touched.groupby("user_id")["item_id"].nunique().max())
        n_negatives = min(n_negatives, len(pool) - most)
        if n_negatives < 1:
            raise ValueError(f"a user interacted with {most} of the {len(pool)} cold items: no cold negatives are left; raise the split's fraction")
    negatives = sample_negatives(heldout["user_id"].to_numpy(), dataset.interactions, pool, n_negatives, seed=seed + 1)
    es = ColdEvalSet("test", heldout, negatives, cold_split.cold_history, dataset.item_ids)
    es.negatives_from = negatives_from
    return es


def evaluate_models(scorers: dict[str, ScoreFn], eval_set: EvalSet, protocols=("full", "sampled"), k: int = 10) -> dict[str, dict]:
    """Every model on the same users and candidates: ``{protocol: {model: result}}``, each result with ``"per_user"``
    (so :func:`recbook.evaluation.stats.ci_table` and :func:`recbook.evaluation.stats.comparison_table` can be applied)."""
    return {p: {name: evaluate(fn, eval_set, p, k, per_user=True) for name, fn in scorers.items()} for p in protocols}
