"""Fit any of the course's recommenders on a leave-last-out split, by name — one place for the recipe.

Used by notebook ``04a_finetune_bert`` and by the command line (``python -m recbook train``).

``fit_recommender("cross-encoder", dataset, split, profile)`` returns a :class:`Fitted` with the
model, a ``scorer`` for :mod:`recbook.evaluate` (scoring the *test* items, with training +
validation as history), the training time and the loss history. Sizes come from the profile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .data import LengthBucketBatchSampler, PairCollator, RecDataset, Split, build_text_pairs, make_training_pairs, to_hf_dataset, tokenize_pairs
from .device import Profile, detect_device
from .evaluate import history_for_test
from .models.baselines import ItemKNN, MatrixFactorization, Popularity
from .train import TrainConfig, TrainResult, autocast_dtype, train_model

MODEL_NAMES = ("pop", "itemknn", "mf", "sasrec", "bert4rec", "cross-encoder", "two-tower")
BERT_MODELS = ("cross-encoder", "two-tower")
SEQUENTIAL_MODELS = {"sasrec": "causal", "bert4rec": "cloze"}  # name → training objective
HISTORY_FIELD = "title+genres"  # how each history item is written for BERT models


@dataclass
class Fitted:
    name: str
    model: object
    scorer: object
    train_seconds: float
    history: list = field(default_factory=list)
    train_result: TrainResult | None = None
    tokenizer: object = None


def bert_config(profile: Profile, seed: int = 0, progress: bool = True, device: str | None = None, **overrides) -> TrainConfig:
    """The fine-tuning configuration a profile implies (AdamW, warm-up 10%, clipping 1.0, AMP on GPU)."""
    params = dict(epochs=profile.epochs, max_steps=profile.bert_max_steps, lr=profile.learning_rate, weight_decay=0.01,
                  warmup_ratio=0.1, grad_clip=1.0, amp="auto", seed=seed, progress=progress, device=device, log_every=10)
    params.update(overrides)
    return TrainConfig(**params)


def _examples_needed(profile: Profile) -> int | None:
    """With a step budget, only ``steps × batch`` examples are ever trained on: prepare just those."""
    return None if profile.bert_max_steps is None else profile.bert_max_steps * profile.batch_size


def _subsample(frame: pd.DataFrame, n: int | None, seed: int, group_size: int = 1) -> pd.DataFrame:
    """A seeded random subset of ``n`` rows, keeping groups of ``group_size`` consecutive rows together."""
    if n is None or len(frame) <= n:
        return frame
    groups = len(frame) // group_size
    keep = np.sort(np.random.default_rng(seed).choice(groups, max(1, n // group_size), replace=False))
    rows = (keep[:, None] * group_size + np.arange(group_size)).ravel()
    return frame.iloc[rows].reset_index(drop=True)


def cross_encoder_examples(dataset: RecDataset, split: Split, tokenizer, profile: Profile, seed: int = 0, examples: int | None = -1):
    """Tokenized training pairs (1 positive + ``profile.n_negatives`` sampled negatives per interaction).

    ``examples``: how many to prepare (``-1`` = what the profile's step budget trains on, ``None`` = all);
    a seeded random subset, positives kept with their negatives.
    """
    pairs = make_training_pairs(split.train, dataset.item_ids, profile.n_negatives, seed=seed)  # negatives ∉ the user's training items
    pairs = _subsample(pairs, _examples_needed(profile) if examples == -1 else examples, seed, group_size=1 + profile.n_negatives)
    text = build_text_pairs(pairs, split.train, dataset, tokenizer, profile.max_history_items, profile.max_length - 32, HISTORY_FIELD)
    return tokenize_pairs(to_hf_dataset(text, ["label", "history_text", "item_text"]), tokenizer, profile.max_length)


def cross_encoder_loader(dataset: RecDataset, split: Split, tokenizer, profile: Profile, seed: int = 0) -> torch.utils.data.DataLoader:
    """Training pairs (1 positive + ``profile.n_negatives`` sampled) → text → tokens → length-bucketed batches.

    With a step budget (``profile.bert_max_steps``) only as many pairs as the budget trains on are
    written and tokenized — a random subset, positives kept with their negatives.
    """
    encoded = cross_encoder_examples(dataset, split, tokenizer, profile, seed)
    sampler = LengthBucketBatchSampler(encoded["length"], profile.batch_size, seed=seed)
    return torch.utils.data.DataLoader(encoded, batch_sampler=sampler, collate_fn=PairCollator(tokenizer))


def two_tower_loader(dataset: RecDataset, split: Split, tokenizer, profile: Profile, seed: int = 0) -> torch.utils.data.DataLoader:
    """Positive (history, item) pairs → tokens per tower → length-bucketed batches (in-batch negatives)."""
    from .models.two_tower import TwoTowerCollator, tokenize_two_tower

    pairs = _subsample(split.train[["user_id", "item_id", "timestamp"]], _examples_needed(profile), seed)
    text = build_text_pairs(pairs, split.train, dataset, tokenizer, profile.max_history_items, profile.max_length - 2, HISTORY_FIELD)
    examples = tokenize_two_tower(text, tokenizer, profile.max_length, 64)
    sampler = LengthBucketBatchSampler([e["length"] for e in examples], profile.batch_size, seed=seed)
    return torch.utils.data.DataLoader(examples, batch_sampler=sampler, collate_fn=TwoTowerCollator(tokenizer))


def fit_recommender(name: str, dataset: RecDataset, split: Split, profile: Profile, model_name_or_path=None, seed: int = 0,
                    progress: bool = True, device: str | None = None, evaluate_fn=None, peft: str | None = None,
                    item_features: str = "id", **config_overrides) -> Fitted:
    """Fit recommender ``name`` (one of :data:`MODEL_NAMES`) and return it with a test-time scorer.

    ``peft`` (``"lora"``, ``"prefix"``, ``"ia3"``) trains a BERT model through a PEFT adapter
    (:mod:`recbook.peft`) instead of fully; LoRA is merged into the weights after training.
    ``item_features`` (``"id"``, ``"text"``, ``"hybrid"``) applies to ``sasrec`` / ``bert4rec``
    (:mod:`recbook.models.sequential`), which train on ``split.train`` and stop early on validation
    within ``profile.seq_time_budget`` seconds; ``model_name_or_path`` is then the text encoder.
    """
    if peft is not None and name not in BERT_MODELS:
        raise ValueError(f"peft={peft!r} applies to BERT models ({', '.join(BERT_MODELS)}), not to {name!r}")
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if item_features != "id" and name not in SEQUENTIAL_MODELS:
        raise ValueError(f"item_features={item_features!r} applies to {', '.join(SEQUENTIAL_MODELS)}, not to {name!r}")
    history = history_for_test(split)
    start = time.perf_counter()
    if name in SEQUENTIAL_MODELS:
        from .models.sequential import SequentialConfig, default_train_config, fit_sequential

        config = SequentialConfig(objective=SEQUENTIAL_MODELS[name], item_features=item_features)
        fit = fit_sequential(dataset, split, config, default_train_config(seed=seed, progress=progress, device=device, **config_overrides),
                             model_name_or_path=model_name_or_path, max_seconds=profile.seq_time_budget, progress=progress)
        return Fitted(name, fit.model, fit.scorer, fit.train_seconds, fit.result.history, fit.result)
    if name in ("pop", "itemknn", "mf"):
        model = {"pop": Popularity, "itemknn": ItemKNN}.get(name, None)
        model = model() if model else MatrixFactorization(dim=32, epochs=profile.mf_epochs, weight_decay=1e-4, seed=seed)
        model.fit(history, dataset.item_ids)
        return Fitted(name, model, model.score, time.perf_counter() - start, getattr(model, "history_", []))

    from .models.backbone import load_backbone

    device = device or detect_device()
    encoder, tokenizer = load_backbone(model_name_or_path)
    config = bert_config(profile, seed, progress, device, **config_overrides)
    if name == "cross-encoder":
        from .models.cross_encoder import CrossEncoder

        loader = cross_encoder_loader(dataset, split, tokenizer, profile, seed)
        model = _maybe_peft(CrossEncoder(encoder), peft)
        result = train_model(model, loader, config, evaluate_fn)
        model = _maybe_merge(model, peft)
    else:
        from .models.two_tower import TwoTower

        loader = two_tower_loader(dataset, split, tokenizer, profile, seed)
        model = _maybe_peft(TwoTower(encoder), peft)
        result = train_model(model, loader, config, evaluate_fn)
        model = _maybe_merge(model, peft)
    scorer = bert_scorer(model, tokenizer, dataset, history, profile, device, config.amp)
    return Fitted(name, model, scorer, result.seconds, result.history, result, tokenizer)


def bert_scorer(model, tokenizer, dataset: RecDataset, history: pd.DataFrame, profile: Profile, device: str, amp: str = "auto"):
    """The test-time scorer of a cross-encoder or two-tower model (sizes from the profile, AMP as in training)."""
    from .models.cross_encoder import CrossEncoder, CrossEncoderScorer
    from .models.two_tower import TwoTowerScorer

    cls = CrossEncoderScorer if isinstance(model, CrossEncoder) else TwoTowerScorer
    return cls(model, tokenizer, dataset, history, profile.max_length, profile.max_history_items,
               device=device, amp_dtype=autocast_dtype(amp, device))


def _maybe_peft(model, peft: str | None):
    if peft is None:
        return model
    from .peft import apply_peft

    return apply_peft(model, peft)


def _maybe_merge(model, peft: str | None):
    if peft == "lora":
        from .peft import merge_lora

        return merge_lora(model)
    return model
