"""Matrix factorisation trained with the BPR loss (Rendle et al., 2009).

Taught in notebook ``03_baselines``.

``score(u, i) = p_u · q_i + b_i``. BPR asks that a user's observed item score above an item they did not interact
with: ``loss = −log σ(score(u, i⁺) − score(u, i⁻))``, with ``i⁻`` drawn uniformly from items the user has not seen.
Trained with :func:`recbook.training.loop.train_model` (the one training loop of the course). A user it was not fitted on
has no vector ``p_u`` and gets the item biases alone (a learned popularity prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recbook.data.splits import history_for_test
from recbook.errors import ConfigError, positive_int
from recbook.models.base import Histories, ModelConfig, Recommender, build_config, history_matrix
from recbook.models.popularity import check_interactions


@dataclass
class MFConfig(ModelConfig):
    dim: int = 32
    epochs: int = 30
    lr: float = 5e-3
    weight_decay: float = 1e-4
    batch_size: int = 1024

    def __post_init__(self):
        for name in ("dim", "epochs", "batch_size"):
            positive_int(getattr(self, name), name)
        if not self.lr > 0:
            raise ConfigError("lr", f"lr must be > 0, got {self.lr}")

    @classmethod
    def from_profile(cls, profile, **overrides) -> "MFConfig":
        return build_config(cls, {"epochs": profile.mf_epochs, **overrides})


class MFNetwork(torch.nn.Module):
    """The learned tables: a vector per user and per item, and an item bias."""

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.user_emb = torch.nn.Parameter(torch.randn(n_users, dim, generator=g) * 0.1)
        self.item_emb = torch.nn.Parameter(torch.randn(n_items, dim, generator=g) * 0.1)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_emb[users] * self.item_emb[items]).sum(-1) + self.item_bias[items]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        diff = self(batch["users"], batch["pos"]) - self(batch["users"], batch["neg"])
        return torch.nn.functional.softplus(-diff).mean()  # = −log σ(diff), stable


class MatrixFactorization(Recommender):
    model_type = "mf"
    name = "MF-BPR"
    config_class = MFConfig

    def fit(self, dataset, split, progress: bool = False) -> "MatrixFactorization":
        return self.fit_interactions(history_for_test(split), dataset.item_ids, progress)

    def fit_interactions(self, interactions: pd.DataFrame, item_ids, progress: bool = False) -> "MatrixFactorization":
        from recbook.perf.device import torch_threads
        from recbook.training.loop import TrainConfig, train_model

        self.item_ids = np.asarray(item_ids)
        histories = Histories.from_interactions(check_interactions(interactions))
        self.user_ids = histories.user_ids
        seen = history_matrix(self, histories)
        cols = self.item_columns(interactions["item_id"].to_numpy())
        rows = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids).reindex(interactions["user_id"]).to_numpy()
        c = self.config
        self.network = MFNetwork(len(self.user_ids), len(self.item_ids), c.dim, c.seed)
        batches = BPRBatches(rows, cols, seen, c.batch_size, c.seed)
        train = TrainConfig(epochs=c.epochs, lr=c.lr, weight_decay=c.weight_decay, warmup_ratio=0.0, grad_clip=None,
                            decay_norm_and_bias=True, progress=progress, seed=c.seed, device="cpu", amp="off")
        with torch_threads(1):  # tiny ops: one thread is faster, and robust to other processes on the cores
            self.train_result = train_model(self.network, batches, train)
        self.history_ = self.train_result.history
        self.train_seconds = self.train_result.seconds
        return self

    def training_loss(self, batch) -> torch.Tensor:
        return self.network.training_loss(batch)

    @torch.no_grad()
    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        row = pd.Series(np.arange(len(self.user_ids)), index=self.user_ids).reindex(histories.user_ids).to_numpy()
        known = ~np.isnan(row)
        net = self.network
        out = np.broadcast_to(net.item_bias.numpy().astype(float), (len(histories), len(self.item_ids))).copy()
        if known.any():
            users = torch.as_tensor(row[known].astype(np.int64))
            out[known] = (net.user_emb[users] @ net.item_emb.T + net.item_bias).numpy()
        return out

    def state(self) -> dict:
        return dict(self.network.state_dict())

    def save_extra(self, folder) -> None:
        import json

        (folder / "users.json").write_text(json.dumps([u.item() if hasattr(u, "item") else u for u in self.user_ids.tolist()]))

    def load_state(self, arrays, folder) -> None:
        import json

        self.user_ids = np.asarray(json.loads((folder / "users.json").read_text()))
        self.network = MFNetwork(len(self.user_ids), len(self.item_ids), self.config.dim)
        self.network.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})


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
