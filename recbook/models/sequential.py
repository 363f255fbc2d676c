"""Transformers over item sequences: SASRec (causal, next item) and BERT4Rec (cloze) — one readable file.

Taught in notebook ``04_sequential``.

A user is the sequence of items they interacted with, oldest first. A small transformer reads it and
its last hidden state ``h`` scores every catalogue item by a dot product with that item's
representation ``e_i`` — the same table feeds the input (*tied* weights)::

    score(user, i) = h_user · e_i

Two training objectives, both a full softmax over the catalogue (it is small: 1,682 movies):

- **causal** (SASRec, Kang & McAuley 2018; GPT-style): at every position predict the *next* item,
  seeing only the past (a causal attention mask). The negative log-likelihood of the next item is
  exactly the cross-entropy of notebook 01, with the catalogue as the classes.
- **cloze** (BERT4Rec, Sun et al. 2019; BERT-style): hide a random 20% of the items behind a
  ``[MASK]`` token and predict them from both sides; at inference a ``[MASK]`` is appended after
  the history and its prediction is the recommendation.

Three ways to represent an item (``item_features``):

- ``id``: a learned embedding per item id — strong for items with many interactions, and *nothing*
  for an item never seen in training (its vector is zero here, so it cannot be recommended on merit);
- ``text``: a learned projection of a **frozen** sentence embedding of the item's text (title,
  year, genres) from the course's BERT, computed once per catalogue (:func:`~recbook.models.item_text.item_text_embeddings`)
  — every item with text has a representation, including brand-new ones (cold start);
- ``hybrid``: both, summed, with **ID dropout** (each step, a random share of items lose their ID
  vector) so the model learns to rank from the text path too.

Two traps met while building it, both guarded here: (1) left-padded sequences with a key-padding
mask can leave a query position with *no* key to attend to; PyTorch's fused kernels then return NaN,
and NaN compares false, so a metric that does not refuse NaN would rank the held-out item first.
We always let a position attend to itself (so no row is empty) and :mod:`recbook.evaluation.metrics` refuses
NaN. (2) MovieLens has many equal timestamps: sequences keep the file order within a second
(a stable sort), never an order that follows item ids.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recbook.data.windows import _left_pad, user_sequences
from recbook.errors import positive_int

OBJECTIVES = ("causal", "cloze")
ITEM_FEATURES = ("id", "text", "hybrid")


@dataclass
class SequentialConfig:
    """The architecture and objective; defaults fit MovieLens-100k on a laptop CPU in about a minute."""

    objective: str = "causal"  # "causal" (SASRec) | "cloze" (BERT4Rec)
    item_features: str = "id"  # "id" | "text" | "hybrid"
    max_len: int = 50  # items of history the model reads
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.1
    id_dropout: float = 0.5  # hybrid only: share of items whose ID vector is dropped at each step
    mask_prob: float = 0.2  # cloze only: share of positions hidden behind [MASK]
    history_dropout: float = 0.0  # training only: share of real input items blanked to padding (robustness to noisy histories)
    # hybrid only: weight of a second softmax over the *text-only* item table (no ID vectors), added to the loss. It
    # trains the text path to rank items on its own — what an item never seen in training has — without dropping ID
    # vectors from the main softmax (ID dropout does that at a cost to warm items)
    text_loss: float = 0.0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.item_features not in ITEM_FEATURES:
            raise ValueError(f"item_features must be one of {ITEM_FEATURES}, got {self.item_features!r}")
        for name in ("max_len", "dim", "layers", "heads"):
            setattr(self, name, positive_int(getattr(self, name), name))  # numpy integers become ints (config.json)
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        for name in ("dropout", "id_dropout", "mask_prob", "history_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if isinstance(self.text_loss, bool) or not isinstance(self.text_loss, (int, float)) or not self.text_loss >= 0:
            raise ValueError(f"text_loss must be a number >= 0 (0: off; 'auto' is lmrec's), got {self.text_loss!r}")


# --------------------------------------------------------------- frozen text features


def attention_allowed(seq: torch.Tensor, objective: str) -> torch.Tensor:
    """``(batch, length, length)`` bool: entry ``[b, i, j]`` says whether query position ``i`` of left-padded sequence
    ``b`` (0 = padding) may attend to key position ``j`` — the mask every block of :class:`SequentialRecommender` uses.
    Padding keys are hidden; ``"causal"`` (SASRec) also hides the future (query i sees keys 0…i), ``"cloze"`` (BERT4Rec)
    sees both sides. Every position may attend to itself, so no row is empty (the NaN trap of notebook 04)."""
    if objective not in ("causal", "cloze"):
        raise ValueError(f"objective must be 'causal' or 'cloze', got {objective!r}")
    length = seq.shape[1]
    allowed = (seq != 0)[:, None, :].expand(-1, length, -1)
    pos = torch.arange(length, device=seq.device)  # masks from comparisons: they export to ONNX (a bool eye/tril does not run there)
    if objective == "causal":
        allowed = allowed & (pos[:, None] >= pos[None, :])  # query i sees keys 0…i
    return allowed | (pos[:, None] == pos[None, :])  # never an empty row (NaN trap)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(dim, dim=-1)
        q, k, v = (t.view(b, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, length, dim)))
        return x + self.mlp(self.ln2(x))

    def forward_last(self, x: torch.Tensor, allowed_last: torch.Tensor) -> torch.Tensor:
        """The block's output at the last position only, ``(batch, 1, dim)``, given every position's input ``x`` and the
        last query's mask ``allowed_last`` ``(batch, 1, length)``. Exactly :meth:`forward`'s last row: keys and values
        still come from every position, but the query, the attention output, the projection and the MLP — most of a
        block's arithmetic — run for one position instead of ``length``."""
        b, length, dim = x.shape
        h = self.ln1(x)
        q = F.linear(h[:, -1:], self.qkv.weight[:dim], self.qkv.bias[:dim])
        k, v = F.linear(h, self.qkv.weight[dim:], self.qkv.bias[dim:]).split(dim, dim=-1)
        q = q.view(b, 1, self.heads, dim // self.heads).transpose(1, 2)
        k, v = (t.view(b, length, self.heads, dim // self.heads).transpose(1, 2) for t in (k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed_last[:, None], dropout_p=self.dropout if self.training else 0.0)
        last = x[:, -1:] + self.drop(self.proj(att.transpose(1, 2).reshape(b, 1, dim)))
        return last + self.mlp(self.ln2(last))


class SequentialRecommender(nn.Module):
    """SASRec / BERT4Rec over ``n_items`` catalogue items (indices 1…n; 0 = padding, n+1 = [MASK]).

    ``text_features`` (``n_items × d`` array, catalogue order) is required for ``text``/``hybrid``;
    it is a frozen buffer, only its projection is learned. ``known_items`` (bool, catalogue order)
    marks items seen in training: the others get no ID vector (zero) when scoring.
    """

    def __init__(self, n_items: int, config: SequentialConfig | None = None, text_features=None, known_items=None):
        super().__init__()
        self.config = config = config or SequentialConfig()
        self.n_items = n_items
        self.mask_token = n_items + 1
        uses_text = config.item_features in ("text", "hybrid")
        if uses_text and text_features is None:
            raise ValueError(f"item_features={config.item_features!r} needs text_features (see item_text_embeddings)")
        if uses_text:
            text = torch.as_tensor(np.asarray(text_features), dtype=torch.float32)
            if text.ndim != 2 or text.shape[0] != n_items:
                raise ValueError(f"text_features must have one row per item ({n_items}), got shape {tuple(text.shape)}")
            padded = torch.zeros(n_items + 2, text.shape[1])
            padded[1 : n_items + 1] = text
            self.register_buffer("text_features", padded)
            self.text_proj = nn.Linear(text.shape[1], config.dim)
        if config.item_features in ("id", "hybrid"):
            self.item_emb = nn.Embedding(n_items + 2, config.dim, padding_idx=0)
            nn.init.normal_(self.item_emb.weight, std=0.02)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()
        self.mask_emb = nn.Parameter(torch.randn(config.dim) * 0.02)  # the [MASK] token's input vector (cloze)
        known = torch.ones(n_items + 2, dtype=torch.bool) if known_items is None else torch.cat(
            [torch.zeros(1, dtype=torch.bool), torch.as_tensor(np.asarray(known_items), dtype=torch.bool), torch.zeros(1, dtype=torch.bool)])
        if known.shape[0] != n_items + 2:
            raise ValueError(f"known_items must have one flag per item ({n_items})")
        known[0] = False
        self.register_buffer("known_items", known)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.dim, config.heads, config.dropout) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.dim)

    # -- item representations ---------------------------------------------------
    def item_table(self) -> torch.Tensor:
        """``(n_items + 2, dim)``: row i represents catalogue item i (row 0 = padding, last = [MASK]).

        At inference (eval mode, no gradient) the table is computed once and reused while the tensors it is made of are
        unchanged (same objects, same in-place version): a request then costs no projection of the text features."""
        if not self.training and not torch.is_grad_enabled():
            key = tuple((id(t), t._version) for t in self._table_inputs())
            cached = getattr(self, "_table_cache", None)
            if cached is not None and cached[0] == key:
                return cached[1]
            table = self._item_table()
            self._table_cache = (key, table)
            return table
        return self._item_table()

    def _table_inputs(self) -> list:
        return [t for t in (getattr(self, "text_features", None), getattr(getattr(self, "text_proj", None), "weight", None),
                            getattr(getattr(self, "text_proj", None), "bias", None), getattr(getattr(self, "item_emb", None), "weight", None),
                            self.known_items) if t is not None]

    def _item_table(self) -> torch.Tensor:
        kind = self.config.item_features
        table = 0
        if kind in ("text", "hybrid"):
            table = self.text_proj(self.text_features)
        if kind in ("id", "hybrid"):
            ids = self.item_emb.weight * self.known_items[:, None]  # never-trained items: no ID vector
            if kind == "hybrid" and self.training and self.config.id_dropout > 0:
                keep = torch.rand(ids.shape[0], 1, device=ids.device) >= self.config.id_dropout
                ids = ids * keep
            table = table + ids
        table = table * (torch.arange(table.shape[0], device=table.device) != 0)[:, None]  # padding stays zero
        return table

    # -- encoder ----------------------------------------------------------------
    def encode(self, seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states ``(batch, max_len, dim)`` of left-padded item sequences (0 = padding)."""
        table = self.item_table() if table is None else table
        return self.encode_vectors(seq, table[seq])

    def _inputs(self, seq: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first block's input (item vectors, [MASK] vectors, positions) and which keys each query may attend to."""
        length = seq.shape[1]
        x = torch.where((seq == self.mask_token)[..., None], self.mask_emb.to(x.dtype), x)
        x = self.drop(x + self.pos_emb.weight[-length:])
        return x, attention_allowed(seq, self.config.objective)

    def encode_vectors(self, seq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` given the sequences' item vectors ``x = table[seq]`` — the part a request runs once the item
        table is looked up (what :mod:`recbook.compress.request` exports)."""
        x, allowed = self._inputs(seq, x)
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_f(x)

    def encode_last(self, seq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``encode_vectors(seq, x)[:, -1]`` — the user vector a request reads — computed without the last block's work at
        the other positions (:meth:`Block.forward_last`): the same numbers up to rounding, with less arithmetic. Every
        block but the last still runs at every position, because the last one's keys and values need them."""
        x, allowed = self._inputs(seq, x)
        for block in self.blocks[:-1]:
            x = block(x, allowed)
        return self.ln_f(self.blocks[-1].forward_last(x, allowed[:, -1:]))[:, 0]

    def logits(self, hidden: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Scores of every catalogue item (columns 0…n−1 = items 1…n) for each hidden state."""
        return hidden @ table[1 : self.n_items + 1].T

    # -- training ---------------------------------------------------------------
    def training_loss(self, batch: dict) -> torch.Tensor:
        """Full-softmax cross-entropy; each *sequence* weighs the same (mean over its targets, then over
        sequences), so gradient accumulation over equal micro-batches equals one large batch exactly."""
        seq = batch["input"]
        if self.training and self.config.history_dropout > 0:
            # history dropout: blank a random share of the real input items (targets are kept, so a causal model learns to
            # predict the next item from a history with holes); each sequence keeps its most recent real item
            real = seq != 0
            drop = (torch.rand(seq.shape, device=seq.device) < self.config.history_dropout) & real
            last = seq.shape[1] - 1 - real.flip(1).int().argmax(dim=1)
            drop[torch.arange(seq.shape[0], device=seq.device), last] = False
            seq = seq.masked_fill(drop, 0)
        table = self.item_table()
        if self.config.objective == "causal":
            inputs, targets = seq, batch["target"]
        else:
            real = seq != 0
            masked = (torch.rand(seq.shape, device=seq.device) < self.config.mask_prob) & real
            none = ~masked.any(dim=1)
            masked[none, -1] = True  # every sequence predicts at least one item (its last, as at inference)
            inputs = torch.where(masked, torch.full_like(seq, self.mask_token), seq)
            targets = torch.where(masked, seq, torch.zeros_like(seq))
        hidden = self.encode(inputs, table)
        # a target the model does not know (an update whose item table is frozen, e.g. LoRA) cannot be learned: skipped,
        # as its column is masked out of every softmax below
        valid = (targets > 0) & self.known_items[targets]
        if not valid.any():
            return hidden.sum() * 0.0  # nothing to learn from this batch (a zero loss that keeps the graph)
        unknown = ~self.known_items[1 : self.n_items + 1]
        ce = self._softmax_loss(hidden[valid], table, targets[valid], unknown)
        if self.config.item_features == "hybrid" and self.config.text_loss > 0:  # the text path alone must rank the target too
            ce = ce + self.config.text_loss * self._softmax_loss(hidden[valid], self._text_table(), targets[valid], unknown)
        per_seq = torch.zeros(seq.shape[0], device=seq.device).index_add_(0, valid.nonzero()[:, 0], ce)
        counts = valid.sum(dim=1)
        has = counts > 0
        return (per_seq[has] / counts[has]).mean()

    def _softmax_loss(self, hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, unknown: torch.Tensor) -> torch.Tensor:
        """Per-target full-softmax cross-entropy over ``table``; items never seen in training are no one's negatives (a
        cold item's text is not pushed down)."""
        logits = self.logits(hidden, table)
        if unknown.any():
            logits = logits.masked_fill(unknown, float("-inf"))
        return F.cross_entropy(logits.float(), targets - 1, reduction="none")

    def _text_table(self) -> torch.Tensor:
        """The item table of a hybrid model without its ID vectors: what an item never seen in training is scored by."""
        table = self.text_proj(self.text_features)
        return table * (torch.arange(table.shape[0], device=table.device) != 0)[:, None]

    # -- inference ----------------------------------------------------------------
    @torch.no_grad()
    def user_vectors(self, histories: list[np.ndarray], batch_size: int = 256) -> torch.Tensor:
        """The hidden state that scores the next item, for each history (1-based item indices, oldest first)."""
        self.eval()
        table = self.item_table()
        out = []
        for start in range(0, len(histories), batch_size):
            rows = []
            for h in histories[start : start + batch_size]:
                if self.config.objective == "cloze":
                    h = np.r_[np.asarray(h, dtype=np.int64)[-(self.config.max_len - 1):] if self.config.max_len > 1 else [], self.mask_token]
                rows.append(_left_pad(np.asarray(h, dtype=np.int64), self.config.max_len))
            seq = torch.from_numpy(np.stack(rows)).to(table.device)
            out.append(self.encode_last(seq, table[seq]))  # only the position that scores the next item
        return torch.cat(out)

    @torch.no_grad()
    def score_all(self, histories: list[np.ndarray]) -> np.ndarray:
        """``(len(histories), n_items)`` scores of every catalogue item."""
        self.eval()
        return self.logits(self.user_vectors(histories), self.item_table()).float().cpu().numpy()

    # -- files ------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, item_ids) -> Path:
        """Weights (safetensors, incl. the frozen text features) + ``sequential.json`` (config, catalogue), atomically."""
        from safetensors.torch import save_file

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(tmp / "model.safetensors"))
        meta = {"config": asdict(self.config), "n_items": self.n_items, "item_ids": np.asarray(item_ids).tolist()}
        (tmp / "sequential.json").write_text(json.dumps(meta))
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> tuple["SequentialRecommender", np.ndarray]:
        """``(model, item_ids)`` from a folder written by :meth:`save` (safetensors only: no pickle)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "sequential.json").is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{folder} lacks sequential.json or model.safetensors; pass a folder written by SequentialRecommender.save")
        meta = json.loads((folder / "sequential.json").read_text())
        state = load_file(str(folder / "model.safetensors"))
        config = SequentialConfig(**meta["config"])
        text = state["text_features"][1:-1].numpy() if "text_features" in state else None
        model = cls(meta["n_items"], config, text_features=text, known_items=state["known_items"][1:-1].numpy())
        model.load_state_dict(state)
        return model.eval(), np.asarray(meta["item_ids"])


# ------------------------------------------------------------------------ scorer
class SequentialScorer:
    """``score(users, items)`` for :mod:`recbook.evaluation.protocol`: each user's visible ``history`` → next-item scores.

    User vectors are computed once per user and cached; a user with no visible history gets the
    empty sequence's vector (the same for everyone, like a popularity prior).
    """

    def __init__(self, model: SequentialRecommender, item_ids, history: pd.DataFrame):
        self.model = model
        self.item_ids = np.asarray(item_ids)
        self.item_col = pd.Series(np.arange(len(self.item_ids)), index=self.item_ids)
        self.sequences = user_sequences(history, self.item_col)
        self.cache: dict = {}

    def _rows(self, users: np.ndarray) -> np.ndarray:
        new = [u for u in dict.fromkeys(users.tolist()) if u not in self.cache]
        if new:
            empty = np.zeros(0, dtype=np.int64)
            scores = self.model.score_all([self.sequences.get(u, empty) for u in new])
            if not np.isfinite(scores).all():
                raise FloatingPointError("the sequential model produced non-finite scores; check its inputs and weights")
            self.cache.update(zip(new, scores))
        return np.stack([self.cache[u] for u in users.tolist()])

    def __call__(self, users, items) -> np.ndarray:
        items = np.asarray(items)
        cols = self.item_col.reindex(items.ravel()).to_numpy()
        if np.isnan(cols).any():
            raise ValueError("SequentialScorer got item ids that are not in the catalogue it was trained on")
        full = self._rows(np.asarray(users))
        return np.take_along_axis(full, cols.astype(int).reshape(items.shape), axis=1)
