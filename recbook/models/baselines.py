"""The baselines every BERT model must beat: popularity, item-kNN, and matrix factorisation (BPR).

Taught in notebook ``03_baselines``.

Every recommender here has the same two methods:

- ``fit(train, item_ids)`` learns from a table of training interactions;
- ``score(users, items)`` returns a score for each ``(user, candidate item)``: ``users`` has shape
  ``(n,)``, ``items`` shape ``(n, m)``, the result shape ``(n, m)`` — exactly what
  :func:`recbook.metrics.evaluate_sampled` and :func:`recbook.metrics.evaluate_full` call.

Items or users never seen in training get the lowest score the model can give (0 or the
item's prior), never an error, so a model can always be evaluated on any candidate list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from . import MODELS


class _Indexed:
    """Maps raw user/item ids to rows and columns."""

    def _index(self, train: pd.DataFrame, item_ids) -> None:
        missing = {"user_id", "item_id"} - set(train.columns)
        if missing:
            raise ValueError(f"train needs columns user_id and item_id; missing {sorted(missing)}")
        if len(train) == 0:
            raise ValueError("train is empty: a recommender needs at least one interaction to fit")
        self.item_ids = np.asarray(item_ids)
        self.item_col = pd.Series(np.arange(len(self.item_ids)), index=self.item_ids)
        self.user_ids = np.sort(train["user_id"].unique())
        self.user_row = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids)
        cols = self.item_col.reindex(train["item_id"]).to_numpy()
        if np.isnan(cols).any():
            raise ValueError("train refers to item ids that are not in item_ids")
        self._train_rows = self.user_row.reindex(train["user_id"]).to_numpy()
        self._train_cols = cols.astype(int)

    def _interaction_matrix(self) -> sp.csr_matrix:
        """Binary user × item matrix of the training interactions (repeats count once)."""
        X = sp.csr_matrix((np.ones(len(self._train_rows)), (self._train_rows, self._train_cols)),
                          shape=(len(self.user_ids), len(self.item_ids)))
        X.data[:] = 1.0
        return X

    def _cols(self, items: np.ndarray) -> np.ndarray:
        """Column of each item id; -1 for unknown items."""
        cols = self.item_col.reindex(np.asarray(items).ravel()).to_numpy()
        return np.where(np.isnan(cols), -1, cols).astype(int).reshape(np.shape(items))

    def _rows(self, users: np.ndarray) -> np.ndarray:
        rows = self.user_row.reindex(np.asarray(users)).to_numpy()
        return np.where(np.isnan(rows), -1, rows).astype(int)

    def _check_fitted(self):
        if not hasattr(self, "item_col"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train, item_ids) first")


def _gather(full: np.ndarray, cols: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``full[r, cols[r, j]]`` with ``fill`` where ``cols`` is -1 (unknown item)."""
    out = np.take_along_axis(full, np.maximum(cols, 0), axis=1)
    return np.where(cols < 0, fill, out)


class Popularity(_Indexed):
    """Score = how many training interactions the item has. The same list for everyone."""

    name = "popularity"

    def fit(self, train: pd.DataFrame, item_ids) -> "Popularity":
        self._index(train, item_ids)
        self.counts = np.bincount(self._train_cols, minlength=len(self.item_ids)).astype(float)
        return self

    def score(self, users, items) -> np.ndarray:
        self._check_fitted()
        cols = self._cols(items)
        return np.where(cols < 0, 0.0, self.counts[np.maximum(cols, 0)])


class ItemKNN(_Indexed):
    """Item-based collaborative filtering on co-occurrence.

    Two items are similar when the same users interacted with both: cosine similarity of their
    user columns, ``sim(i, j) = c_ij / (sqrt(n_i · n_j) + shrink)``, keeping each item's
    ``neighbours`` most similar items. A user's score for item ``i`` is the sum of ``sim(i, j)``
    over the items ``j`` in their training history.
    """

    name = "item-kNN"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0):
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, train: pd.DataFrame, item_ids) -> "ItemKNN":
        self._index(train, item_ids)
        n_items = len(self.item_ids)
        X = self._interaction_matrix()
        self.history = X
        co = (X.T @ X).toarray()
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < n_items:
            cutoff = np.partition(sim, n_items - self.neighbours, axis=0)[n_items - self.neighbours]
            sim = np.where(sim >= cutoff[None, :], sim, 0.0)
        self.similarity = sim
        return self

    def score(self, users, items) -> np.ndarray:
        self._check_fitted()
        rows = self._rows(users)
        full = np.zeros((len(rows), len(self.item_ids)))
        known = rows >= 0
        if known.any():
            full[known] = self.history[rows[known]] @ self.similarity
        return _gather(full, self._cols(items))


class MatrixFactorization(_Indexed, torch.nn.Module):
    """Matrix factorisation trained with the BPR loss (Rendle et al., 2009).

    ``score(u, i) = p_u · q_i + b_i``. BPR asks that a user's observed item score above an item
    they did not interact with: ``loss = −log σ(score(u, i⁺) − score(u, i⁻))``, with ``i⁻`` drawn
    uniformly from items the user has not seen. Trained with :func:`recbook.train.train_model`
    (the one training loop of the course) — see :meth:`fit`.
    """

    name = "MF-BPR"

    def __init__(self, dim: int = 64, epochs: int = 20, lr: float = 5e-3, weight_decay: float = 1e-5, batch_size: int = 1024, seed: int = 0):
        torch.nn.Module.__init__(self)
        self.dim, self.epochs, self.lr, self.weight_decay, self.batch_size, self.seed = dim, epochs, lr, weight_decay, batch_size, seed

    def _build(self, n_users: int, n_items: int) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.user_emb = torch.nn.Parameter(torch.randn(n_users, self.dim, generator=g) * 0.1)
        self.item_emb = torch.nn.Parameter(torch.randn(n_items, self.dim, generator=g) * 0.1)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_emb[users] * self.item_emb[items]).sum(-1) + self.item_bias[items]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        diff = self(batch["users"], batch["pos"]) - self(batch["users"], batch["neg"])
        return torch.nn.functional.softplus(-diff).mean()  # = −log σ(diff), stable

    def fit(self, train: pd.DataFrame, item_ids, progress: bool = False) -> "MatrixFactorization":
        from ..train import TrainConfig, train_model

        self._index(train, item_ids)
        self._build(len(self.user_ids), len(self.item_ids))
        batches = BPRBatches(self._train_rows, self._train_cols, self._interaction_matrix(), self.batch_size, self.seed)
        config = TrainConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, warmup_ratio=0.0, grad_clip=None,
                             decay_norm_and_bias=True, progress=progress, seed=self.seed, device="cpu", amp="off")
        from ..device import torch_threads

        with torch_threads(1):  # tiny ops: one thread is faster, and robust to other processes on the cores
            self.history_ = train_model(self, batches, config).history
        return self

    @torch.no_grad()
    def score(self, users, items) -> np.ndarray:
        self._check_fitted()
        rows = self._rows(users)
        cols = self._cols(items)
        u = torch.as_tensor(np.maximum(rows, 0))[:, None].expand(cols.shape)
        s = self(u.reshape(-1), torch.as_tensor(np.maximum(cols, 0)).reshape(-1)).reshape(cols.shape).numpy().astype(float)
        floor = float(s.min()) - 1.0 if s.size else 0.0
        s[cols < 0] = floor
        s[rows < 0] = self.item_bias.detach().numpy()[np.maximum(cols[rows < 0], 0)]
        return s


class BPRBatches:
    """Batches of (user, positive, sampled negative) for BPR; new negatives every epoch."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, seen: sp.csr_matrix, batch_size: int, seed: int = 0):
        self.rows, self.cols, self.seen, self.batch_size, self.seed = rows, cols, seen.tocsr(), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return int(np.ceil(len(self.rows) / self.batch_size))

    def __iter__(self):
        rng = np.random.default_rng(self.seed + 1000 * self.epoch)
        order = rng.permutation(len(self.rows))
        n_items = self.seen.shape[1]
        neg = rng.integers(0, n_items, size=len(order))
        # resample the few negatives that hit a seen item (a handful of rounds is plenty)
        for _ in range(20):
            bad = np.asarray(self.seen[self.rows[order], neg]).ravel() > 0
            if not bad.any():
                break
            neg[bad] = rng.integers(0, n_items, size=int(bad.sum()))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield {
                "users": torch.as_tensor(self.rows[idx]),
                "pos": torch.as_tensor(self.cols[idx]),
                "neg": torch.as_tensor(neg[start : start + self.batch_size]),
            }


# name → class, derived from the one model registry (recbook.models.MODELS)
BASELINES = {name: spec.load_class() for name, spec in MODELS.items() if spec.kind == "baseline"}


# ------------------------------------------------------------------ saving
def save_baseline(model: _Indexed, folder) -> None:
    """Save a fitted baseline as ``baseline.safetensors`` + ``recbook_model.json`` (no pickle)."""
    import json
    from pathlib import Path

    from safetensors.numpy import save_file

    model._check_fitted()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"item_ids": np.asarray(model.item_ids, dtype=np.int64), "user_ids": np.asarray(model.user_ids, dtype=np.int64)}
    meta = {"model": model.name}
    if isinstance(model, Popularity):
        arrays["counts"] = model.counts
    elif isinstance(model, ItemKNN):
        hist = model.history.tocsr()
        arrays.update(similarity=model.similarity, indptr=hist.indptr.astype(np.int64), indices=hist.indices.astype(np.int64))
        meta.update(neighbours=model.neighbours, shrink=model.shrink)
    elif isinstance(model, MatrixFactorization):
        arrays.update({k: v.detach().numpy() for k, v in model.state_dict().items()})
        meta.update(dim=model.dim)
    else:  # pragma: no cover
        raise TypeError(f"cannot save {type(model).__name__}")
    save_file(arrays, str(folder / "baseline.safetensors"))
    (folder / "recbook_model.json").write_text(json.dumps(meta, indent=1))


def load_baseline(folder) -> _Indexed:
    """Load what :func:`save_baseline` wrote."""
    import json
    from pathlib import Path

    from safetensors.numpy import load_file

    folder = Path(folder)
    if not (folder / "baseline.safetensors").is_file():
        raise FileNotFoundError(f"{folder} holds no baseline.safetensors; pass a folder written by save_baseline")
    meta = json.loads((folder / "recbook_model.json").read_text())
    arrays = load_file(str(folder / "baseline.safetensors"))
    kind = {cls.name: cls for cls in BASELINES.values()}.get(meta["model"])
    if kind is None:
        raise ValueError(f"{folder} holds a {meta['model']!r} model, not a baseline")
    model = kind(neighbours=meta["neighbours"], shrink=meta["shrink"]) if kind is ItemKNN else kind(dim=meta["dim"]) if kind is MatrixFactorization else kind()
    model.item_ids, model.user_ids = arrays["item_ids"], arrays["user_ids"]
    model.item_col = pd.Series(np.arange(len(model.item_ids)), index=model.item_ids)
    model.user_row = pd.Series(np.arange(len(model.user_ids)), index=model.user_ids)
    if kind is Popularity:
        model.counts = arrays["counts"]
    elif kind is ItemKNN:
        model.similarity = arrays["similarity"]
        n = len(arrays["indices"])
        model.history = sp.csr_matrix((np.ones(n), arrays["indices"], arrays["indptr"]), shape=(len(model.user_ids), len(model.item_ids)))
    else:
        model._build(len(model.user_ids), len(model.item_ids))
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in ("user_emb", "item_emb", "item_bias")})
    return model
