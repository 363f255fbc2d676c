"""EASE: a closed-form linear item-to-item model (Steck, WWW 2019) — a strong MovieLens baseline with one knob.

Taught in notebook ``03_baselines``.

EASE learns an item × item weight matrix ``B`` that rebuilds each user's row of the interaction matrix ``X`` from the
*other* items of that row: ``min ‖X − XB‖² + λ‖B‖²`` with ``diag(B) = 0`` (an item may not explain itself). The
solution is closed-form: with ``P = (XᵀX + λI)⁻¹``, ``B = −P / diag(P)`` column-wise and ``diag(B) = 0``. A user's
scores are ``x_user · B``. ``l2`` (λ) is its only hyperparameter: choose it on validation
(:func:`recbook.models.tuning.tune`). One ``n_items × n_items`` inverse: fine for tens of thousands of items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook.data.splits import history_for_test
from recbook.errors import ConfigError
from recbook.models.base import Histories, ModelConfig, Recommender, history_matrix
from recbook.models.popularity import check_interactions


@dataclass
class EASEConfig(ModelConfig):
    l2: float = 500.0

    def __post_init__(self):
        if not self.l2 > 0:
            raise ConfigError("l2", f"l2 must be > 0 (the ridge penalty λ), got {self.l2}")


class EASE(Recommender):
    model_type = "ease"
    name = "EASE"
    config_class = EASEConfig

    def fit(self, dataset, split, progress: bool = False) -> "EASE":
        return self.fit_interactions(history_for_test(split), dataset.item_ids)

    def fit_interactions(self, interactions: pd.DataFrame, item_ids) -> "EASE":
        self.item_ids = np.asarray(item_ids)
        X = history_matrix(self, Histories.from_interactions(check_interactions(interactions)))
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.l2
        P = np.linalg.inv(gram)
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        self.weights = B.astype(np.float32)
        return self

    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        return np.asarray(history_matrix(self, histories) @ self.weights, dtype=np.float64)

    def state(self) -> dict:
        return {"weights": self.weights}

    def load_state(self, arrays, folder) -> None:
        self.weights = arrays["weights"]
