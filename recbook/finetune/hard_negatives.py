"""Hard negatives: train the cross-encoder for the job it does in a cascade — re-ranking a retriever's top-k.

Taught in notebook ``08_cascade``.

In a cascade (:func:`recbook.evaluation.protocol.cascade`) the cross-encoder never meets a random catalogue item: it
only orders the few items the retriever already likes. Negatives drawn uniformly from the catalogue
(notebook ``06``) teach it the easy part — "an obscure 1950s western is not this user's next film" —
which the retriever has already done. **Hard negatives** are the items the retriever ranks in its top-k for
that user *at that point in time* that the user did not pick next: exactly the confusions a re-ranker is
there to resolve.

Rules that keep the training honest (nothing from the future leaks in):

- positives are *training* interactions, and a positive's history is the user's training items strictly
  before it in time — the history :func:`recbook.data.build_text_pairs` writes as text;
- the retriever that mines the negatives must be trained on the training part only, and here it reads only
  that history;
- negatives exclude the positive and every *training* item of the user, never the user's validation/test
  items: those are the future, and excluding them would tell the model which items are special (the rule of
  :func:`recbook.data.make_training_pairs`).

A retriever is given to :func:`hard_negative_pairs` as a *history scorer*: a function from histories (item
ids, oldest first) to scores over the catalogue — :func:`sequential_history_scorer` wraps a SASRec /
BERT4Rec model. :func:`uniform_negative_pairs` builds the same table with uniform negatives for the
comparison, :func:`reranker_loader` turns a pairs table into token batches, and :func:`fit_reranker`
fine-tunes a cross-encoder on it.

Evaluating a cascade cheaply: a re-ranker of the top N can only change the metrics of users whose held-out
item the retriever ranks within its top N (:func:`users_within_reach`); for everyone else the cascade leaves
the item where the retriever put it. :func:`only_with_heldout` runs the re-ranker on those candidate lists
alone, and :class:`CachedScorer` remembers the pairs a slow scorer has already scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recbook.data import LengthBucketBatchSampler, PairCollator, RecDataset, Split, build_text_pairs, sample_negatives, to_hf_dataset, tokenize_pairs
from recbook.data.text import HISTORY_FIELD, history_token_budget
from recbook.errors import positive_int
from recbook.evaluation.protocol import history_for_test
from recbook.models.text_base import bert_config, bert_scorer
from recbook.perf.device import detect_device
from recbook.profile import Profile

HistoryScorer = Callable[[list[np.ndarray]], np.ndarray]  # histories (item ids, oldest first) → (n, n_items) scores
PAIR_COLUMNS = ["user_id", "item_id", "label", "timestamp", "retriever_rank"]


def sequential_history_scorer(model, item_ids) -> HistoryScorer:
    """A :class:`recbook.models.sequential.SequentialRecommender` as a history scorer over ``item_ids``
    (the catalogue order it was trained with)."""
    item_ids = np.asarray(item_ids)
    column = pd.Series(np.arange(1, len(item_ids) + 1), index=item_ids)  # the model's 1-based item indices

    def score(histories: list[np.ndarray]) -> np.ndarray:
        return model.score_all([column.reindex(np.asarray(h)).to_numpy(dtype=np.int64) for h in histories])

    return score


def _check_positives(positives: pd.DataFrame, train: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    """The positives as (user_id, item_id, timestamp) rows, refused unless each is a training interaction."""
    for col in ("user_id", "item_id", "timestamp"):
        if col not in positives.columns or col not in train.columns:
            raise ValueError(f"positives and train need a {col!r} column (interactions: user_id, item_id, timestamp)")
    if positives.empty:
        raise ValueError("positives is empty: pass some training interactions (e.g. split.train.sample(n, random_state=seed))")
    pos = positives[["user_id", "item_id", "timestamp"]].reset_index(drop=True)
    unknown = ~pos["item_id"].isin(item_ids)
    if unknown.any():
        raise ValueError(f"positive item_id {pos.loc[unknown, 'item_id'].iloc[0]} is not in item_ids (the catalogue)")
    keys = train[["user_id", "item_id", "timestamp"]].drop_duplicates()
    found = pos.merge(keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
    if not found.all():
        bad = pos[~found].iloc[0]
        raise ValueError(f"positive (user {bad['user_id']}, item {bad['item_id']}, time {bad['timestamp']}) is not a training "
                         "interaction; train the re-ranker on training interactions only (validation/test items would leak)")
    return pos


def _pairs_table(pos: pd.DataFrame, negatives: np.ndarray, ranks: np.ndarray | None = None) -> pd.DataFrame:
    """Each positive (label 1) followed by its negatives (label 0), like :func:`recbook.data.make_training_pairs`."""
    n = negatives.shape[1]
    rank = np.full((len(pos), 1 + n), np.nan)
    if ranks is not None:
        rank[:, 1:] = ranks
    return pd.DataFrame({
        "user_id": np.repeat(pos["user_id"].to_numpy(), 1 + n),
        "item_id": np.column_stack([pos["item_id"].to_numpy(), negatives]).ravel(),
        "label": np.tile(np.r_[1.0, np.zeros(n)], len(pos)),
        "timestamp": np.repeat(pos["timestamp"].to_numpy(), 1 + n),
        "retriever_rank": rank.ravel(),
    })


def hard_negative_pairs(positives: pd.DataFrame, train: pd.DataFrame, retriever: HistoryScorer, item_ids, n_negatives: int = 2,
                        top_k: int = 20, seed: int = 0, batch_size: int = 256) -> pd.DataFrame:
    """Each positive followed by ``n_negatives`` *hard* negatives mined from ``retriever``.

    For a positive (user, item, time): the retriever scores the catalogue from the user's training items
    strictly before ``time``; the positive and all of the user's items in ``train`` are set aside; the
    ``top_k`` best remaining items are the candidates (ties broken at random, seeded), and ``n_negatives``
    of them are drawn uniformly without replacement. ``retriever_rank`` is each negative's rank among the
    candidates (1 = the retriever's favourite; NaN on positives). Columns: :data:`PAIR_COLUMNS`.

    ``positives`` must be rows of ``train`` (a seeded subset keeps the cost down); ``retriever`` must have
    been trained on ``train`` only.
    """
    n_negatives = positive_int(n_negatives, "n_negatives")
    top_k = positive_int(top_k, "top_k")
    batch_size = positive_int(batch_size, "batch_size")
    if top_k < n_negatives:
        raise ValueError(f"top_k ({top_k}) must be >= n_negatives ({n_negatives}): negatives are drawn from the top_k")
    item_ids = np.asarray(item_ids)
    pos = _check_positives(positives, train, item_ids)
    column = pd.Series(np.arange(len(item_ids)), index=item_ids)

    ordered = train.sort_values(["user_id", "timestamp"], kind="stable")  # the order build_text_pairs reads
    by_user = {u: (g["timestamp"].to_numpy(), g["item_id"].to_numpy()) for u, g in ordered.groupby("user_id", sort=False)}
    seen = {u: np.unique(column.reindex(items).dropna().to_numpy(dtype=int)) for u, (_, items) in by_user.items()}
    users, times = pos["user_id"].to_numpy(), pos["timestamp"].to_numpy()
    pos_cols = column.reindex(pos["item_id"]).to_numpy(dtype=int)
    histories = [by_user[u][1][: np.searchsorted(by_user[u][0], t, side="left")] for u, t in zip(users, times)]

    rng = np.random.default_rng(seed)
    negatives = np.empty((len(pos), n_negatives), dtype=item_ids.dtype)
    ranks = np.empty((len(pos), n_negatives))
    for start in range(0, len(pos), batch_size):
        rows = range(start, min(start + batch_size, len(pos)))
        scores = np.asarray(retriever([histories[r] for r in rows]), dtype=float)
        if scores.shape != (len(rows), len(item_ids)):
            raise ValueError(f"the retriever returned scores of shape {scores.shape}; expected {(len(rows), len(item_ids))} "
                             "(one row per history, one column per catalogue item)")
        if not np.isfinite(scores).all():
            raise ValueError("the retriever returned NaN or infinite scores; hard negatives need finite scores")
        for i, r in enumerate(rows):
            allowed = np.ones(len(item_ids), dtype=bool)
            allowed[seen[users[r]]] = False
            allowed[pos_cols[r]] = False
            cols = np.flatnonzero(allowed)
            if len(cols) < n_negatives:
                raise ValueError(f"user {users[r]} leaves only {len(cols)} items outside their training items; "
                                 f"cannot draw {n_negatives} negatives")
            best_first = cols[np.lexsort((rng.random(len(cols)), -scores[i, cols]))][:top_k]
            pick = np.sort(rng.choice(len(best_first), n_negatives, replace=False))
            negatives[r], ranks[r] = item_ids[best_first[pick]], pick + 1
    return _pairs_table(pos, negatives, ranks)


def uniform_negative_pairs(positives: pd.DataFrame, train: pd.DataFrame, item_ids, n_negatives: int = 2, seed: int = 0) -> pd.DataFrame:
    """The same table as :func:`hard_negative_pairs` with negatives drawn uniformly from the items outside the
    user's training items (the recipe of notebook ``06``) — the comparison for hard negatives."""
    n_negatives = positive_int(n_negatives, "n_negatives")
    item_ids = np.asarray(item_ids)
    pos = _check_positives(positives, train, item_ids)
    negatives = sample_negatives(pos["user_id"].to_numpy(), train, item_ids, n_negatives, seed=seed)
    return _pairs_table(pos, negatives)


def reranker_loader(pairs: pd.DataFrame, dataset: RecDataset, train: pd.DataFrame, tokenizer, profile: Profile,
                    seed: int = 0) -> torch.utils.data.DataLoader:
    """A pairs table → (history, candidate) text (history = ``train`` items strictly before each row, within the
    profile's budgets) → tokens → length-bucketed, shuffled batches of ``profile.batch_size``."""
    for col in ("user_id", "item_id", "label", "timestamp"):
        if col not in pairs.columns:
            raise ValueError(f"pairs lack column {col!r}; build them with hard_negative_pairs or uniform_negative_pairs")
    text = build_text_pairs(pairs, train, dataset, tokenizer, profile.max_history_items, history_token_budget(profile.max_length), HISTORY_FIELD)
    encoded = tokenize_pairs(to_hf_dataset(text, ["label", "history_text", "item_text"]), tokenizer, profile.max_length)
    sampler = LengthBucketBatchSampler(encoded["length"], profile.batch_size, seed=seed)
    return torch.utils.data.DataLoader(encoded, batch_sampler=sampler, collate_fn=PairCollator(tokenizer))


def fit_reranker(pairs: pd.DataFrame, dataset: RecDataset, split: Split, profile: Profile, model_name_or_path=None, seed: int = 0,
                 device: str | None = None, progress: bool = True, name: str = "cross-encoder", **config_overrides) -> Fitted:
    """Fine-tune a fresh cross-encoder on ``pairs`` (built from ``split.train``) with the course's loop.

    Settings come from :func:`recbook.models.text_base.bert_config` (``config_overrides`` replace them, e.g.
    ``max_steps=40``). The returned scorer reads training + validation as the history, for test items.
    """
    from recbook.models.backbone import load_backbone
    from recbook.models.cross_encoder import CrossEncoder
    from recbook.training.loop import train_model

    device = device or detect_device()
    start = time.perf_counter()
    encoder, tokenizer = load_backbone(model_name_or_path)
    torch.manual_seed(seed)  # the new head's initial weights
    model = CrossEncoder(encoder)
    loader = reranker_loader(pairs, dataset, split.train, tokenizer, profile, seed)
    config = bert_config(profile, seed, progress, device, **config_overrides)
    result = train_model(model, loader, config)
    scorer = bert_scorer(model, tokenizer, dataset, history_for_test(split), profile, device, config.amp)
    return Fitted(name, model, scorer, time.perf_counter() - start, result.history, result, tokenizer)


@dataclass
class Fitted:
    """A fine-tuned re-ranker network, its test-time scorer (history = train + valid) and its training record."""

    name: str
    model: object  # recbook.models.cross_encoder.CrossEncoder
    scorer: object
    train_seconds: float
    history: list = field(default_factory=list)
    train_result: object = None
    tokenizer: object = None


def users_within_reach(retriever_per_user: pd.DataFrame, top_n: int) -> np.ndarray:
    """The users whose held-out item the retriever ranks within its top ``top_n``.

    ``retriever_per_user`` is ``evaluate(retriever, ..., per_user=True)["per_user"]`` (its ``rank`` column, or
    1 / ``MRR``). Only for these users can a re-ranker of the top ``top_n`` change any metric; their share is the
    retriever's recall at ``top_n``, the ceiling of the cascade. (Ranks are tie-averaged: with ties around the
    held-out item the boundary is approximate.)
    """
    top_n = positive_int(top_n, "top_n")
    if "rank" in retriever_per_user.columns:
        rank = retriever_per_user["rank"].to_numpy(dtype=float)
    elif "MRR" in retriever_per_user.columns:
        rank = 1.0 / retriever_per_user["MRR"].to_numpy(dtype=float)
    else:
        raise ValueError(f"retriever_per_user needs a 'rank' or 'MRR' column (evaluate(..., per_user=True)['per_user']); "
                         f"it has {list(retriever_per_user.columns)}")
    return retriever_per_user.index.to_numpy()[rank <= top_n + 1e-9]  # 1 / MRR carries rounding error


def only_with_heldout(reranker, heldout: pd.DataFrame) -> Callable:
    """An *evaluation* shortcut for a cascade: run ``reranker`` only on candidate lists that contain the user's
    held-out item (``heldout``: one ``user_id, item_id`` row per user), and score every other list 0.0.

    Exact, not an approximation: :func:`recbook.evaluation.protocol.cascade` places every re-ranked candidate above the
    rest, so when the held-out item is not among the candidates it keeps the position the retriever gave it,
    whatever the re-ranker says — the metrics of that user cannot change. Only for evaluation: it reads the
    held-out item, which a deployed system does not know.
    """
    if not {"user_id", "item_id"} <= set(heldout.columns):
        raise ValueError("heldout needs user_id and item_id columns (e.g. eval_set.heldout)")
    target = dict(zip(heldout["user_id"].tolist(), heldout["item_id"].tolist()))

    def score(users, items):
        users, items = np.asarray(users), np.asarray(items)
        out = np.zeros(items.shape, dtype=float)
        keep = np.array([u in target and bool((row == target[u]).any()) for u, row in zip(users.tolist(), items)], dtype=bool)
        if keep.any():
            out[keep] = np.asarray(reranker(users[keep], items[keep]), dtype=float)
        return out

    return score


class CachedScorer:
    """A scorer that remembers every (user, item) score it has computed and only asks ``scorer`` for new pairs.

    Re-ranking the same candidates twice (another top-N, another way to combine scores) then costs no new
    BERT passes. ``pairs_scored`` counts the pairs sent to ``scorer``.
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self.cache: dict[tuple, float] = {}
        self.pairs_scored = 0

    def __call__(self, users, items) -> np.ndarray:
        users, items = np.asarray(users), np.asarray(items)
        keys = [(u, i) for u, row in zip(users.tolist(), items.tolist()) for i in row]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            scores = np.asarray(self.scorer(np.array([u for u, _ in missing]), np.array([[i] for _, i in missing])), dtype=float)
            self.cache.update(zip(missing, scores.ravel().tolist()))
            self.pairs_scored += len(missing)
        return np.array([self.cache[k] for k in keys], dtype=float).reshape(items.shape)
