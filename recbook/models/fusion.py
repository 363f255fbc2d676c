"""Score fusion: several recommenders over one catalogue, combined as a product of their next-item distributions.

Taught in notebook ``09_lm_recommender`` (lmrec fused with the ID-only SASRec, against two ID-only SASRecs fused
the same way — the control that separates "the language model adds something" from "two models beat one").

Each member's scores over the whole catalogue become log-probabilities (``log_softmax`` per user: both SASRec and
lmrec are trained with a full-softmax cross-entropy, so their scores are logits of that distribution), and the fused
score is their weighted sum — a product of experts, which needs no calibration between members. A request costs the
members' passes together (two small transformer passes for lmrec + SASRec).
"""

from __future__ import annotations

import numpy as np
import torch

from recbook.models.base import Histories, Recommender


class ScoreFusion(Recommender):
    """``Σ_i w_i · log_softmax(member_i.score_all(histories))`` over a shared catalogue.

    ``members`` are recommenders (fitted, or fitted by :meth:`fit`) that rank the whole catalogue; ``weights`` default
    to 1 each. Not saved as one checkpoint: save the members, and fuse them again after loading."""

    model_type = "fusion"
    name = "fusion"

    def __init__(self, members, weights=None, name: str | None = None):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"ScoreFusion needs at least two members, got {len(members)}")
        if not all(isinstance(m, Recommender) and m.full_ranking for m in members):
            raise ValueError("every member must be a Recommender that scores the whole catalogue (full_ranking)")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or not all(np.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            raise ValueError(f"weights must be one non-negative number per member, not all 0, got {weights}")
        self.members, self.weights = members, weights
        if name:
            self.name = name
        if all(m.item_ids is not None for m in members):
            self._check_catalogue()

    def _check_catalogue(self) -> None:
        first = np.asarray(self.members[0].item_ids)
        for m in self.members[1:]:
            if not np.array_equal(np.asarray(m.item_ids), first):
                raise ValueError(f"{m.name} ranks another catalogue than {self.members[0].name}: fuse models trained on one dataset")
        self.item_ids = first

    def fit(self, dataset, split, progress: bool = False) -> "ScoreFusion":
        """Fit every member that is not fitted yet, on the same data."""
        for m in self.members:
            if m.item_ids is None:
                m.fit(dataset, split, progress=progress)
        self.train_seconds = sum(m.train_seconds for m in self.members)
        self._check_catalogue()
        return self

    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        total = None
        for member, weight in zip(self.members, self.weights):
            if weight == 0:
                continue
            scores = torch.from_numpy(np.asarray(member.score_all(histories), dtype=np.float64))
            part = weight * torch.log_softmax(scores, dim=1).numpy()
            total = part if total is None else total + part
        return total

    def save_pretrained(self, folder):
        raise NotImplementedError("a ScoreFusion is not one checkpoint: save each member (member.save_pretrained) and fuse "
                                  "the loaded members again with ScoreFusion([...])")
