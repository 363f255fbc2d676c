"""A BERT two-tower (bi-encoder) recommender: one vector per user history, one per item.

Taught in notebook ``06_finetune_bert``.

The *same* encoder (shared weights) embeds a user's history text and an item's text; the score
is the dot product of the two L2-normalised vectors divided by a temperature. Because items are
encoded on their own, the whole catalogue is embedded **once** and cached: scoring a user
against every item is a single matrix product — fast enough for full-ranking retrieval, where a
cross-encoder would need one BERT pass per item.

Training uses **in-batch softmax**: in a batch of B (history, positive item) pairs, each history's
positive is the right answer among the B items of the batch (the other B−1 are negatives for
free). The same item appearing twice in a batch is masked, so it is never its own negative.

In-batch negatives are drawn by popularity: a film watched a thousand times is a negative in many more batches than
one watched twice, so an uncorrected model learns to push popular films *down* — on MovieLens the uncorrected
two-tower of notebook 06 recommended the least popular films (average popularity 24 against popularity's 139) and
hit nothing. The fix is the **logQ correction** (Yi et al., RecSys 2019): subtract each column's log-probability of
being sampled (its log share of the training positives, :func:`item_log_frequency`) from its logit in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recbook.models.base import Histories
from recbook.models.cross_encoder import load_encoder_model, mean_pool, save_encoder_model, subsample
from recbook.models.text_base import TextRecConfig, TextRecommender


class TwoTower(torch.nn.Module):
    """Shared encoder for histories and items; ``score = <u, i> / temperature`` on unit vectors."""

    def __init__(self, encoder, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        from recbook.models.cross_encoder import drop_pooler

        self.encoder = drop_pooler(encoder)  # mean pooling: BERT's own pooler would be unused
        self.temperature = temperature

    def embed(self, input_ids, attention_mask) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(mean_pool(hidden, attention_mask).float(), dim=-1)

    def training_loss(self, batch: dict) -> torch.Tensor:
        users = self.embed(batch["history_input_ids"], batch["history_attention_mask"])
        items = self.embed(batch["item_input_ids"], batch["item_attention_mask"])
        logits = users @ items.T / self.temperature
        if "item_logq" in batch:  # sampling-bias correction: a popular item is a negative in many batches
            logits = logits - batch["item_logq"].to(logits.dtype)[None, :]
        ids = batch["item_id"]
        duplicate = (ids[None, :] == ids[:, None]) & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)
        logits = logits.masked_fill(duplicate, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(ids), device=logits.device))

    def save(self, folder: str | Path, tokenizer=None, extra: dict | None = None) -> Path:
        """The shared encoder (safetensors) and its tokenizer, plus ``recbook_model.json``."""
        return save_encoder_model(folder, self.encoder, tokenizer, {"model": "two-tower", "temperature": self.temperature, **(extra or {})})

    @classmethod
    def load(cls, folder: str | Path) -> "TwoTower":
        encoder, meta = load_encoder_model(folder, "two-tower")
        return cls(encoder, temperature=meta["temperature"])


class TwoTowerCollator:
    """Pads the history side and the item side of each example separately (dynamic padding)."""

    def __init__(self, tokenizer):
        self.pad_id = tokenizer.pad_token_id

    def _pad(self, seqs, value):
        longest = max(len(s) for s in seqs)
        return torch.tensor([list(s) + [value] * (longest - len(s)) for s in seqs], dtype=torch.long)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("TwoTowerCollator got an empty batch")
        batch = {}
        for side in ("history", "item"):
            batch[f"{side}_input_ids"] = self._pad([f[f"{side}_input_ids"] for f in features], self.pad_id)
            batch[f"{side}_attention_mask"] = self._pad([f[f"{side}_attention_mask"] for f in features], 0)
        batch["item_id"] = torch.tensor([int(f["item_id"]) for f in features], dtype=torch.long)
        if all("item_logq" in f for f in features):
            batch["item_logq"] = torch.tensor([float(f["item_logq"]) for f in features], dtype=torch.float32)
        return batch


def tokenize_two_tower(pairs: pd.DataFrame, tokenizer, max_history_length: int = 96, max_item_length: int = 64) -> list[dict]:
    """Tokenize the positives of a text-pairs table (``label == 1`` when present) for two-tower training."""
    if "label" in pairs.columns:
        pairs = pairs[pairs["label"] == 1]
    if len(pairs) == 0:
        raise ValueError("no positive pairs to train a two-tower model on")
    h = tokenizer(list(pairs["history_text"]), truncation=True, max_length=max_history_length)
    i = tokenizer(list(pairs["item_text"]), truncation=True, max_length=max_item_length)
    return [
        {"history_input_ids": h["input_ids"][k], "history_attention_mask": h["attention_mask"][k],
         "item_input_ids": i["input_ids"][k], "item_attention_mask": i["attention_mask"][k],
         "item_id": int(item), "length": len(h["input_ids"][k]) + len(i["input_ids"][k])}
        for k, item in enumerate(pairs["item_id"])
    ]


@torch.no_grad()
def tower_vectors(model: TwoTower, texts: list[str], tokenizer, max_length: int = 96, batch_size: int = 128, device: str = "cpu", amp_dtype=None) -> np.ndarray:
    """Unit vectors for a list of texts, batched by length; rows in the input order."""
    model.eval().to(device)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = np.array([len(x) for x in enc["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(texts), model.encoder.config.hidden_size), dtype=np.float32)
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        longest = int(lengths[idx].max())
        ids = torch.tensor([enc["input_ids"][j] + [pad] * (longest - lengths[j]) for j in idx], device=device)
        mask = torch.tensor([[1] * lengths[j] + [0] * (longest - lengths[j]) for j in idx], device=device)
        with torch.autocast(device_type=device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            out[idx] = model.embed(ids, mask).float().cpu().numpy()
    return out


class TwoTowerScorer:
    """``score(users, items)`` for :mod:`recbook.evaluation.metrics`, with item vectors cached once.

    Item vectors are computed for the whole catalogue at construction (one BERT pass per item);
    a user's vector is computed the first time the user is scored and cached too.
    """

    def __init__(self, model: TwoTower, tokenizer, dataset, history: pd.DataFrame, max_length: int = 96,
                 max_history_items: int = 10, batch_size: int = 128, device: str = "cpu", amp_dtype=None,
                 history_field: str = "title+genres"):
        self.model, self.tokenizer, self.dataset, self.history = model, tokenizer, dataset, history
        self.max_length, self.max_history_items = max_length, max_history_items
        self.kw = {"batch_size": batch_size, "device": device, "amp_dtype": amp_dtype}
        self.history_field = history_field
        self.item_col = pd.Series(np.arange(dataset.n_items), index=dataset.item_ids)
        self.item_vectors = tower_vectors(model, dataset.items["text"].tolist(), tokenizer, max_length, **self.kw)
        self.user_vectors: dict = {}

    def _users(self, users: np.ndarray) -> np.ndarray:
        new = [u for u in dict.fromkeys(users.tolist()) if u not in self.user_vectors]
        if new:
            from recbook.data.text import history_texts

            # the user's whole visible history, with no candidate: a (history, candidate) pair would leave the
            # candidate out of the history, and any dummy candidate may be one of the user's items
            texts = history_texts(new, self.history, self.dataset, self.tokenizer, self.max_history_items, self.max_length - 2,
                                  self.history_field)
            for u, v in zip(new, tower_vectors(self.model, texts, self.tokenizer, self.max_length, **self.kw)):
                self.user_vectors[u] = v
        return np.stack([self.user_vectors[u] for u in users.tolist()])

    def __call__(self, users, items) -> np.ndarray:
        items = np.asarray(items)
        u = self._users(np.asarray(users))
        cols = self.item_col.reindex(items.ravel()).to_numpy()
        if np.isnan(cols).any():
            raise ValueError("TwoTowerScorer got item ids that are not in the dataset's catalogue")
        iv = self.item_vectors[cols.astype(int)].reshape(*items.shape, -1)
        return np.einsum("nd,nmd->nm", u, iv).astype(float)


def two_tower_loader(dataset, split, tokenizer, profile, seed: int = 0) -> torch.utils.data.DataLoader:
    """Positive (history, item) pairs → tokens per tower → length-bucketed batches (in-batch negatives)."""
    from recbook.data import LengthBucketBatchSampler, build_text_pairs
    from recbook.data.text import HISTORY_FIELD
    from recbook.models.cross_encoder import examples_needed

    pairs = subsample(split.train[["user_id", "item_id", "timestamp"]], examples_needed(profile), seed)
    text = build_text_pairs(pairs, split.train, dataset, tokenizer, profile.max_history_items, profile.max_length - 2, HISTORY_FIELD)
    examples = tokenize_two_tower(text, tokenizer, profile.max_length, 64)
    logq = item_log_frequency(split.train["item_id"])
    for e in examples:
        e["item_logq"] = logq[e["item_id"]]
    sampler = LengthBucketBatchSampler([e["length"] for e in examples], profile.batch_size, seed=seed)
    return torch.utils.data.DataLoader(examples, batch_sampler=sampler, collate_fn=TwoTowerCollator(tokenizer))


def item_log_frequency(item_ids) -> pd.Series:
    """``log`` of each item's share of the training positives: the log-probability that it is a column of an in-batch
    softmax, which the loss subtracts (logQ correction, Yi et al., RecSys 2019)."""
    counts = pd.Series(np.asarray(item_ids)).value_counts()
    return np.log(counts / counts.sum())


@dataclass
class TwoTowerConfig(TextRecConfig):
    temperature: float = 0.05


class TwoTowerRecommender(TextRecommender):
    """A fine-tuned two-tower model as a recommender: the catalogue is embedded once (cached), each history once,
    and every item is scored by one matrix product — full ranking is affordable."""

    model_type = "two-tower"
    name = "two-tower"
    config_class = TwoTowerConfig

    def fit(self, dataset, split, progress: bool = False, evaluate_fn=None) -> "TwoTowerRecommender":
        encoder, tokenizer = self.load_encoder()
        self.set_catalogue(dataset, tokenizer)
        loader = two_tower_loader(dataset, split, tokenizer, self.config.as_profile(), self.config.seed)
        network = TwoTower(encoder, temperature=self.config.temperature)
        self.network = self.fine_tune(network, loader, progress, self.device(), evaluate_fn)
        self._item_vectors = None
        return self

    def training_loss(self, batch) -> torch.Tensor:
        return self.network.training_loss(batch)

    def forget_cache(self) -> None:
        self._item_vectors = None

    def item_vectors(self) -> np.ndarray:
        if getattr(self, "_item_vectors", None) is None:
            self._item_vectors = self._embed(self.item_texts)
        return self._item_vectors

    def _embed(self, texts) -> np.ndarray:
        from recbook.training.loop import autocast_dtype

        device = self.device()
        return tower_vectors(self.network, list(texts), self.tokenizer, self.config.max_length, device=device, amp_dtype=autocast_dtype("auto", device))

    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        # the whole visible history, with no candidate: the user's vector is the same for every item
        users = self._embed(self.history_texts(histories, budget=self.config.max_length - 2))
        return (users @ self.item_vectors().T).astype(np.float64)

    def state(self) -> dict:
        return {"temperature": np.asarray([self.config.temperature], dtype=np.float32)}

    def save_extra(self, folder) -> None:
        self.save_encoder_files(folder, self.network.encoder)

    def load_state(self, arrays, folder) -> None:
        self.network = TwoTower(self.load_encoder_files(folder), temperature=self.config.temperature).eval()
        self._item_vectors = None


TwoTower.scorer_class = TwoTowerScorer  # what bert_scorer builds for this network
