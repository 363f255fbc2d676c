"""The one contract every recommender of the course answers — what a new model implements, and all it implements.

Taught in notebook ``03_baselines`` (and used by every model after it). The shape follows scikit-learn (settings in a
config, ``fit`` returns ``self``, :meth:`Recommender.get_config`), RecBole (``calculate_loss`` / ``predict`` /
``full_sort_predict`` here are :meth:`training_loss` / :meth:`score` / :meth:`score_all`) and Hugging Face
(:meth:`save_pretrained` / :meth:`from_pretrained` with a ``config.json`` beside safetensors weights, never pickle).

A recommender is asked questions about **histories**, not user ids: a :class:`Histories` holds, for each user, the
item ids they interacted with (oldest first) and their user id (which only models that learn a vector per user, such as
matrix factorisation, look at). This is what a service receives with a request, so the same model scores a test user,
a brand-new user or a request without any wrapper.

- ``fit(dataset, split)`` learns from a split (what each model trains on, and how it uses the validation part, is
  in its docstring) and returns ``self``;
- ``score_all(histories)`` → ``(n_users, n_items)`` scores of every catalogue item (columns in :attr:`item_ids`);
- ``score(histories, items)`` → ``(n_users, m)`` scores of given candidates (item ids); the default reads them off
  :meth:`score_all`, models with an expensive ``score_all`` (a cross-encoder) override it;
- ``save_pretrained(folder)`` / ``Recommender.from_pretrained(folder)``: ``config.json`` (model name, config,
  catalogue) + ``model.safetensors`` + any files the model adds, written atomically.

Evaluation never asks which kind of model it has: :meth:`Recommender.scorer` turns any fitted model and a table of
visible interactions into the ``score(users, items)`` function :mod:`recbook.evaluation.protocol` ranks with, and
:attr:`Recommender.full_ranking` says whether scoring the whole catalogue per user is affordable.

Adding a model: one file in :mod:`recbook.models` with a config dataclass and a :class:`Recommender` subclass, and
one line in the registry (:data:`recbook.models.MODELS`) — the README shows a 30-line example.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from recbook.errors import ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


# ------------------------------------------------------------------ histories
@dataclass
class Histories:
    """What a recommender is asked about: each user's items, oldest first (item ids, not indices)."""

    user_ids: np.ndarray  # (n,)
    items: list  # n arrays of item ids, oldest first

    def __post_init__(self):
        self.user_ids = np.asarray(self.user_ids)
        if self.user_ids.ndim != 1 or len(self.user_ids) != len(self.items):
            raise ValueError(f"Histories needs one item list per user: {len(self.user_ids)} user ids, {len(self.items)} item lists")
        self.items = [np.asarray(h) for h in self.items]

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_items(cls, items: Sequence, user_ids=None) -> "Histories":
        """Histories of anonymous users (``user_ids`` default to -1: no learned user vector applies)."""
        items = [np.asarray(h) for h in items]
        return cls(np.full(len(items), -1) if user_ids is None else np.asarray(user_ids), items)

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, users=None) -> "Histories":
        """Each user's interactions in ``interactions`` (user_id, item_id, timestamp), oldest first; equal timestamps keep
        the table's order (a stable sort). ``users``: whose histories, in that order (a user without rows gets an empty one)."""
        missing = {"user_id", "item_id"} - set(interactions.columns)
        if missing:
            raise ValueError(f"interactions need columns user_id and item_id (and timestamp); missing {sorted(missing)}")
        df = interactions.sort_values(["user_id", "timestamp"], kind="stable") if "timestamp" in interactions.columns else interactions
        grouped = dict(tuple(df.groupby("user_id", sort=False)["item_id"]))
        users = np.asarray(list(grouped) if users is None else users)
        empty = np.asarray([], dtype=df["item_id"].dtype)
        return cls(users, [grouped[u].to_numpy() if u in grouped else empty for u in users.tolist()])

    def subset(self, rows) -> "Histories":
        rows = np.asarray(rows)
        return Histories(self.user_ids[rows], [self.items[i] for i in rows.tolist()])


# ------------------------------------------------------------------ the contract
@dataclass
class ModelConfig:
    """Base of every model's config dataclass: hyperparameters only (JSON-serialisable values)."""

    seed: int = 0

    @classmethod
    def from_profile(cls, profile, **overrides) -> "ModelConfig":
        """The config a course profile implies (sizes that grow from ``quick`` to ``full``); ``overrides`` win."""
        return build_config(cls, overrides)

    def replace(self, **changes) -> "ModelConfig":
        return replace(self, **changes)


def build_config(cls: type, config=None, **overrides):
    """``config`` (an instance of ``cls``, a dict, or None for the defaults) with ``overrides`` applied; a
    :class:`ConfigError` naming an unknown field."""
    known = {f.name for f in fields(cls)}
    if config is None:
        config = {}
    if isinstance(config, dict):
        config = {**config, **overrides}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(unknown[0], f"{cls.__name__} has no field {unknown[0]!r}; fields: {sorted(known)}")
        return cls(**config)
    if not isinstance(config, cls):
        raise ConfigError("config", f"expected a {cls.__name__} or a dict, got {type(config).__name__}")
    return replace(config, **overrides) if overrides else config


class Recommender:
    """A recommender of the course. Subclasses set :attr:`name` and :attr:`config_class` and implement
    :meth:`fit`, :meth:`score_all` (or :meth:`score`) and the two state hooks :meth:`state` / :meth:`load_state`."""

    model_type: ClassVar[str] = ""  # the registry name (python -m recbook train --model NAME), stored in config.json
    name: ClassVar[str] = ""  # how tables and plots label the model
    config_class: ClassVar[type] = ModelConfig
    full_ranking: ClassVar[bool] = True  # False: score_all costs one heavy pass per item (evaluate sampled only)
    # the registered model this one must beat to earn its cost (python -m recbook train fits it too and writes the
    # paired difference into metrics.json); None: nothing to compare with by default
    reference_model: ClassVar[str | None] = None

    def __init__(self, config=None, **overrides):
        self.config = build_config(self.config_class, config, **overrides)
        self.item_ids: np.ndarray | None = None
        self.train_result = None  # recbook.training.loop.TrainResult of trainable models
        self.train_seconds: float = 0.0

    # -- what a model implements ----------------------------------------------------
    def fit(self, dataset, split, progress: bool = False) -> "Recommender":  # pragma: no cover - abstract
        raise NotImplementedError

    def score_all(self, histories: Histories) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not score the whole catalogue; use score(histories, items)")

    def state(self) -> dict:
        """Arrays to save (numpy or torch tensors), written to ``model.safetensors``."""
        return {}

    def load_state(self, arrays: dict, folder: Path) -> None:
        """Rebuild the fitted model from :meth:`state`'s arrays (and any file the model wrote in ``folder``)."""

    def save_extra(self, folder: Path) -> None:
        """Write files beside the weights (e.g. a pretrained encoder's ``save_pretrained`` folder)."""

    def training_loss(self, batch) -> "object":
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient descent (it has no training_loss)")

    # -- shared ------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The hyperparameters, as ``config.json`` stores them."""
        return asdict(self.config)

    def check_fitted(self) -> None:
        if self.item_ids is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset, split) or from_pretrained(folder) first")

    @property
    def n_items(self) -> int:
        self.check_fitted()
        return len(self.item_ids)

    def item_columns(self, items) -> np.ndarray:
        """Column of each item id in :attr:`item_ids` (same shape); -1 for an item the model does not know."""
        self.check_fitted()
        if not hasattr(self, "_item_col") or len(self._item_col) != len(self.item_ids):
            self._item_col = pd.Series(np.arange(len(self.item_ids)), index=self.item_ids)
        items = np.asarray(items)
        cols = self._item_col.reindex(items.ravel()).to_numpy()
        return np.where(np.isnan(cols), -1, cols).astype(np.int64).reshape(items.shape)

    def score(self, histories: Histories, items) -> np.ndarray:
        """``(len(histories), m)`` scores of ``items`` (item ids, one row of ``m`` candidates per user). An item the model
        does not know scores below every item it knows (the row's minimum − 1), never an error."""
        items = np.asarray(items)
        if items.ndim != 2 or items.shape[0] != len(histories):
            raise ValueError(f"items must have shape (users, candidates) = ({len(histories)}, m), got {items.shape}")
        return gather_scores(self.score_all(histories), self.item_columns(items))

    def scorer(self, history: pd.DataFrame) -> "HistoryScorer":
        """The ``score(users, items)`` function :mod:`recbook.evaluation.protocol` calls, reading each user's items in ``history``."""
        return HistoryScorer(self, history)

    # -- files ---------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """``config.json`` + ``model.safetensors`` (+ the model's own files) into ``folder``, atomically: written into
        a sibling temporary folder, then renamed into place, so an interrupted save never leaves half a model."""
        from safetensors.numpy import save_file

        self.check_fitted()
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            arrays = {k: _to_numpy(v) for k, v in self.state().items()}
            save_file(arrays, str(tmp / WEIGHTS_FILE))
            self.save_extra(tmp)
            meta = {"model": self.model_type, "config": self.get_config(), "item_ids": _jsonable_ids(self.item_ids),
                    "train_seconds": round(float(self.train_seconds), 3)}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
            if folder.exists():
                keep = [p.name for p in folder.iterdir() if not (tmp / p.name).exists()]  # e.g. run.json beside the model
                for name in keep:
                    os.replace(folder / name, tmp / name)
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "Recommender":
        """A fitted model from a folder :meth:`save_pretrained` wrote. Called on :class:`Recommender` itself, the
        model's class is looked up in the registry from ``config.json``; on a subclass, the folder must hold that model."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = read_model_config(folder)
        if cls is Recommender:
            from recbook.models import model_class

            cls = model_class(meta["model"])
        elif meta["model"] != cls.model_type:
            raise ValueError(f"{folder} holds a {meta['model']!r} model, not {cls.model_type!r}")
        model = cls(meta["config"])
        model.item_ids = np.asarray(meta["item_ids"])
        model.train_seconds = float(meta.get("train_seconds", 0.0))
        model.load_state(load_file(str(folder / WEIGHTS_FILE)), folder)
        return model

    def __repr__(self) -> str:
        fitted = "unfitted" if self.item_ids is None else f"{len(self.item_ids)} items"
        return f"{type(self).__name__}({self.config}, {fitted})"


def read_model_config(folder: Path) -> dict:
    """The ``config.json`` of a saved model; a one-line error naming the folder when it is not one."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file() or not (Path(folder) / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no {CONFIG_FILE} + {WEIGHTS_FILE}; pass a folder written by save_pretrained")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); re-save the model") from None
    for key in ("model", "config", "item_ids"):
        if key not in meta:
            raise ValueError(f"{path} lacks the field {key!r}; re-save the model with save_pretrained")
    return meta


def gather_scores(full: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``full[r, cols[r, j]]``; a column of -1 (unknown item) gets the row's minimum − 1."""
    full = np.asarray(full, dtype=float)
    out = np.take_along_axis(full, np.maximum(cols, 0), axis=1)
    if (cols < 0).any():
        floor = (full.min(axis=1, initial=0.0) - 1.0)[:, None]
        out = np.where(cols < 0, floor, out)
    return out


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(value)


def _jsonable_ids(ids) -> list:
    return [i.item() if hasattr(i, "item") else i for i in np.asarray(ids).tolist()]


# ------------------------------------------------------------------ the one scorer
class HistoryScorer:
    """``score(users, items)`` of any fitted :class:`Recommender`: each user's history is read from ``history`` (the
    interactions visible at that point, e.g. training + validation for the test items).

    With a model whose :attr:`~Recommender.full_ranking` is true, a user's row of :meth:`Recommender.score_all` is
    computed once and reused for every later call (evaluation asks about the same users many times); otherwise only
    the asked candidates are scored.
    """

    def __init__(self, model: Recommender, history: pd.DataFrame):
        model.check_fitted()
        self.model = model
        self.history = history
        self._histories = Histories.from_interactions(history)
        self._row = dict(zip(self._histories.user_ids.tolist(), range(len(self._histories))))
        self._cache: dict = {}
        self.pairs_scored = 0  # (user, candidate) pairs sent to Recommender.score (models without affordable full ranking)

    def histories(self, users) -> Histories:
        """The :class:`Histories` of ``users`` (an empty history for a user without interactions)."""
        users = np.asarray(users)
        empty = np.asarray([], dtype=self.model.item_ids.dtype)
        return Histories(users, [self._histories.items[self._row[u]] if u in self._row else empty for u in users.tolist()])

    def full(self, users) -> np.ndarray:
        """``(len(users), n_items)`` rows of :meth:`Recommender.score_all`, cached per user."""
        users = np.asarray(users)
        new = [u for u in dict.fromkeys(users.tolist()) if u not in self._cache]
        if new:
            rows = np.asarray(self.model.score_all(self.histories(new)), dtype=float)
            if not np.isfinite(rows).all():
                raise FloatingPointError(f"{type(self.model).__name__} produced non-finite scores; check its inputs and weights")
            self._cache.update(zip(new, rows))
        return np.stack([self._cache[u] for u in users.tolist()]) if len(users) else np.zeros((0, self.model.n_items))

    def __call__(self, users, items) -> np.ndarray:
        users, items = np.asarray(users), np.asarray(items)
        if self.model.full_ranking:
            return gather_scores(self.full(users), self.model.item_columns(items))
        self.pairs_scored += int(items.size)
        return np.asarray(self.model.score(self.histories(users), items), dtype=float)


def history_matrix(model: Recommender, histories: Histories):
    """Binary ``(len(histories), n_items)`` CSR matrix of the items in each history (repeats count once; items the
    model does not know are left out) — the input of item-to-item models (item-kNN, EASE)."""
    import scipy.sparse as sp

    lengths = [len(h) for h in histories.items]
    cols = model.item_columns(np.concatenate(histories.items)) if sum(lengths) else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(histories)), lengths)
    keep = cols >= 0
    X = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(len(histories), model.n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X

