"""A BERT cross-encoder: one relevance logit for "user history [SEP] candidate item".

Taught in notebook ``06_finetune_bert``.

Both texts go through BERT *together*, so every history token can attend to every candidate
token: the most accurate way to score a pair, and the most expensive (one BERT pass per pair).
That is why it is used to **re-rank** a short list, not to search the whole catalogue.

The model is a pretrained encoder, mean pooling over real tokens, dropout and a linear head
giving one logit; it is trained with BCE-with-logits on positives and sampled negatives —
one label per *sequence*. (The seed article trained a sequence classifier with one label per
*token*, padded to 128: the wrong loss for this task, and slow.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recbook.data.text import history_token_budget
from recbook.models.base import Histories
from recbook.models.text_base import TextRecConfig, TextRecommender
from recbook.training.losses import bce_with_logits


def save_encoder_model(folder: str | Path, encoder, tokenizer, meta: dict) -> Path:
    """Write ``encoder/`` (``save_pretrained``: safetensors, plus the tokenizer) and ``recbook_model.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder / "encoder", safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder / "encoder")
    (folder / "recbook_model.json").write_text(json.dumps(meta, indent=1))
    return folder


def load_encoder_model(folder: str | Path, kind: str):
    """``(encoder, meta)`` from a folder written by :func:`save_encoder_model` for a ``kind`` model."""
    from transformers import AutoModel

    folder = Path(folder)
    meta_path = folder / "recbook_model.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{folder} has no recbook_model.json; pass a folder written by the model's save()")
    meta = json.loads(meta_path.read_text())
    if meta.get("model") != kind:
        raise ValueError(f"{folder} holds a {meta.get('model')!r} model, not a {kind} model")
    try:  # saved without BERT's pooler (drop_pooler): don't create a random one just to drop it
        encoder = AutoModel.from_pretrained(folder / "encoder", add_pooling_layer=False)
    except TypeError:  # an architecture without that option
        encoder = AutoModel.from_pretrained(folder / "encoder")
    return encoder, meta


def drop_pooler(encoder):
    """Remove BERT's ``pooler`` (a dense layer on [CLS] for next-sentence prediction), in place.

    Our models pool themselves (mean or [CLS] vector), so the pooler would be 148k parameters that no
    loss reaches: dead weight in every file, and DistributedDataParallel refuses parameters without
    gradients. BERT's forward skips a ``None`` pooler.
    """
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors where ``attention_mask`` is 1 (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class CrossEncoder(torch.nn.Module):
    """Pretrained encoder + mean pooling + linear head → one logit per (history, candidate) pair."""

    def __init__(self, encoder, dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = drop_pooler(encoder)
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        return self.logits_and_hidden(input_ids, attention_mask, token_type_ids)[0]

    def logits_and_hidden(self, input_ids, attention_mask, token_type_ids=None, output_hidden_states: bool = False):
        """``(logits, hidden states of every layer or None)`` — the forward pass, with the encoder's layer
        outputs when asked (distillation matches them, notebook 12)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.encoder(**kwargs, output_hidden_states=output_hidden_states)
        hidden = out.last_hidden_state
        pooled = mean_pool(hidden, attention_mask) if self.pooling == "mean" else hidden[:, 0]
        return self.head(self.dropout(pooled)).squeeze(-1).float(), out.hidden_states if output_hidden_states else None

    def training_loss(self, batch: dict) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return bce_with_logits(logits, batch["labels"])

    # ---------------------------------------------------------------- saving
    def save(self, folder: str | Path, tokenizer=None, extra: dict | None = None) -> Path:
        """Encoder (``save_pretrained``, safetensors), head, and config into ``folder``."""
        from safetensors.torch import save_file

        meta = {"model": "cross-encoder", "pooling": self.pooling, "dropout": self.dropout.p, **(extra or {})}
        folder = save_encoder_model(folder, self.encoder, tokenizer, meta)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "CrossEncoder":
        from safetensors.torch import load_file

        encoder, meta = load_encoder_model(folder, "cross-encoder")
        model = cls(encoder, dropout=meta["dropout"], pooling=meta["pooling"])
        model.head.load_state_dict(load_file(str(Path(folder) / "head.safetensors")))
        return model


@torch.no_grad()
def predict_pairs(model: CrossEncoder, encoded, collator, batch_size: int = 128, device: str = "cpu", amp_dtype=None) -> np.ndarray:
    """Logits for tokenized pairs (:func:`recbook.data.encode_pairs` or ``tokenize_pairs``), batched by length.

    Sorting by length before batching keeps padding minimal; results come back in the input order.
    """
    model.eval().to(device)
    lengths = np.asarray(encoded["length"])
    order = np.argsort(lengths, kind="stable")
    out = np.empty(len(lengths), dtype=np.float32)
    names = encoded.column_names if hasattr(encoded, "column_names") else list(encoded)
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in names]
    columns = {k: list(encoded[k]) for k in keep}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collator([{k: columns[k][i] for k in keep} for i in idx])
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            out[idx] = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")).float().cpu().numpy()
    return out


class CrossEncoderScorer:
    """``score(users, items)`` for :mod:`recbook.evaluation.metrics`: writes each pair's text and runs the model.

    A user's history is their items in ``history`` (most recent first, within the token budget). It is written
    **once** per user — on the first call, for every user in ``history`` — and reused for every candidate and
    every later call, as a service would. A candidate that is itself in the user's history (never the case for
    unseen items) gets its pair written by :func:`recbook.data.build_text_pairs`, which leaves it out of the history.
    """

    def __init__(self, model: CrossEncoder, tokenizer, dataset, history: pd.DataFrame, max_length: int = 128,
                 max_history_items: int = 10, batch_size: int = 128, device: str = "cpu", amp_dtype=None,
                 history_field: str = "title+genres"):
        self.model, self.tokenizer, self.dataset, self.history = model, tokenizer, dataset, history
        self.max_length, self.max_history_items, self.batch_size = max_length, max_history_items, batch_size
        self.device, self.amp_dtype, self.history_field = device, amp_dtype, history_field
        self.pairs_scored = 0
        self._texts = None  # (history text per user, seen items per user, item text per item id), built on first call

    def _written_texts(self):
        if self._texts is None:
            from recbook.data.text import history_texts

            users = self.history["user_id"].unique()
            written = history_texts(users, self.history, self.dataset, self.tokenizer, self.max_history_items, history_token_budget(self.max_length),
                                    self.history_field)
            seen = self.history.groupby("user_id")["item_id"].agg(frozenset)
            item_text = pd.Series(self.dataset.items["text"].to_numpy(), index=self.dataset.items["item_id"].to_numpy())
            self._texts = dict(zip(users.tolist(), written)), seen, item_text
        return self._texts

    def __call__(self, users, items) -> np.ndarray:
        from recbook.data import encode_pairs

        users, items = np.asarray(users), np.asarray(items)
        history_text, seen, item_text = self._written_texts()
        candidates = item_text.reindex(items.ravel())
        if candidates.isna().any() or any(not seen.get(u, frozenset()).isdisjoint(row.tolist()) for u, row in zip(users.tolist(), items)):
            return self.score_pair_texts(users, items)
        histories = np.repeat(np.array([history_text.get(u, "") for u in users.tolist()], dtype=object), items.shape[1])
        return self._predict(encode_pairs(histories, candidates.to_numpy(), self.tokenizer, self.max_length), items.shape)

    def score_pair_texts(self, users, items) -> np.ndarray:
        """The same scores with every pair's text written by :func:`recbook.data.build_text_pairs` (slower: the
        histories are rebuilt on each call) — used when a candidate is in the user's history, and as a reference."""
        from recbook.data import build_text_pairs, encode_pairs

        items = np.asarray(items)
        flat = pd.DataFrame({"user_id": np.repeat(np.asarray(users), items.shape[1]), "item_id": items.ravel()})
        pairs = build_text_pairs(flat, self.history, self.dataset, self.tokenizer, self.max_history_items, history_token_budget(self.max_length), self.history_field)
        return self._predict(encode_pairs(pairs["history_text"], pairs["item_text"], self.tokenizer, self.max_length), items.shape)

    def _predict(self, encoded, shape) -> np.ndarray:
        from recbook.data import PairCollator

        scores = predict_pairs(self.model, encoded, PairCollator(self.tokenizer), self.batch_size, self.device, self.amp_dtype)
        self.pairs_scored += int(np.prod(shape))
        return scores.reshape(shape).astype(float)


# ------------------------------------------------------------------ training data
def cross_encoder_examples(dataset, split, tokenizer, profile, seed: int = 0, examples: int | None = -1):
    """Tokenized training pairs (1 positive + ``profile.n_negatives`` sampled negatives per interaction).

    ``examples``: how many to prepare (``-1`` = what the profile's step budget trains on, ``None`` = all);
    a seeded random subset, positives kept with their negatives.
    """
    from recbook.data import build_text_pairs, make_training_pairs, to_hf_dataset, tokenize_pairs
    from recbook.data.text import HISTORY_FIELD

    pairs = make_training_pairs(split.train, dataset.item_ids, profile.n_negatives, seed=seed)  # negatives ∉ the user's training items
    pairs = subsample(pairs, examples_needed(profile) if examples == -1 else examples, seed, group_size=1 + profile.n_negatives)
    text = build_text_pairs(pairs, split.train, dataset, tokenizer, profile.max_history_items, history_token_budget(profile.max_length),
                            HISTORY_FIELD)
    return tokenize_pairs(to_hf_dataset(text, ["label", "history_text", "item_text"]), tokenizer, profile.max_length)


def cross_encoder_loader(dataset, split, tokenizer, profile, seed: int = 0) -> torch.utils.data.DataLoader:
    """Training pairs (1 positive + ``profile.n_negatives`` sampled) → text → tokens → length-bucketed batches.

    With a step budget (``profile.bert_max_steps``) only as many pairs as the budget trains on are
    written and tokenized — a random subset, positives kept with their negatives.
    """
    from recbook.data import LengthBucketBatchSampler, PairCollator

    encoded = cross_encoder_examples(dataset, split, tokenizer, profile, seed)
    sampler = LengthBucketBatchSampler(encoded["length"], profile.batch_size, seed=seed)
    return torch.utils.data.DataLoader(encoded, batch_sampler=sampler, collate_fn=PairCollator(tokenizer))


def examples_needed(profile) -> int | None:
    """With a step budget, only ``steps × batch`` examples are ever trained on: prepare just those."""
    return None if profile.bert_max_steps is None else profile.bert_max_steps * profile.batch_size


def subsample(frame: pd.DataFrame, n: int | None, seed: int, group_size: int = 1) -> pd.DataFrame:
    """A seeded random subset of ``n`` rows, keeping groups of ``group_size`` consecutive rows together."""
    if n is None or len(frame) <= n:
        return frame
    groups = len(frame) // group_size
    keep = np.sort(np.random.default_rng(seed).choice(groups, max(1, n // group_size), replace=False))
    rows = (keep[:, None] * group_size + np.arange(group_size)).ravel()
    return frame.iloc[rows].reset_index(drop=True)


# ------------------------------------------------------------------ the recommender
@dataclass
class CrossEncoderConfig(TextRecConfig):
    dropout: float = 0.1
    pooling: str = "mean"  # "mean" | "cls"


class CrossEncoderRecommender(TextRecommender):
    """A fine-tuned cross-encoder as a recommender: one BERT pass per (history, candidate) pair, so it scores given
    candidates (re-ranking); :meth:`score_all` works but costs one pass per catalogue item."""

    model_type = "cross-encoder"
    name = "cross-encoder"
    config_class = CrossEncoderConfig
    full_ranking = False

    def fit(self, dataset, split, progress: bool = False, evaluate_fn=None) -> "CrossEncoderRecommender":
        encoder, tokenizer = self.load_encoder()
        self.set_catalogue(dataset, tokenizer)
        device = self.device()
        loader = cross_encoder_loader(dataset, split, tokenizer, self.config.as_profile(), self.config.seed)
        network = CrossEncoder(encoder, dropout=self.config.dropout, pooling=self.config.pooling)
        self.network = self.fine_tune(network, loader, progress, device, evaluate_fn)
        return self

    @classmethod
    def from_network(cls, network: CrossEncoder, tokenizer, dataset, config=None) -> "CrossEncoderRecommender":
        """A network trained elsewhere (a re-ranker, distributed training) as a recommender over ``dataset``'s catalogue."""
        model = cls(config)
        model.set_catalogue(dataset, tokenizer)
        model.network = network
        return model

    def training_loss(self, batch) -> torch.Tensor:
        return self.network.training_loss(batch)

    def score(self, histories: Histories, items) -> np.ndarray:
        from recbook.data import PairCollator, encode_pairs
        from recbook.training.loop import autocast_dtype

        self.check_fitted()
        items = np.asarray(items)
        if items.ndim != 2 or items.shape[0] != len(histories):
            raise ValueError(f"items must have shape (users, candidates) = ({len(histories)}, m), got {items.shape}")
        cols = self.item_columns(items)
        if (cols < 0).any():
            raise ValueError(f"item id {items[cols < 0][0]!r} is not in the catalogue the cross-encoder was trained with")
        texts = np.asarray(self.history_texts(histories), dtype=object)
        hist = np.repeat(texts, items.shape[1]).reshape(items.shape)
        for r, h in enumerate(histories.items):  # a candidate inside the history is left out of that pair's history
            inside = np.isin(items[r], h)
            for j in np.flatnonzero(inside):
                hist[r, j] = self.history_texts(histories.subset([r]), leave_out=[cols[r, j]])[0]
        candidates = np.asarray(self.item_texts, dtype=object)[cols.ravel()]
        device = self.device()
        encoded = encode_pairs(hist.ravel(), candidates, self.tokenizer, self.config.max_length)
        scores = predict_pairs(self.network, encoded, PairCollator(self.tokenizer), 128, device, autocast_dtype("auto", device))
        return scores.reshape(items.shape).astype(float)

    def score_all(self, histories: Histories) -> np.ndarray:
        return self.score(histories, np.tile(self.item_ids, (len(histories), 1)))

    def state(self) -> dict:
        return {f"head.{k}": v for k, v in self.network.head.state_dict().items()}

    def save_extra(self, folder) -> None:
        self.save_encoder_files(folder, self.network.encoder)

    def load_state(self, arrays, folder) -> None:
        encoder = self.load_encoder_files(folder)
        self.network = CrossEncoder(encoder, dropout=self.config.dropout, pooling=self.config.pooling).eval()
        self.network.head.load_state_dict({k.removeprefix("head."): torch.from_numpy(v) for k, v in arrays.items()})


CrossEncoder.scorer_class = CrossEncoderScorer  # what bert_scorer builds for this network
