"""The training recipe of the sequential recommenders (notebooks ``04_sequential``, ``05_sequential_cold_start``):
:func:`fit_sequential` trains a :class:`~recbook.models.sequential.SequentialRecommender` with the course's loop on
training windows and stops early on full-ranking validation NDCG@10; :class:`SequentialFit` is what it returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from recbook.data.windows import WindowDataset, training_windows, user_sequences
from recbook.models.item_text import item_text_embeddings
from recbook.models.sequential import SequentialConfig, SequentialRecommender, SequentialScorer


@dataclass
class SequentialFit:
    model: SequentialRecommender
    scorer: SequentialScorer  # scores test items: history = train + valid
    result: object  # recbook.training.loop.TrainResult (history holds the validation curve)
    train_seconds: float
    windows: int
    text_seconds: float = 0.0
    curve: list = field(default_factory=list)  # one row per validation: epoch, step, NDCG@10, HR@10, seconds (wall-clock since
    # training began, validations included)


def default_train_config(**overrides):
    """The loop's settings for sequential models: AdamW lr 1e-3, batch 64 windows (set by fit_sequential), early stopping on
    validation NDCG@10 (full ranking) checked every epoch, patience 6 (stop at the 6th evaluation in a row without improvement),
    at most 200 epochs."""
    from recbook.training.loop import TrainConfig

    params = dict(epochs=200, lr=1e-3, weight_decay=0.01, warmup_ratio=0.0, grad_clip=1.0, amp="off", metric="NDCG@10",
                  patience=6, keep_best=True, log_every=20)
    params.update(overrides)
    return TrainConfig(**params)


def fit_sequential(dataset, split, config: SequentialConfig | None = None, train_config=None, batch_size: int = 64,
                   text_features=None, model_name_or_path=None, valid_users: int | None = None, max_seconds: float | None = None,
                   progress: bool = True, validate: bool = True) -> SequentialFit:
    """Train a sequential recommender on ``split.train`` with the course's loop; stop early on validation.

    Validation = each user's validation item ranked against the *whole* catalogue (full ranking, the
    user's training items excluded), NDCG@10, after every epoch; the best epoch's weights are kept.
    ``max_seconds`` also stops training at the first evaluation after that many seconds.
    The returned scorer scores test items with training + validation as the visible history. ``validate=False`` trains
    for ``train_config.epochs`` without validating (a refit on training + validation after early stopping chose them).
    """
    from recbook.evaluation.protocol import evaluate, history_for_test, make_eval_set
    from recbook.training.loop import train_model

    config = config or SequentialConfig()
    train_config = train_config or default_train_config(progress=progress)
    item_col = pd.Series(np.arange(dataset.n_items), index=dataset.item_ids)
    text_seconds = 0.0
    if config.item_features != "id" and text_features is None:
        start = time.perf_counter()
        text_features = item_text_embeddings(dataset, model_name_or_path, progress=progress)
        text_seconds = time.perf_counter() - start
    known = np.zeros(dataset.n_items, dtype=bool)
    known[item_col.reindex(split.train["item_id"].unique()).dropna().astype(int).to_numpy()] = True
    torch.manual_seed(train_config.seed)
    model = SequentialRecommender(dataset.n_items, config, text_features, known)
    windows = training_windows(user_sequences(split.train, item_col), config.max_len, config.objective)
    generator = torch.Generator().manual_seed(train_config.seed)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), batch_size=batch_size, shuffle=True, generator=generator)

    valid_set = make_eval_set(dataset, split, "valid", n_negatives=1, n_users=valid_users, seed=train_config.seed) if validate else None
    if max_seconds is not None:
        train_config = replace(train_config, time_budget=max_seconds)

    validate_each_epoch = validate
    finished_at = []  # wall-clock of each validation's end, for the curve (not in the loop's history: a resumed run's
    # history must equal an uninterrupted one's, and clocks never do)

    def validate(m):
        res = evaluate(SequentialScorer(m, dataset.item_ids, split.train), valid_set, "full", per_user=True)  # the vectorised path
        finished_at.append(time.perf_counter())
        return {"NDCG@10": res["NDCG@10"], "HR@10": res["HR@10"]}

    started = time.perf_counter()
    result = train_model(model, loader, train_config, validate if validate_each_epoch else None)
    model.eval()
    scorer = SequentialScorer(model, dataset.item_ids, history_for_test(split))
    curve = [{**h, "seconds": t - started} for h, t in zip([h for h in result.history if "NDCG@10" in h], finished_at, strict=True)]
    return SequentialFit(model, scorer, result, result.seconds, len(loader.dataset), text_seconds, curve)
