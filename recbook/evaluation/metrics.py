"""Ranking and classification metrics, with scikit-learn's argument order ``(y_true, y_score)``.

Taught in notebooks ``01_cross_entropy`` (AUC) and ``03_baselines`` (top-k metrics and
the two evaluation protocols).

Top-k metrics take 2-D arrays: one row per query (user), one column per candidate
item; ``y_true`` marks the relevant candidates (1/0, or graded relevance for NDCG).

**Ties.** A scorer such as popularity gives many items the same score. Breaking ties
by column order would let the candidate's *position* decide the metric (the held-out
item usually sits in column 0 — a silent bonus). Every metric here is therefore the
*expected value under a uniformly random tie-break*, the convention of
``sklearn.metrics.ndcg_score`` (``ignore_ties=False``) and ``roc_auc_score``, so
``ndcg_at_k`` and ``auc`` agree with scikit-learn exactly, ties included.

**Protocols.** :func:`evaluate_sampled` ranks each user's held-out item against N
sampled negatives; :func:`evaluate_full` ranks it against every item the user has not
interacted with. Sampled numbers are much higher than full-ranking numbers; always
print the protocol next to a metric (both helpers return it under ``"protocol"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd


# ----------------------------------------------------------------------- checks
def _check_pair(y_true, y_score, *, two_d: bool) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    if two_d:
        if y_true.ndim == 1 and y_score.ndim == 1:
            y_true, y_score = y_true[None, :], y_score[None, :]
        if y_true.ndim != 2 or y_score.ndim != 2:
            raise ValueError(
                f"y_true and y_score must be 2-D (rows = queries, columns = candidates), got "
                f"{y_true.ndim}-D and {y_score.ndim}-D arrays"
            )
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must have the same shape, got {y_true.shape} and {y_score.shape}")
    if y_true.size == 0:
        raise ValueError("y_true and y_score are empty: there is nothing to evaluate")
    if np.isnan(y_score).any():
        bad = np.argwhere(np.isnan(y_score))[0]
        raise ValueError(f"y_score contains NaN (first at index {tuple(int(i) for i in bad)}); check the model's outputs")
    if np.isnan(y_true).any() or (y_true < 0).any():
        raise ValueError("y_true must hold non-negative relevance labels (0/1 or graded) with no NaN")
    return y_true, y_score


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


# ------------------------------------------------------------ per-row tie groups
def _groups(scores: np.ndarray, relevance: np.ndarray):
    """Group equal scores, best first: sizes, start positions, relevant count and gain per group."""
    _, inverse, sizes = np.unique(-scores, return_inverse=True, return_counts=True)
    starts = np.cumsum(sizes) - sizes
    n_groups = len(sizes)
    rel_count = np.bincount(inverse, weights=(relevance > 0).astype(float), minlength=n_groups)
    gain = np.bincount(inverse, weights=relevance, minlength=n_groups)
    return sizes, starts, rel_count, gain


def _expected_relevant_in_top_k(sizes, starts, rel_count, k):
    slots = np.clip(k - starts, 0, sizes)
    return float(np.sum(rel_count * slots / sizes))


def _per_row(y_true, y_score, fn) -> np.ndarray:
    return np.array([fn(*_groups(s, t)) for t, s in zip(y_true, y_score)], dtype=float)


# ----------------------------------------------------------------- top-k metrics
def hit_rate_at_k(y_true, y_score, k: int = 10) -> float:
    """Fraction of queries with at least one relevant candidate in the top ``k`` (HR@k)."""
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)

    def row(sizes, starts, rel_count, _gain):
        full = starts + sizes <= k
        if np.any(rel_count[full] > 0):
            return 1.0
        boundary = np.flatnonzero((starts < k) & ~full)
        if len(boundary) == 0:
            return 0.0
        b = boundary[0]
        g, r, s = int(sizes[b]), int(rel_count[b]), int(k - starts[b])
        if r == 0:
            return 0.0
        # P(no relevant item among the s slots drawn from a tie group of g holding r relevant)
        p_miss = 1.0
        for i in range(s):
            p_miss *= max(g - r - i, 0) / (g - i)
        return 1.0 - p_miss

    return float(np.mean(_per_row(y_true, y_score, row)))


def recall_at_k(y_true, y_score, k: int = 10) -> float:
    """Mean over queries of (relevant candidates in the top ``k``) / (relevant candidates).

    Queries with no relevant candidate are skipped; if none has one, raises ``ValueError``.
    """
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)
    n_rel = (y_true > 0).sum(axis=1)
    keep = n_rel > 0
    if not keep.any():
        raise ValueError("recall_at_k: no row of y_true has a relevant candidate")
    hits = _per_row(y_true[keep], y_score[keep], lambda sz, st, rc, _g: _expected_relevant_in_top_k(sz, st, rc, k))
    return float(np.mean(hits / n_rel[keep]))


def precision_at_k(y_true, y_score, k: int = 10) -> float:
    """Mean over queries of (relevant candidates in the top ``k``) / ``k``."""
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)
    hits = _per_row(y_true, y_score, lambda sz, st, rc, _g: _expected_relevant_in_top_k(sz, st, rc, k))
    return float(np.mean(hits / k))


def _discount_prefix(n: int) -> np.ndarray:
    """``prefix[i]`` = sum of 1/log2(j + 2) for positions j < i."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(n) + 2.0))])


def dcg_at_k(y_true, y_score, k: int = 10) -> np.ndarray:
    """Per-query discounted cumulative gain at ``k`` with linear gains (tie-averaged)."""
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)
    prefix = _discount_prefix(y_true.shape[1])

    def row(sizes, starts, _rc, gain):
        lo = np.minimum(starts, k)
        hi = np.minimum(starts + sizes, k)
        return float(np.sum(gain / sizes * (prefix[hi] - prefix[lo])))

    return _per_row(y_true, y_score, row)


def ndcg_at_k(y_true, y_score, k: int = 10) -> float:
    """Normalised DCG at ``k``, averaged over queries; equals ``sklearn.metrics.ndcg_score(..., k=k)``.

    A query whose ``y_true`` is all zeros scores 0, as in scikit-learn.
    """
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)
    dcg = dcg_at_k(y_true, y_score, k)
    ideal_order = -np.sort(-y_true, axis=1)[:, :k]
    discounts = 1.0 / np.log2(np.arange(ideal_order.shape[1]) + 2.0)
    idcg = ideal_order @ discounts
    ratio = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    return float(np.mean(ratio))


def mrr(y_true, y_score, k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant candidate (0 when it ranks below ``k``)."""
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    cutoff = math.inf if k is None else _check_k(k)

    def row(sizes, starts, rel_count, _gain):
        with_rel = np.flatnonzero(rel_count > 0)
        if len(with_rel) == 0:
            return 0.0
        b = with_rel[0]
        g, r, p = int(sizes[b]), int(rel_count[b]), int(starts[b])
        total = math.comb(g, r)
        value = 0.0
        for j in range(g - r + 1):  # j = offset of the first relevant item inside the tie group
            rank = p + 1 + j
            if rank > cutoff:
                break
            value += math.comb(g - 1 - j, r - 1) / total / rank
        return value

    return float(np.mean(_per_row(y_true, y_score, row)))


def auc(y_true, y_score) -> float:
    """Area under the ROC curve; equals ``sklearn.metrics.roc_auc_score`` for binary labels.

    It is the probability that a random positive scores above a random negative (ties
    count one half), computed from average ranks (the Mann–Whitney U statistic).
    """
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_score = np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must have the same length, got {y_true.shape} and {y_score.shape}")
    if np.isnan(y_score).any():
        raise ValueError("y_score contains NaN; check the model's outputs")
    labels = set(np.unique(y_true).tolist())
    if not labels <= {0.0, 1.0}:
        raise ValueError(f"auc needs binary labels 0/1, got values {sorted(labels)[:5]}")
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc is undefined when y_true holds only one class; include positives and negatives")
    ranks = _average_ranks(y_score)
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct value
    return avg[inverse]


def mean_auc(y_true, y_score, mask=None) -> float:
    """AUC computed per query (row) and averaged; ``mask`` (bool, same shape) keeps candidates.

    Rows without both a positive and a negative candidate are skipped.
    """
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    mask = np.ones_like(y_true, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != y_true.shape:
        raise ValueError(f"mask must have the shape of y_true {y_true.shape}, got {mask.shape}")
    values = []
    for t, s, m in zip(y_true, y_score, mask):
        t, s = (t[m] > 0).astype(float), s[m]
        if 0 < t.sum() < len(t):
            values.append(auc(t, s))
    if not values:
        raise ValueError("mean_auc: no row has both a relevant and a non-relevant candidate")
    return float(np.mean(values))


def ranking_metrics(y_true, y_score, k: int = 10, mask=None) -> dict[str, float]:
    """HR@k, NDCG@k, MRR and per-user AUC of one score matrix, as a dict."""
    return {
        f"HR@{k}": hit_rate_at_k(y_true, y_score, k),
        f"NDCG@{k}": ndcg_at_k(y_true, y_score, k),
        "MRR": mrr(y_true, y_score),
        "AUC": mean_auc(y_true, y_score, mask),
    }


def per_user_metrics(y_true, y_score, k: int = 10, mask=None) -> dict[str, np.ndarray]:
    """HR@k, NDCG@k, MRR and AUC **per row** when each row holds exactly one relevant candidate.

    The leave-one-out protocols have one held-out item per user, so its tie-averaged rank says
    everything: with ``g`` candidates scoring above it and ``t`` others tied with it, its rank is
    uniform on ``g+1 … g+t+1``. Vectorised, and equal row by row to :func:`hit_rate_at_k`,
    :func:`ndcg_at_k`, :func:`mrr` and :func:`mean_auc`. ``mask`` (bool) keeps candidates; the
    relevant one must be kept. These per-user values feed :mod:`recbook.evaluation.stats` (confidence intervals).
    """
    y_true, y_score = _check_pair(y_true, y_score, two_d=True)
    k = _check_k(k)
    mask = np.ones(y_true.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != y_true.shape:
        raise ValueError(f"mask must have the shape of y_true {y_true.shape}, got {mask.shape}")
    relevant = (y_true > 0) & mask
    if not (relevant.sum(axis=1) == 1).all():
        raise ValueError("per_user_metrics needs exactly one relevant (kept) candidate per row; use ranking_metrics otherwise")
    rows = np.arange(len(y_true))
    pos = y_score[rows, relevant.argmax(axis=1)][:, None]
    others = mask & ~relevant
    greater = ((y_score > pos) & others).sum(axis=1)
    tied = ((y_score == pos) & others).sum(axis=1)
    n_other = others.sum(axis=1)
    lo, n = greater, tied + 1  # the rank is uniform on lo+1 … lo+n
    prefix = _discount_prefix(y_true.shape[1])
    hr = np.clip((k - lo) / n, 0.0, 1.0)
    ndcg = (prefix[np.minimum(lo + n, k)] - prefix[np.minimum(lo, k)]) / n
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, y_true.shape[1] + 1))])
    mrr_ = (harmonic[lo + n] - harmonic[lo]) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        auc_ = np.where(n_other > 0, (n_other - greater - tied + 0.5 * tied) / np.maximum(n_other, 1), np.nan)
    return {f"HR@{k}": hr, f"NDCG@{k}": ndcg, "MRR": mrr_, "AUC": auc_, "rank": lo + (n + 1) / 2}


# ------------------------------------------------------------------ protocols
ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _score_checked(score_fn: ScoreFn, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    scores = np.asarray(score_fn(users, items), dtype=float)
    if scores.shape != items.shape:
        raise ValueError(
            f"score_fn(users, items) must return one score per candidate, shape {items.shape}; got {scores.shape}"
        )
    return scores


def _heldout_arrays(heldout: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    missing = {"user_id", "item_id"} - set(heldout.columns)
    if missing:
        raise ValueError(f"heldout needs columns user_id and item_id; missing {sorted(missing)}")
    return heldout["user_id"].to_numpy(), heldout["item_id"].to_numpy()


def evaluate_sampled(
    score_fn: ScoreFn, heldout: pd.DataFrame, negatives: np.ndarray, k: int = 10, batch_size: int = 512, per_user: bool = False
) -> dict[str, object]:
    """Sampled protocol: each user's held-out item ranked against its row of ``negatives``.

    ``score_fn(users, items)`` gets user ids of shape ``(n,)`` and candidate item ids of
    shape ``(n, m)`` and returns scores of shape ``(n, m)`` (higher = more relevant).
    ``negatives[i]`` are the sampled negatives of ``heldout.iloc[i]`` (see
    :func:`recbook.data.sample_negatives`). The held-out item is candidate 0; ties are
    averaged, so its position gives it no advantage. ``per_user=True`` adds ``"per_user"``: a
    DataFrame indexed by ``user_id`` with each user's HR@k, NDCG@k, MRR, AUC and rank (for CIs).
    """
    users, positives = _heldout_arrays(heldout)
    negatives = np.asarray(negatives)
    if negatives.ndim != 2 or len(negatives) != len(users):
        raise ValueError(
            f"negatives must be a 2-D array with one row per held-out row ({len(users)}), got shape {negatives.shape}"
        )
    candidates = np.concatenate([positives[:, None], negatives], axis=1)
    y_true = np.zeros(candidates.shape)
    y_true[:, 0] = 1.0
    scores = np.concatenate(
        [_score_checked(score_fn, users[i : i + batch_size], candidates[i : i + batch_size]) for i in range(0, len(users), batch_size)]
    )
    result: dict[str, object] = {
        "protocol": f"sampled: 1 held-out item vs {negatives.shape[1]} sampled negatives per user",
        "users": len(users),
    }
    result.update(ranking_metrics(y_true, scores, k))
    if per_user:
        result["per_user"] = _per_user_frame(users, per_user_metrics(y_true, scores, k))
    return result


def _per_user_frame(users: np.ndarray, values: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame(values, index=pd.Index(users, name="user_id"))
    if frame.index.has_duplicates:
        raise ValueError("per-user metrics need one held-out row per user; heldout has duplicate user_ids")
    return frame


def evaluate_full(
    score_fn: ScoreFn,
    heldout: pd.DataFrame,
    seen: pd.DataFrame,
    all_items: np.ndarray,
    k: int = 10,
    batch_size: int = 256,
    per_user: bool = False,
) -> dict[str, object]:
    """Full-ranking protocol: the held-out item against every item the user has not seen.

    ``seen`` holds the interactions to exclude (usually the training split, plus
    validation when testing); ``all_items`` is the catalogue's item ids. ``per_user=True``
    adds ``"per_user"`` as in :func:`evaluate_sampled`.
    """
    users, positives = _heldout_arrays(heldout)
    all_items = np.asarray(all_items)
    column = pd.Series(np.arange(len(all_items)), index=all_items)
    unknown = ~np.isin(positives, all_items)
    if unknown.any():
        raise ValueError(f"held-out item {positives[unknown][0]} is not in all_items")
    pos_col = column.loc[positives].to_numpy()
    seen_by_user = seen.groupby("user_id")["item_id"].agg(lambda s: column.reindex(s).dropna().astype(int).to_numpy())
    metrics_rows, per_rows = [], []
    for start in range(0, len(users), batch_size):
        u = users[start : start + batch_size]
        items = np.broadcast_to(all_items, (len(u), len(all_items)))
        scores = _score_checked(score_fn, u, items).copy()
        mask = np.ones(scores.shape, dtype=bool)
        for row, user in enumerate(u):
            cols = seen_by_user.get(user)
            if cols is not None and len(cols):
                mask[row, cols] = False
        mask[np.arange(len(u)), pos_col[start : start + batch_size]] = True
        scores[~mask] = -np.inf
        y_true = np.zeros(scores.shape)
        y_true[np.arange(len(u)), pos_col[start : start + batch_size]] = 1.0
        if per_user:
            rows = per_user_metrics(y_true, scores, k, mask)
            per_rows.append(rows)
            batch = {f"HR@{k}": float(rows[f"HR@{k}"].mean()), f"NDCG@{k}": float(rows[f"NDCG@{k}"].mean()),
                     "MRR": float(rows["MRR"].mean()), "AUC": float(np.nanmean(rows["AUC"]))}
        else:
            batch = ranking_metrics(y_true, scores, k, mask)
        metrics_rows.append((len(u), batch))
    n = sum(c for c, _ in metrics_rows)
    result: dict[str, object] = {
        "protocol": f"full ranking: 1 held-out item vs all {len(all_items)} catalogue items the user has not seen",
        "users": n,
    }
    for key in metrics_rows[0][1]:
        result[key] = float(sum(c * m[key] for c, m in metrics_rows) / n)
    if per_user:
        result["per_user"] = _per_user_frame(users, {key: np.concatenate([r[key] for r in per_rows]) for key in per_rows[0]})
    return result


# ------------------------------------------------------------ beyond accuracy
def top_k_lists(score_fn: ScoreFn, users, seen: pd.DataFrame, all_items, k: int = 10, batch_size: int = 256) -> np.ndarray:
    """Each user's top-``k`` recommendations, ``(len(users), k)`` item ids, from the whole catalogue minus ``seen``.

    Ties keep catalogue order (a stable sort), so a constant scorer recommends the first items.
    """
    k = _check_k(k)
    users, all_items = np.asarray(users), np.asarray(all_items)
    if k > len(all_items):
        raise ValueError(f"k={k} is larger than the catalogue ({len(all_items)} items)")
    column = pd.Series(np.arange(len(all_items)), index=all_items)
    seen_by_user = seen.groupby("user_id")["item_id"].agg(lambda s: column.reindex(s).dropna().astype(int).to_numpy())
    out = np.empty((len(users), k), dtype=all_items.dtype)
    for start in range(0, len(users), batch_size):
        u = users[start : start + batch_size]
        scores = _score_checked(score_fn, u, np.broadcast_to(all_items, (len(u), len(all_items)))).copy()
        if np.isnan(scores).any():
            raise ValueError("score_fn returned NaN; check the model's outputs")
        for row, user in enumerate(u):
            cols = seen_by_user.get(user)
            if cols is not None and len(cols):
                scores[row, cols] = -np.inf
        out[start : start + len(u)] = all_items[np.argsort(-scores, axis=1, kind="stable")[:, :k]]
    return out


def beyond_accuracy(lists: np.ndarray, all_items, train: pd.DataFrame, head_share: float = 0.1) -> dict[str, float]:
    """What a top-k list does to the catalogue, besides hitting the held-out item.

    - ``coverage``: share of catalogue items that appear in at least one user's list;
    - ``ARP``: average recommendation popularity — the mean number of training interactions of the
      recommended items (higher = more popularity-biased);
    - ``head share``: share of recommendation slots taken by the ``head_share`` (10%) most popular items.
    """
    lists, all_items = np.asarray(lists), np.asarray(all_items)
    counts = train["item_id"].value_counts().reindex(all_items, fill_value=0)
    n_head = max(1, int(round(head_share * len(all_items))))
    head = set(counts.sort_values(ascending=False, kind="stable").index[:n_head].tolist())
    flat = lists.ravel()
    return {"coverage": len(np.unique(flat)) / len(all_items),
            "ARP": float(counts.reindex(flat).to_numpy().mean()),
            f"head {int(head_share * 100)}% share": float(np.isin(flat, list(head)).mean())}
