"""SASRec and BERT4Rec under the recommender contract: the network of :mod:`recbook.models.sequential`, fitted by
its recipe, asked about histories of item ids.

Taught in notebook ``04_sequential`` (and ``05_sequential_cold_start`` for ``item_features``).

``fit(dataset, split)`` trains on ``split.train`` and stops early on the validation items (full-ranking NDCG@10,
patience in epochs; ``time_budget`` is only a guard, and the fit records whether it fired). Both are trained with a
**full-softmax cross-entropy** over the catalogue (not the SASRec paper's one sampled negative with BCE). Items never
seen in training have no trained ID vector: with ``item_features="id"`` they score below every trained item
(:meth:`SASRec.score_all`), so an untrained item never outranks a trained one by scoring 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch

from recbook.errors import ConfigError
from recbook.models.base import Histories, ModelConfig, Recommender, build_config
from recbook.models.sequential import ITEM_FEATURES, SequentialConfig, SequentialRecommender


@dataclass
class SASRecConfig(ModelConfig):
    """The network (:class:`recbook.models.sequential.SequentialConfig`) and its training recipe."""

    item_features: str = "id"  # "id" | "text" | "hybrid"
    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.1
    id_dropout: float = 0.5
    mask_prob: float = 0.2
    history_dropout: float = 0.0
    text_loss: float = 0.0  # hybrid only: weight of the auxiliary text-only softmax (recbook.models.sequential)
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    epochs: int = 200  # at most; early stopping usually ends sooner
    patience: int | None = 6
    time_budget: float | None = None  # seconds: a guard, reported when it fires
    refit: bool = False  # after early stopping, train afresh on train + valid for the best number of epochs
    text_encoder: str | None = None  # the frozen encoder of item texts (text/hybrid); None = the offline MiniLM

    def __post_init__(self):
        if self.item_features not in ITEM_FEATURES:
            raise ConfigError("item_features", f"item_features must be one of {', '.join(ITEM_FEATURES)}, got {self.item_features!r}")
        try:
            self.network_config("causal")
        except ValueError as exc:
            raise ConfigError(str(exc).split()[0], str(exc)) from None
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError("time_budget", f"time_budget must be positive seconds (or None), got {self.time_budget}")

    @classmethod
    def from_profile(cls, profile, **overrides) -> "SASRecConfig":
        sizes = {"time_budget": profile.seq_time_budget, "dim": profile.seq_dim, "layers": profile.seq_layers,
                 "max_len": profile.seq_max_len}
        return build_config(cls, {**sizes, **overrides})

    def network_config(self, objective: str) -> SequentialConfig:
        names = {f.name for f in fields(SequentialConfig)}
        return SequentialConfig(objective=objective, **{k: v for k, v in asdict(self).items() if k in names and k != "objective"})


class SASRec(Recommender):
    """SASRec (Kang & McAuley 2018): a causal transformer over the history predicts the next item."""

    model_type = "sasrec"
    name = "SASRec"
    config_class = SASRecConfig
    objective = "causal"

    def fit(self, dataset, split, progress: bool = False) -> "SASRec":
        from recbook.models.sequential_fit import fit_sequential

        self.train_seconds = 0.0
        fit = self.select_fit(dataset, split, self.text_features(dataset, split, progress), progress)
        c, train = self.config, self.train_config(progress)
        self.network, self.item_ids = fit.model, np.asarray(dataset.item_ids)
        self.train_result, self.train_seconds = fit.result, self.train_seconds + fit.train_seconds
        if c.refit:
            # the same learning-rate schedule as the early-stopped run (its epoch count), left after the best number of epochs:
            # a schedule that decays to 0 over those few epochs would train a weaker model than the one it replaces
            self.best_epochs = best_epochs(fit.result)
            visible = visible_split(split)
            steps = self.best_epochs * refit_steps_per_epoch(dataset, visible, c, self.objective)
            self.refit_config = replace(train, patience=None, keep_best=False, stop_after=steps)
            again = fit_sequential(dataset, visible, c.network_config(self.objective), self.refit_config, batch_size=c.batch_size,
                                   text_features=None if c.item_features == "id" else fit.model.text_features[1:-1].cpu().numpy(),
                                   progress=progress, validate=False)
            self.network, self.refit_result = again.model, again.result
            self.train_seconds += again.train_seconds
        return self

    def train_config(self, progress: bool = False, config=None):
        """The training loop's settings from ``config`` (default: the model's; early stopping on validation NDCG@10)."""
        from recbook.models.sequential_fit import default_train_config

        c = config or self.config
        return default_train_config(seed=c.seed, progress=progress, lr=c.lr, weight_decay=c.weight_decay, epochs=c.epochs,
                                    patience=c.patience)

    def early_stopped_fit(self, dataset, split, text_features, progress: bool = False, config=None):
        """Train on ``split.train`` and stop early on validation (``config`` defaults to the model's own)."""
        from recbook.models.sequential_fit import fit_sequential

        c = config or self.config
        return fit_sequential(dataset, split, c.network_config(self.objective), self.train_config(progress, c), batch_size=c.batch_size,
                              model_name_or_path=c.text_encoder, text_features=text_features, max_seconds=c.time_budget,
                              progress=progress)

    def select_fit(self, dataset, split, text_features, progress: bool = False):
        """The early-stopped fit that :meth:`fit` keeps (and refits by). SASRec has one; a subclass may try several
        settings and keep the best on validation, adding the others' seconds to ``train_seconds``."""
        return self.early_stopped_fit(dataset, split, text_features, progress)

    def text_features(self, dataset, split, progress: bool = False):
        """The item text vectors of a text/hybrid model (None: :func:`fit_sequential` computes frozen ones)."""
        return None

    @classmethod
    def from_network(cls, network: SequentialRecommender, item_ids, **overrides) -> "SASRec":
        """Wrap a trained :class:`SequentialRecommender` (e.g. one a continual update produced)."""
        model = cls({k: v for k, v in asdict(network.config).items() if k in {f.name for f in fields(SASRecConfig)}}, **overrides)
        model.network, model.item_ids = network, np.asarray(item_ids)
        return model

    def indices(self, histories: Histories) -> list[np.ndarray]:
        """Each history as the network's 1-based item indices (items it does not know are left out)."""
        out = []
        for h in histories.items:
            cols = self.item_columns(h)
            out.append(cols[cols >= 0] + 1)
        return out

    @torch.no_grad()
    def score_all(self, histories: Histories) -> np.ndarray:
        self.check_fitted()
        scores = self.network.score_all(self.indices(histories)).astype(np.float64)
        if self.config.item_features == "id":  # no trained vector: below every trained item, never level with them at 0
            untrained = ~self.network.known_items[1 : self.network.n_items + 1].cpu().numpy()
            if untrained.any() and not untrained.all():
                scores[:, untrained] = scores[:, ~untrained].min(axis=1, keepdims=True) - 1.0
        return scores

    def training_loss(self, batch) -> torch.Tensor:
        return self.network.training_loss(batch)

    def state(self) -> dict:
        return dict(self.network.state_dict())

    def load_state(self, arrays, folder) -> None:
        state = {k: torch.from_numpy(v) for k, v in arrays.items()}
        text = state["text_features"][1:-1].numpy() if "text_features" in state else None
        n_items = len(self.item_ids)
        self.network = SequentialRecommender(n_items, self.config.network_config(self.objective), text_features=text,
                                             known_items=state["known_items"][1:-1].numpy())
        self.network.load_state_dict(state)
        self.network.eval()


def best_epochs(result) -> int:
    """How many whole epochs the early-stopped run had trained when its best validation was measured (at least 1)."""
    rows = [h for h in result.history if h.get("step") == result.best_step and "epoch" in h]
    return max(1, int(rows[-1]["epoch"])) if rows else max(1, int(max((h.get("epoch", 1) for h in result.history), default=1)))


def refit_steps_per_epoch(dataset, split, config, objective: str) -> int:
    """Optimizer steps in one epoch over ``split.train``'s training windows (what :func:`fit_sequential` builds)."""
    import math

    import pandas as pd

    from recbook.data.windows import training_windows, user_sequences

    item_col = pd.Series(np.arange(len(dataset.item_ids)), index=dataset.item_ids)
    windows = training_windows(user_sequences(split.train, item_col), config.max_len, objective)
    return math.ceil(len(windows["input"]) / config.batch_size)


def visible_split(split):
    """The split a refit trains on: training + validation interactions as its training part."""
    from recbook.data.splits import Split, history_for_test

    return Split(history_for_test(split), split.valid, split.test)


class BERT4Rec(SASRec):
    """BERT4Rec (Sun et al. 2019): a bidirectional transformer trained by the cloze task; at inference a [MASK]
    appended after the history is predicted."""

    model_type = "bert4rec"
    name = "BERT4Rec"
    objective = "cloze"
