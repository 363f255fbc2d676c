"""From interactions to tokens: (user history, candidate item) text pairs, tokenization, batching.

Taught in notebook ``02_data``.

A text recommender reads a pair of texts — what the user consumed before (most recent
first) and the candidate item — and predicts whether the user picks the candidate.
The pipeline here is built to be *fast*:

1. :func:`build_text_pairs` writes the history text once per (user, time) and keeps it
   within a token budget, so nothing is wasted on tokens that would be truncated;
2. :func:`tokenize_pairs` tokenizes the whole dataset once, in batches, with the fast
   (Rust) tokenizer — not example by example inside ``__getitem__``;
3. :class:`PairCollator` pads each batch only to its own longest example (dynamic
   padding) instead of to a fixed 128;
4. :class:`LengthBucketBatchSampler` groups examples of similar length so even that
   padding stays small.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from recbook.data.schema import DataError, RecDataset

HISTORY_SEPARATOR = " ; "
HISTORY_FIELD = "title+genres"  # how the course's BERT models write each history item: "Title (Genre, Genre)"
CANDIDATE_RESERVE = 32  # tokens of a (history, candidate) pair kept for the candidate's text and the special tokens


def history_token_budget(max_length: int) -> int:
    """Tokens a history may use in a (history, candidate) pair of ``max_length`` tokens: the rest is the candidate's."""
    return max(1, int(max_length) - CANDIDATE_RESERVE)


def _token_counts(texts: list[str], tokenizer) -> np.ndarray:
    if tokenizer is None:
        return np.array([len(t.split()) for t in texts])
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.array([len(ids) for ids in encoded])


def history_entries(dataset: RecDataset, history_field: str = "title") -> list[str]:
    """How each catalogue item is written inside a user's history (one string per item, in catalogue order).

    ``"title+genres"`` is compact and informative: ``"Toy Story (Animation, Comedy)"``.
    """
    if history_field == "title+genres":
        genres = dataset.items["genres"].fillna("").astype(str).str.replace("|", ", ", regex=False)
        return [f"{t} ({g})" if g else str(t) for t, g in zip(dataset.items["title"], genres)]
    return dataset.items[history_field].astype(str).tolist()


def catalogue_texts(dataset: RecDataset, history_field: str = "title+genres", items=None) -> list[str]:
    """Every text a (history, candidate) pair of this catalogue can contain: candidate texts, history
    entries and the separator — what vocabulary trimming (notebook 13) must keep. ``items`` (ids) limits the candidate
    texts and history entries to those items (e.g. the ones known at training time); the separator always stays."""
    texts, entries = list(dataset.items["text"].astype(str)), history_entries(dataset, history_field)
    if items is not None:
        keep = dataset.items["item_id"].isin(np.asarray(items)).to_numpy()
        texts = [t for t, k in zip(texts, keep) if k]
        entries = [e for e, k in zip(entries, keep) if k]
    return texts + entries + [HISTORY_SEPARATOR.strip()]


def _entries_and_costs(dataset: RecDataset, tokenizer, history_field: str) -> tuple[list[str], np.ndarray]:
    """History entries of every catalogue item and what each costs in the token budget (entry + separator)."""
    if history_field != "title+genres" and history_field not in dataset.items.columns:
        raise DataError(
            f"history_field {history_field!r} is not an items column; choose 'title+genres' or one of {list(dataset.items.columns)}"
        )
    entries = history_entries(dataset, history_field)
    entry_cost = _token_counts(entries, tokenizer) + (_token_counts([HISTORY_SEPARATOR.strip()], tokenizer)[0] if tokenizer else 1)
    return entries, entry_cost


def _most_recent_within_budget(item_cols, entry_cost: np.ndarray, max_history_items: int, max_history_tokens: int) -> list[int]:
    """Catalogue columns of the history items to write: most recent first, within both budgets."""
    chosen, budget = [], max_history_tokens
    for j in item_cols[::-1]:
        if len(chosen) == max_history_items or entry_cost[j] > budget:
            break
        chosen.append(j)
        budget -= entry_cost[j]
    return chosen


def history_texts(
    users,
    history: pd.DataFrame,
    dataset: RecDataset,
    tokenizer=None,
    max_history_items: int = 10,
    max_history_tokens: int = 96,
    history_field: str = "title",
) -> list[str]:
    """Each user's history text from *all* of its interactions in ``history`` (no candidate, no cut-off).

    Written exactly as :func:`build_text_pairs` writes a history (most recent first, the same
    budgets), but nothing is left out for a candidate — what a two-tower model embeds as the
    user's vector. Users without history get ``""``.
    """
    if max_history_items < 1 or max_history_tokens < 1:
        raise ValueError("max_history_items and max_history_tokens must be >= 1")
    entries, entry_cost = _entries_and_costs(dataset, tokenizer, history_field)
    item_index = pd.Series(np.arange(dataset.n_items), index=dataset.items["item_id"].to_numpy())
    hist = history.sort_values(["user_id", "timestamp"], kind="stable")
    by_user = {u: item_index.reindex(g["item_id"]).to_numpy() for u, g in hist.groupby("user_id", sort=False)}
    out = []
    for user in np.asarray(users).tolist():
        chosen = _most_recent_within_budget(by_user.get(user, ()), entry_cost, max_history_items, max_history_tokens)
        out.append(HISTORY_SEPARATOR.join(entries[j] for j in chosen))
    return out


def build_text_pairs(
    pairs: pd.DataFrame,
    history: pd.DataFrame,
    dataset: RecDataset,
    tokenizer=None,
    max_history_items: int = 10,
    max_history_tokens: int = 96,
    history_field: str = "title",
) -> pd.DataFrame:
    """Attach ``history_text`` and ``item_text`` to each (user_id, item_id, timestamp) row of ``pairs``.

    The history of a row is the user's items in ``history`` with a timestamp *strictly
    before* the row's timestamp (no peeking at the future, nor at the candidate itself),
    most recent first, at most ``max_history_items`` of them and at most
    ``max_history_tokens`` tokens (counted with ``tokenizer``; whitespace words if
    ``None``). ``history_field`` is the item column used for history entries (``title``
    is short; ``text`` is richer but longer; ``"title+genres"`` writes "Title (Genre, Genre)"). Rows without a timestamp column use all
    of ``history``. Adds ``history_text``, ``item_text`` and ``history_items``.
    """
    for col in ("user_id", "item_id"):
        if col not in pairs.columns:
            raise DataError(f"pairs lack column {col!r}; build them with make_training_pairs or a split")
    if max_history_items < 1 or max_history_tokens < 1:
        raise ValueError("max_history_items and max_history_tokens must be >= 1")
    entries, entry_cost = _entries_and_costs(dataset, tokenizer, history_field)
    item_index = pd.Series(np.arange(dataset.n_items), index=dataset.items["item_id"].to_numpy())
    unknown = ~pairs["item_id"].isin(item_index.index)
    if unknown.any():
        raise DataError(f"pairs refer to item_id {pairs.loc[unknown, 'item_id'].iloc[0]} which is not in {dataset.name}'s items")

    hist = history.sort_values(["user_id", "timestamp"], kind="stable")
    by_user = {
        u: (g["timestamp"].to_numpy(), item_index.reindex(g["item_id"]).to_numpy())
        for u, g in hist.groupby("user_id", sort=False)
    }
    times = pairs["timestamp"].to_numpy() if "timestamp" in pairs.columns else np.full(len(pairs), np.iinfo(np.int64).max)
    cand = item_index.reindex(pairs["item_id"]).to_numpy()
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    cache: dict[tuple, tuple[str, int, tuple]] = {}
    texts, counts = [], []
    for user, t, c in zip(pairs["user_id"].to_numpy(), times, cand):
        ts, its = by_user.get(user, empty)
        end = int(np.searchsorted(ts, t, side="left"))
        key = (user, end)
        if key not in cache:
            chosen = _most_recent_within_budget(its[:end], entry_cost, max_history_items, max_history_tokens)
            cache[key] = (HISTORY_SEPARATOR.join(entries[j] for j in chosen), len(chosen), tuple(chosen))
        text, n, chosen = cache[key]
        if c in chosen:  # only possible with repeated interactions: never show the candidate as history
            kept = [j for j in chosen if j != c]
            text, n = HISTORY_SEPARATOR.join(entries[j] for j in kept), len(kept)
        texts.append(text)
        counts.append(n)
    out = pairs.reset_index(drop=True).copy()
    out["history_text"] = texts
    out["item_text"] = dataset.items["text"].to_numpy()[cand]
    out["history_items"] = counts
    return out


def to_hf_dataset(pairs: pd.DataFrame, columns: list[str] | None = None):
    """A :class:`datasets.Dataset` holding the given columns of a text-pairs table."""
    import datasets

    columns = columns or [c for c in ("user_id", "item_id", "label", "history_text", "item_text") if c in pairs.columns]
    missing = [c for c in columns if c not in pairs.columns]
    if missing:
        raise DataError(f"pairs lack column(s) {missing}; build them with build_text_pairs")
    return datasets.Dataset.from_pandas(pairs[columns].reset_index(drop=True), preserve_index=False)


def tokenize_pairs(hf_dataset, tokenizer, max_length: int = 128, batch_size: int = 1000, show_progress: bool = False):
    """Tokenize ``history_text`` + ``item_text`` once, in batches; adds ``length`` for bucketing.

    No padding here (the collator pads per batch). Pairs longer than ``max_length`` are
    truncated from the longer side first — the *oldest* end of the history, since the
    history is written most recent first.
    """
    for col in ("history_text", "item_text"):
        if col not in hf_dataset.column_names:
            raise DataError(f"dataset lacks column {col!r}; build it with build_text_pairs + to_hf_dataset")
    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, got {max_length}")

    def encode(batch):
        return encode_pairs(batch["history_text"], batch["item_text"], tokenizer, max_length)

    drop = [c for c in ("history_text", "item_text") if c in hf_dataset.column_names]
    return hf_dataset.map(encode, batched=True, batch_size=batch_size, remove_columns=drop, desc="tokenize" if show_progress else None)


def encode_pairs(history_texts, item_texts, tokenizer, max_length: int = 128) -> dict[str, list]:
    """Tokenize (history, candidate) text pairs in one batched call; adds ``length`` per pair.

    The same encoding as :func:`tokenize_pairs`, without building a ``datasets.Dataset`` —
    for scoring candidates on the fly.
    """
    enc = tokenizer(list(history_texts), list(item_texts), truncation="longest_first", max_length=max_length)
    out = dict(enc)
    out["length"] = [len(ids) for ids in enc["input_ids"]]
    return out


class PairCollator:
    """Stack tokenized examples into a batch, padding only to the batch's longest example.

    Returns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present) as
    ``long`` tensors and ``labels`` as a ``float`` tensor (for BCE), when examples carry
    a ``label``. ``pad_to_multiple_of=8`` helps tensor cores on GPUs.
    """

    def __init__(self, tokenizer=None, pad_token_id: int | None = None, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            if tokenizer is None or tokenizer.pad_token_id is None:
                raise ValueError("PairCollator needs a tokenizer with a pad token, or pad_token_id=")
            pad_token_id = tokenizer.pad_token_id
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("PairCollator got an empty batch")
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = int(math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        pad_values = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
        batch = {}
        for key, pad in pad_values.items():
            if key in features[0]:
                batch[key] = torch.tensor([list(f[key]) + [pad] * (longest - len(f[key])) for f in features], dtype=torch.long)
        if "label" in features[0]:
            batch["labels"] = torch.tensor([float(f["label"]) for f in features], dtype=torch.float32)
        return batch


class LengthBucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices whose examples have similar lengths (less padding), in random order.

    Indices are shuffled, cut into buckets of ``bucket_size`` (default 50 batches),
    sorted by length inside each bucket, split into batches, and the batches shuffled —
    random enough for SGD, tight enough for padding. Call :meth:`set_epoch` each epoch.
    """

    def __init__(self, lengths, batch_size: int, shuffle: bool = True, seed: int = 0, bucket_size: int | None = None, drop_last: bool = False):
        self.lengths = np.asarray(lengths)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence of example lengths")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size = bucket_size or batch_size * 50
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.bucket_size):
            bucket = order[start : start + self.bucket_size]
            bucket = bucket[np.argsort(self.lengths[bucket], kind="stable")]
            batches.extend(bucket[i : i + self.batch_size] for i in range(0, len(bucket), self.batch_size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        for b in self._batches():
            yield b.tolist()

    def __len__(self) -> int:
        return len(self._batches())


def padding_fraction(lengths, batches, pad_to: int | None = None) -> float:
    """Fraction of token slots that are padding when ``batches`` (lists of indices) are padded
    to their own longest example — or to ``pad_to`` for every batch (fixed-length padding)."""
    lengths = np.asarray(lengths)
    real = padded = 0
    for b in batches:
        lb = lengths[np.asarray(b)]
        width = pad_to if pad_to is not None else lb.max()
        if width < lb.max():
            raise ValueError(f"pad_to={pad_to} is shorter than an example ({int(lb.max())} tokens)")
        real += int(lb.sum())
        padded += int(width) * len(lb)
    if padded == 0:
        raise ValueError("no batches given")
    return 1.0 - real / padded
