"""Popularity: every user gets the same list, the most-interacted items first — the floor every model must clear.

Taught in notebook ``03_baselines``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook.data.splits import history_for_test
from recbook.models.base import Histories, ModelConfig, Recommender


@dataclass
class PopularityConfig(ModelConfig):
    pass


class Popularity(Recommender):
    """Score = how many interactions the item has in what the model was fitted on (train + valid)."""

    model_type = "pop"
    name = "popularity"
    config_class = PopularityConfig

    def fit(self, dataset, split, progress: bool = False) -> "Popularity":
        return self.fit_interactions(history_for_test(split), dataset.item_ids)

    def fit_interactions(self, interactions: pd.DataFrame, item_ids) -> "Popularity":
        """Count ``interactions`` per item of ``item_ids`` (the catalogue; its order is the score columns')."""
        self.item_ids = np.asarray(item_ids)
        cols = self.item_columns(check_interactions(interactions)["item_id"].to_numpy())
        if (cols < 0).any():
            raise ValueError("interactions refer to item ids that are not in item_ids")
        self.counts = np.bincount(cols, minlength=len(self.item_ids)).astype(float)
        return self

    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        return np.broadcast_to(self.counts, (len(histories), len(self.counts))).copy()

    def state(self) -> dict:
        return {"counts": self.counts}

    def load_state(self, arrays, folder) -> None:
        self.counts = arrays["counts"]


def check_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """``interactions`` if it has user_id and item_id columns and at least one row; a clear ``ValueError`` otherwise."""
    missing = {"user_id", "item_id"} - set(interactions.columns)
    if missing:
        raise ValueError(f"interactions need columns user_id and item_id; missing {sorted(missing)}")
    if len(interactions) == 0:
        raise ValueError("interactions are empty: a recommender needs at least one interaction to fit")
    return interactions
