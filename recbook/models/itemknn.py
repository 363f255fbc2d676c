"""Item-kNN: items are similar when the same users picked both — collaborative filtering without training.

Taught in notebook ``03_baselines``.

Two items are similar when the same users interacted with both: cosine similarity of their user columns,
``sim(i, j) = c_ij / (sqrt(n_i · n_j) + shrink)``, keeping each item's ``neighbours`` most similar items. A user's
score for item ``i`` is the sum of ``sim(i, j)`` over the items ``j`` in their history — any history, so a user
never seen in training is scored from what the request says they did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook.data.splits import history_for_test
from recbook.errors import positive_int
from recbook.models.base import Histories, ModelConfig, Recommender, history_matrix
from recbook.models.popularity import check_interactions


@dataclass
class ItemKNNConfig(ModelConfig):
    neighbours: int = 100
    shrink: float = 10.0

    def __post_init__(self):
        positive_int(self.neighbours, "neighbours")
        if self.shrink < 0:
            from recbook.errors import ConfigError

            raise ConfigError("shrink", f"shrink must be >= 0, got {self.shrink}")


class ItemKNN(Recommender):
    model_type = "itemknn"
    name = "item-kNN"
    config_class = ItemKNNConfig

    def fit(self, dataset, split, progress: bool = False) -> "ItemKNN":
        return self.fit_interactions(history_for_test(split), dataset.item_ids)

    def fit_interactions(self, interactions: pd.DataFrame, item_ids) -> "ItemKNN":
        self.item_ids = np.asarray(item_ids)
        X = history_matrix(self, Histories.from_interactions(check_interactions(interactions)))
        n_items = len(self.item_ids)
        co = (X.T @ X).toarray()
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.config.shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        k = self.config.neighbours
        if k < n_items:
            cutoff = np.partition(sim, n_items - k, axis=0)[n_items - k]
            sim = np.where(sim >= cutoff[None, :], sim, 0.0)
        self.similarity = sim
        return self

    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        return np.asarray(history_matrix(self, histories) @ self.similarity)

    def state(self) -> dict:
        return {"similarity": self.similarity}

    def load_state(self, arrays, folder) -> None:
        self.similarity = arrays["similarity"]
