"""Robustness: how much a recommendation moves when the input is slightly wrong.

Taught in notebook ``18`` (keeping a recommender good over time).

Real histories are noisy: a mis-click adds an item the user did not choose, a new device or a privacy setting
shows the model only the last few items, a catalogue editor types a title wrong. A robust model's ranking moves
little under such small perturbations. Three perturbations of a user's history or of the catalogue:

- :func:`insert_random_item` — one random catalogue item the user never had, at a random position;
- :func:`truncate_history` — only the most recent ``keep`` items;
- :func:`typo_titles` — character typos (swap / drop / replace a letter) in a share of the title words; the
  item ``text`` is rebuilt from the typo'd title, so a text model reads it (:func:`with_text_features` gives a
  trained model the new frozen text features; an ID-only model is unaffected by construction).

Two measures, per user, on the same users before and after (:func:`ranking_stability`):

- **top-k overlap** ``|top-k ∩ top-k'| / k`` — 1.0 means the same k items are recommended (in any order);
- **NDCG@k of the held-out item** before and after — does the perturbation hurt *quality*, not only the list?

Both come with 95% bootstrap intervals over users (:func:`recbook.evaluation.stats.mean_ci`) and the NDCG change with a
paired comparison (:func:`recbook.evaluation.stats.paired_comparison`). :func:`robustness_table` puts models × perturbations
in one table. The training-time mitigation is ``SequentialConfig(history_dropout=...)``: random input items are
blanked while training, so the model learns not to lean on any single item.

Histories are 1-D arrays of **1-based catalogue indices**, oldest first (0 is padding), as read by
:meth:`recbook.models.sequential.SequentialRecommender.score_all`.
"""

from __future__ import annotations

import copy
import dataclasses
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recbook.data.schema import RecDataset, build_item_text
from recbook.errors import positive_int
from recbook.evaluation.stats import Comparison, Estimate, mean_ci, paired_comparison

PERTURBATIONS = ("insert", "truncate", "typos")


# ------------------------------------------------------------------ checks
def _check_rng(rng, name: str = "rng") -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name} must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _check_history(history, name: str = "history", n_items: int | None = None) -> np.ndarray:
    h = np.asarray(history)
    if h.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of 1-based catalogue indices, got shape {h.shape}")
    if h.size == 0:
        return h.astype(np.int64)
    if not np.issubdtype(h.dtype, np.integer):
        raise ValueError(f"{name} must hold integer catalogue indices, got dtype {h.dtype}")
    if (h < 1).any() or (n_items is not None and (h > n_items).any()):
        top = "" if n_items is None else f"…{n_items}"
        raise ValueError(f"{name} must hold 1-based catalogue indices 1{top} (0 is padding), got values {h.min()}…{h.max()}")
    return h.astype(np.int64)


# ----------------------------------------------------------- perturbations
def insert_random_item(history, n_items: int, rng: np.random.Generator, exclude=None, within_last: int | None = None) -> np.ndarray:
    """``history`` with one random catalogue item inserted at a random position (a mis-click, a shared account).

    The item is drawn uniformly from ``1…n_items`` minus the items already in ``history`` and those in ``exclude``
    (pass the user's held-out item, so the perturbation never leaks the answer). The position is uniform over the
    ``len(history) + 1`` gaps, or, with ``within_last=w``, over the gaps that leave the new item among the last ``w``
    items (a model reading the last ``max_len`` items only sees an insertion there). Returns a new array of length
    ``len(history) + 1`` holding every original item in its original order.
    """
    n_items = positive_int(n_items, "n_items")
    rng = _check_rng(rng)
    h = _check_history(history, "history", n_items)
    if within_last is not None:
        within_last = positive_int(within_last, "within_last")
    banned = np.zeros(n_items + 1, dtype=bool)
    banned[0] = True
    banned[h] = True
    if exclude is not None:
        ex = np.asarray(exclude).ravel()
        if ex.size:
            if not np.issubdtype(ex.dtype, np.integer):
                raise ValueError(f"exclude must hold integer catalogue indices, got dtype {ex.dtype}")
            banned[ex[(ex >= 1) & (ex <= n_items)]] = True
    candidates = np.flatnonzero(~banned)
    if candidates.size == 0:
        raise ValueError(f"no item left to insert: all {n_items} catalogue items (n_items) are in the history or in exclude")
    item = int(rng.choice(candidates))
    first = 0 if within_last is None else max(0, len(h) + 1 - within_last)
    position = int(rng.integers(first, len(h) + 1))
    return np.insert(h, position, item)


def truncate_history(history, keep: int) -> np.ndarray:
    """The most recent ``keep`` items of ``history`` (all of it when it is shorter), oldest first."""
    keep = positive_int(keep, "keep")
    h = _check_history(history)
    return h[-keep:].copy()


def _typo(word: str, rng: np.random.Generator) -> str:
    """One character-level typo in ``word`` (which holds at least one letter): swap two adjacent different letters,
    drop a letter, or replace a letter by another (case kept). Always returns a different string."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    swaps = [i for i in letters if i + 1 < len(word) and word[i + 1].isalpha() and word[i + 1].lower() != word[i].lower()]
    ops = ["replace"] + (["drop"] if len(letters) >= 2 else []) + (["swap"] if swaps else [])
    op = ops[int(rng.integers(len(ops)))]
    if op == "swap":
        i = swaps[int(rng.integers(len(swaps)))]
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    i = letters[int(rng.integers(len(letters)))]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    choices = [c for c in string.ascii_lowercase if c != word[i].lower()]
    new = choices[int(rng.integers(len(choices)))]
    return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1 :]


def _item_text(row: pd.Series, title: str) -> str:
    year = row.get("year")
    year = None if year is None or pd.isna(year) else (int(year) if isinstance(year, (int, float, np.integer, np.floating)) else year)
    genres = row.get("genres", "")
    description = row.get("description", "")
    return build_item_text(title, year, "" if pd.isna(genres) else genres, "" if pd.isna(description) else description)


def typo_titles(items_df: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of the items table whose titles carry character typos in about a ``rate`` share of their words.

    Each word that holds a letter is hit independently with probability ``rate`` and gets one typo (swap two
    adjacent letters, drop a letter or replace one). The ``text`` column of a changed item is rebuilt with
    :func:`recbook.data.schema.build_item_text` from the new title and the row's ``year``, ``genres`` and
    ``description`` (as MovieLens and the synthetic data build it); where the stored text was built otherwise
    (e.g. a folder with extra columns) its leading title is replaced instead. Deterministic given ``rng``;
    ``rate=0`` returns an identical copy. The input is not modified.
    """
    if not isinstance(items_df, pd.DataFrame) or "title" not in items_df.columns:
        raise ValueError("items_df must be an items DataFrame with a 'title' column (RecDataset.items)")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a share of words in [0, 1], got {rate!r}")
    rng = _check_rng(rng)
    out = items_df.copy()
    if rate == 0:
        return out
    titles = out["title"].astype(str).tolist()
    texts = out["text"].astype(str).tolist() if "text" in out.columns else None
    for pos, title in enumerate(titles):
        words = title.split(" ")
        changed = False
        for j, w in enumerate(words):
            if any(c.isalpha() for c in w) and rng.random() < rate:
                words[j] = _typo(w, rng)
                changed = True
        if not changed:
            continue
        new_title = " ".join(words)
        titles[pos] = new_title
        if texts is None:
            continue
        row = out.iloc[pos]
        if _item_text(row, title) == texts[pos]:
            texts[pos] = _item_text(row, new_title)
        elif texts[pos].startswith(title.strip()):
            texts[pos] = new_title.strip() + texts[pos][len(title.strip()) :]
        else:
            raise ValueError(f"items_df row {pos}: its text does not start with its title {title!r}, so the typo'd title "
                             "cannot be put into the text; rebuild the text with build_item_text")
    out["title"] = titles
    if texts is not None:
        out["text"] = texts
    return out


# ------------------------------------------------------------- text features
def with_text_features(model, text_features):
    """A copy of a trained text/hybrid :class:`~recbook.models.sequential.SequentialRecommender` reading new frozen
    text features (e.g. of a typo'd catalogue, :func:`typo_titles` then ``item_text_embeddings``).

    Only the frozen ``text_features`` buffer changes (rows ``1…n_items``, catalogue order); every learned weight is
    the trained model's, so the difference in its rankings is the effect of the text alone. The original model is
    left untouched. An ID-only model reads no text: it raises, since title typos cannot change it.
    """
    kind = getattr(getattr(model, "config", None), "item_features", None)
    if kind is None or not hasattr(model, "n_items"):
        raise ValueError(f"model must be a SequentialRecommender, got {type(model).__name__}")
    if kind == "id" or not hasattr(model, "text_features"):
        raise ValueError("model is ID-only (item_features='id'): it reads no text features, so new text cannot change it; "
                         "its rankings are unaffected by title typos by construction")
    new = torch.as_tensor(np.asarray(text_features), dtype=torch.float32)
    dim = model.text_features.shape[1]
    if new.shape != (model.n_items, dim):
        raise ValueError(f"text_features must have shape ({model.n_items}, {dim}) (one row per item, the model's text width), "
                         f"got {tuple(new.shape)}")
    if not torch.isfinite(new).all():
        raise ValueError("text_features contains NaN or infinite values")
    out = copy.deepcopy(model)
    with torch.no_grad():
        out.text_features[1 : model.n_items + 1] = new.to(out.text_features.device)
    return out


# --------------------------------------------------------------- stability
@dataclass
class Stability:
    """Per-user stability of one model under one perturbation, and its summaries."""

    per_user: pd.DataFrame  # index user; columns overlap, ndcg_before, ndcg_after
    overlap: Estimate  # mean top-k overlap with CI
    ndcg_before: Estimate
    ndcg_after: Estimate
    change: Comparison  # NDCG after − before, paired over users
    k: int

    def verdict(self) -> str:
        """One line for a table: unchanged, a significant NDCG drop/rise, or inconclusive."""
        k = self.k
        if self.overlap.low == 1.0 and (self.per_user["ndcg_after"] == self.per_user["ndcg_before"]).all():
            return f"unchanged (identical top-{k} for every user)"
        if not self.change.significant:
            return f"NDCG@{k} change inconclusive (CI contains 0); top-{k} overlap {self.overlap.mean:.2f}"
        word = "drops" if self.change.diff.mean < 0 else "rises"
        return f"NDCG@{k} {word} (CI excludes 0); top-{k} overlap {self.overlap.mean:.2f}"

    def as_row(self) -> dict:
        k = self.k
        return {f"top-{k} overlap": self.overlap.mean, "overlap low": self.overlap.low, "overlap high": self.overlap.high,
                f"NDCG@{k} before": self.ndcg_before.mean, f"NDCG@{k} after": self.ndcg_after.mean,
                "change": self.change.diff.mean, "change low": self.change.diff.low, "change high": self.change.diff.high,
                "p": self.change.p_value, "users": len(self.per_user), "verdict": self.verdict()}


def _as_histories(histories, name: str, n_items: int) -> list[np.ndarray]:
    if isinstance(histories, np.ndarray) and histories.ndim == 1 and histories.dtype != object:
        raise ValueError(f"{name} must be a list of 1-D histories (one per user), got one 1-D array; wrap it in a list")
    return [_check_history(h, f"{name}[{i}]", n_items) for i, h in enumerate(histories)]


def _scores(model, histories: list[np.ndarray], n_items: int, name: str) -> np.ndarray:
    scores = np.asarray(model.score_all(histories), dtype=float)
    if scores.shape != (len(histories), n_items):
        raise ValueError(f"{name}.score_all returned shape {scores.shape}, expected ({len(histories)}, {n_items})")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name}.score_all returned NaN or infinite scores; check the model and its inputs")
    return scores


def ranking_stability(model, histories: Sequence, perturbed_histories: Sequence | None, heldout, k: int = 10, *,
                      perturbed_model=None, users=None, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Stability:
    """How much ``model``'s ranking moves from ``histories`` to ``perturbed_histories``, user by user.

    Every catalogue item is scored (``model.score_all``) for each original and each perturbed history — or, with
    ``perturbed_model`` (e.g. :func:`with_text_features` of a typo'd catalogue), by that model on the same
    histories (pass ``perturbed_histories=None``). Items the user has seen (the original history, and an inserted
    item too) are excluded from both rankings, so both rank the same candidates; the held-out item is always kept.

    ``heldout``: each user's held-out item as a 1-based catalogue index. ``users``: ids for the per-user index
    (default ``0…n−1``). Returns a :class:`Stability`: per-user top-``k`` overlap ``|top-k ∩ top-k'| / k`` and the
    held-out item's NDCG@k before and after (tie-averaged, as :func:`recbook.evaluation.metrics.per_user_metrics`), their
    means with bootstrap CIs (:func:`recbook.evaluation.stats.mean_ci`) and the paired NDCG change after − before
    (:func:`recbook.evaluation.stats.paired_comparison`).
    """
    from recbook.evaluation.metrics import per_user_metrics

    k = positive_int(k, "k")
    n_items = getattr(model, "n_items", None)
    if not hasattr(model, "score_all") or not isinstance(n_items, (int, np.integer)):
        raise ValueError(f"model must have score_all(histories) and n_items (a SequentialRecommender), got {type(model).__name__}")
    if k > n_items:
        raise ValueError(f"k={k} is larger than the catalogue ({n_items} items)")
    before_h = _as_histories(histories, "histories", n_items)
    if not before_h:
        raise ValueError("histories is empty: stability needs at least one user")
    if perturbed_histories is None and perturbed_model is None:
        raise ValueError("pass perturbed_histories, perturbed_model, or both")
    after_h = before_h if perturbed_histories is None else _as_histories(perturbed_histories, "perturbed_histories", n_items)
    if len(after_h) != len(before_h):
        raise ValueError(f"perturbed_histories must hold one history per user ({len(before_h)}), got {len(after_h)}")
    after_model = model if perturbed_model is None else perturbed_model
    if getattr(after_model, "n_items", None) != n_items:
        raise ValueError(f"perturbed_model must score the same catalogue ({n_items} items), got {getattr(after_model, 'n_items', None)}")
    held = np.asarray(heldout).ravel()
    if held.shape != (len(before_h),) or not np.issubdtype(held.dtype, np.integer):
        raise ValueError(f"heldout must hold one integer catalogue index per user ({len(before_h)}), got {held.shape} of {held.dtype}")
    if (held < 1).any() or (held > n_items).any():
        raise ValueError(f"heldout must hold 1-based catalogue indices 1…{n_items}, got {held.min()}…{held.max()}")
    index = pd.RangeIndex(len(before_h), name="user_id") if users is None else pd.Index(np.asarray(users), name="user_id")
    if len(index) != len(before_h) or index.has_duplicates:
        raise ValueError(f"users must hold one distinct id per history ({len(before_h)})")

    s_before = _scores(model, before_h, n_items, "model")
    s_after = _scores(after_model, after_h, n_items, "perturbed_model" if perturbed_model is not None else "model")
    n = len(before_h)
    keep = np.ones((n, n_items), dtype=bool)
    for row, (a, b) in enumerate(zip(before_h, after_h)):
        keep[row, a - 1] = False
        keep[row, b - 1] = False
    rows = np.arange(n)
    keep[rows, held - 1] = True
    if (keep.sum(axis=1) < k).any():
        raise ValueError(f"a user has fewer than k={k} unseen items to rank; lower k")
    y_true = np.zeros((n, n_items))
    y_true[rows, held - 1] = 1.0
    tops = []
    ndcg = []
    for scores in (s_before, s_after):
        masked = np.where(keep, scores, -np.inf)
        tops.append(np.argsort(-masked, axis=1, kind="stable")[:, :k])
        ndcg.append(per_user_metrics(y_true, masked, k, keep)[f"NDCG@{k}"])
    overlap = np.array([len(np.intersect1d(a, b)) for a, b in zip(*tops)], dtype=float) / k
    per_user = pd.DataFrame({"overlap": overlap, "ndcg_before": ndcg[0], "ndcg_after": ndcg[1]}, index=index)
    return Stability(
        per_user,
        mean_ci(per_user["overlap"], level, n_boot, seed),
        mean_ci(per_user["ndcg_before"], level, n_boot, seed),
        mean_ci(per_user["ndcg_after"], level, n_boot, seed),
        paired_comparison(per_user["ndcg_after"], per_user["ndcg_before"], ("after", "before"), level, n_boot, seed=seed),
        k,
    )


# ------------------------------------------------------------------- table
def eval_histories(split, n_users: int | None, seed: int, item_col: pd.Series):
    """``(user ids, histories, held-out rows)`` of the test users :func:`robustness_table` measures: the first ``n_users``
    of the seeded subset :func:`recbook.evaluation.protocol.make_eval_set` uses (``None`` = all), each user's training + validation
    items as a 1-based history, and the test item as a 1-based catalogue index (``item_col``: item id → column)."""
    from recbook.data.windows import user_sequences
    from recbook.evaluation.protocol import history_for_test, user_subset

    heldout = split.test[["user_id", "item_id"]].reset_index(drop=True)
    if heldout["user_id"].duplicated().any():
        raise ValueError("split.test must hold one held-out row per user (a leave-last-out split)")
    if n_users is not None:
        n_users = positive_int(n_users, "n_users")
    heldout = user_subset(heldout, n_users, seed)  # the same seeded subset as recbook.evaluation.protocol.make_eval_set
    held = item_col.reindex(heldout["item_id"]).to_numpy()
    if np.isnan(held).any():
        raise ValueError("split.test refers to items that are not in dataset's catalogue")
    sequences = user_sequences(history_for_test(split), item_col)
    empty = np.zeros(0, dtype=np.int64)
    histories = [sequences.get(u, empty) for u in heldout["user_id"]]
    return heldout["user_id"].to_numpy(), histories, held.astype(np.int64) + 1


def robustness_table(models: dict, dataset: RecDataset, split, *, n_users: int | None = 300, k: int = 10, truncate_to: int = 5,
                     typo_rate: float = 0.2, insert_within: int | None = None, typo_features=None, cache_dir=None,
                     perturbations: Sequence[str] = PERTURBATIONS, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One tidy table: rows = model × perturbation, columns = top-``k`` overlap (mean, CI), NDCG@k before/after, the
    change with its CI and p-value, and a verdict.

    Users: a seeded subset of ``n_users`` of the test users of ``split`` (a leave-last-out split of ``dataset``;
    ``None`` = all); history = training + validation, held-out item = the test item. The perturbed histories and
    catalogue are drawn once (seeded) and shared by every model, so models are compared on the same noise:

    - ``"insert"``: :func:`insert_random_item` (never the held-out item), among the last ``insert_within`` items
      (default: the shortest ``max_len`` of the models, so every model reads the inserted item);
    - ``"truncate"``: :func:`truncate_history` to the last ``truncate_to`` items;
    - ``"typos"``: :func:`typo_titles` at ``typo_rate``; text/hybrid models get the typo'd catalogue's frozen text
      features via :func:`with_text_features`, ID-only models are unchanged by construction. ``typo_features``:
      those features as an ``(n_items, d)`` array, or a function of the typo'd :class:`RecDataset`; default
      :func:`recbook.models.item_text.item_text_embeddings` (the course's sentence encoder, cached in ``cache_dir``).
    """
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: trained SequentialRecommender}")
    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown or not perturbations:
        raise ValueError(f"perturbations must be a non-empty selection of {PERTURBATIONS}, got {list(perturbations)}")
    truncate_to = positive_int(truncate_to, "truncate_to")
    for name, m in models.items():
        if getattr(m, "n_items", None) != dataset.n_items or not hasattr(m, "score_all"):
            raise ValueError(f"models[{name!r}] must be a SequentialRecommender over dataset's {dataset.n_items} items")
    item_col = pd.Series(np.arange(dataset.n_items), index=dataset.item_ids)
    users, histories, held = eval_histories(split, n_users, seed, item_col)
    if insert_within is None:
        insert_within = min(int(getattr(getattr(m, "config", None), "max_len", 10**9)) for m in models.values())
    insert_within = positive_int(insert_within, "insert_within")

    perturbed: dict[str, list] = {}
    if "insert" in perturbations:
        rng = np.random.default_rng([seed, 1])
        perturbed["insert"] = [insert_random_item(h, dataset.n_items, rng, exclude=[t], within_last=insert_within)
                               for h, t in zip(histories, held)]
    if "truncate" in perturbations:
        perturbed["truncate"] = [truncate_history(h, truncate_to) for h in histories]
    typo_text = None
    if "typos" in perturbations and any(getattr(m.config, "item_features", "id") != "id" for m in models.values()):
        typo_items = typo_titles(dataset.items, typo_rate, np.random.default_rng([seed, 2]))
        typo_ds = dataclasses.replace(dataset, name=f"{dataset.name} (title typos {typo_rate:g})", items=typo_items)
        if typo_features is None:
            from recbook.models.item_text import item_text_embeddings

            typo_text = item_text_embeddings(typo_ds, cache_dir=cache_dir, progress=False)
        elif callable(typo_features):
            typo_text = typo_features(typo_ds)
        else:
            typo_text = typo_features
    labels = {"insert": "insert 1 random item", "truncate": f"truncate to last {truncate_to}", "typos": f"title typos ({typo_rate:.0%} of words)"}

    rows = []
    for name, model in models.items():
        for p in perturbations:
            if p == "typos":
                text_model = getattr(model.config, "item_features", "id") != "id"
                after = with_text_features(model, typo_text) if text_model else model
                result = ranking_stability(model, histories, None, held, k, perturbed_model=after, users=users,
                                           level=level, n_boot=n_boot, seed=seed)
            else:
                result = ranking_stability(model, histories, perturbed[p], held, k, users=users, level=level, n_boot=n_boot, seed=seed)
            row = {"model": name, "perturbation": labels[p], **result.as_row()}
            if p == "typos" and getattr(model.config, "item_features", "id") == "id":
                row["verdict"] = "unaffected by construction (ID-only: reads no text)"
            rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["PERTURBATIONS", "Stability", "insert_random_item", "ranking_stability", "robustness_table", "truncate_history",
           "typo_titles", "with_text_features"]
