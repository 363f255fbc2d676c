"""A content-keyed cache of trained models: one fit, reused by every notebook and command that asks for the same one.

A model is looked up by what determines it — the model's name, its *resolved* configuration (seed included), the data
(every interaction, every item text) and the split (its training, validation and test rows), and this cache's format —
hashed into a key. Ask twice for the same thing and the second call loads the saved model (safetensors, through
:meth:`recbook.models.base.Recommender.save_pretrained`); change anything that matters and the key changes, so a stale
model is never returned. Saves are atomic (a temporary folder renamed into place), and a damaged entry is retrained and
replaced, never trusted. The folder is ``$RECBOOK_CACHE/models`` (:func:`recbook.data.default_cache_dir`).

What it does not know: the library's own code. A change to how a model trains (not to its configuration) must bump
:data:`FORMAT`, or the cache be cleared (``rm -r $RECBOOK_CACHE/models``). Production systems keep the same idea in a
model registry (MLflow's, or a feature store's) keyed by data and code versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd

FORMAT = 1  # bump when a model's training recipe changes in a way its configuration does not show


def _frame_hash(h, frame: pd.DataFrame, columns) -> None:
    cols = [c for c in columns if c in frame.columns]
    h.update(",".join(cols).encode())
    h.update(pd.util.hash_pandas_object(frame[cols].astype(str), index=False).values.tobytes())


def data_fingerprint(dataset, split) -> str:
    """A hash of the data set (interactions, item ids and texts) and of the split's three parts."""
    h = hashlib.sha256(str(getattr(dataset, "name", "")).encode())
    _frame_hash(h, dataset.interactions, ("user_id", "item_id", "timestamp"))
    _frame_hash(h, dataset.items, ("item_id", "text"))
    for part in ("train", "valid", "test"):
        h.update(part.encode())
        _frame_hash(h, getattr(split, part), ("user_id", "item_id", "timestamp"))
    return h.hexdigest()


def model_key(name: str, config, dataset, split) -> str:
    """The cache key of model ``name`` with ``config`` (a dataclass or dict) fitted on ``dataset`` / ``split``."""
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    h = hashlib.sha256(f"{FORMAT}|{name}|{json.dumps(settings, sort_keys=True, default=str)}|".encode())
    h.update(data_fingerprint(dataset, split).encode())
    return f"{name}-{h.hexdigest()[:20]}"


def cached_fit(name: str, dataset, split, profile=None, cache_dir=None, progress: bool = False, reuse: bool = True, **overrides):
    """``(model, info)``: model ``name`` (:func:`recbook.models.create` with ``profile`` and ``overrides``) fitted on
    ``split`` — loaded from the cache when the same model was fitted on the same data before, else fitted now and saved.
    ``reuse=False`` always fits (a chapter that teaches the fit and reads its details) and stores the result for the
    notebooks after it.

    ``info`` says which (``"cache": "hit"`` or ``"trained now"``), the folder, and the training seconds the fit took
    when it was made (on a hit, the seconds it *saved*)."""
    from recbook.data import default_cache_dir
    from recbook.models import create
    from recbook.models.base import Recommender

    model = create(name, profile, **overrides)
    key = model_key(name, model.config, dataset, split)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "models"
    folder = root / key
    if reuse and (folder / "cache.json").is_file():
        try:
            loaded = Recommender.from_pretrained(folder)
            meta = json.loads((folder / "cache.json").read_text())
            return loaded, {"cache": "hit", "folder": str(folder), **meta}
        except Exception:  # a damaged entry is refitted and replaced, never trusted
            shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    model.fit(dataset, split, progress=progress)
    meta = {"model": name, "train_seconds": round(float(model.train_seconds), 1), "wall_seconds": round(time.perf_counter() - start, 1),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), "fit_id": uuid.uuid4().hex}  # fit_id: which fit this entry holds
    root.mkdir(parents=True, exist_ok=True)
    (folder / "cache.json").unlink(missing_ok=True)  # the entry is incomplete until the new one is written
    model.save_pretrained(folder)  # atomic: a temporary folder renamed into place
    tmp = folder / f".cache.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / "cache.json")  # written last: an entry without it is incomplete and refitted
    return model, {"cache": "trained now", "folder": str(folder), **meta}


def cached_run(data: str, name: str, profile, seed: int = 0, all_users: bool = False, cache_dir=None, progress: bool = False,
               **overrides) -> tuple[Path, dict]:
    """A ``recbook train``-style run folder (``checkpoint/`` with ``run.json``) of model ``name`` on data source ``data``
    (leave-last-out split), for the commands that take a run (``recbook bench --target request --model RUN``), built on
    :func:`cached_fit`: ``(run folder, info)``."""
    from recbook.runs.recipe import Fitted, prepare_data, run_record, save_fitted

    ds, split = prepare_data(data, profile, seed, "leave-last-out", 0.1, all_users)
    model, info = cached_fit(name, ds, split, profile, cache_dir=cache_dir, progress=progress, seed=seed, **overrides)
    entry = Path(info["folder"])
    run = entry.parent / "runs" / entry.name
    stored = run / "checkpoint" / "run.json"
    # the run holds the cached fit it was made from (its fit_id); a refit (reuse=False, a damaged entry) rebuilds it
    if not stored.is_file() or json.loads(stored.read_text()).get("cache_fit_id") != info.get("fit_id"):
        record = run_record(data, name, profile, seed, ds, split="leave-last-out", cold_fraction=0.1, all_users=all_users,
                            cache_fit_id=info.get("fit_id"))
        tmp = run.with_name(f"{run.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_fitted(Fitted(name, model, None, model.train_seconds), tmp / "checkpoint", record)
        shutil.rmtree(run, ignore_errors=True)
        tmp.replace(run)
    return run, info


__all__ = ["FORMAT", "cached_fit", "cached_run", "data_fingerprint", "model_key"]
