"""The serving bundle: one versioned, verifiable folder holding everything the service needs.

Taught in notebook ``12_serving``. A training run's folder is made for experiments; a service needs something
stricter — a **bundle**, written once, never edited, named by a version:

.. code-block:: text

    manifest.json                 format, version, parent version, creation time, data fingerprint,
                                  and the sha256 + size of every other file
    items.json                    catalogue: item ids, titles, texts, how each is written in a history
    histories.safetensors         users' histories (user ids, offsets, catalogue rows, oldest first)
    item_vectors.safetensors      the retriever's item matrix, computed once (retrieval = one matrix product)
    retriever/model.safetensors   the sequential model (SASRec/BERT4Rec) that turns a history into a vector
    retriever/sequential.json     its configuration
    reranker/model.int8.onnx      (optional) the cross-encoder, ONNX Runtime dynamic int8
    reranker/reranker.json        how it writes its input (max length, history budget)
    reranker/tokenizer/…          its tokenizer (JSON and vocabulary text)

Two rules make it safe to load on a server:

1. **Verify before loading.** :func:`load_bundle` hashes every file and compares it with the manifest before it
   opens a single one; a missing, changed or unlisted file is refused with its name (:class:`BundleError`).
2. **No executable formats.** Only safetensors, ONNX, JSON and plain text are ever read. A pickle
   (``.pt``, ``.bin``, ``.pkl``) can run arbitrary code when loaded, so a bundle holding one is refused even
   before hashing.

Writes are atomic: the bundle is written to a temporary folder beside the target and renamed into place, so a
crash never leaves a half-written version that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.text import HISTORY_FIELD, history_token_budget

FORMAT_NAME = "recbook-serving-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ALLOWED_SUFFIXES = (".json", ".safetensors", ".onnx", ".txt")  # data-only formats: nothing here runs code when read
EXECUTABLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz", ".py", ".so", ".h5")


class BundleError(ValueError):
    """A bundle that cannot be served: the message names the file and how to fix it."""


# ------------------------------------------------------------------ hashing and verification
def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks (``hashlib.file_digest``)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _files_under(folder: Path) -> list[str]:
    """Every entry under ``folder`` as a POSIX relative path; symbolic links are refused (they could point anywhere)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise BundleError(f"bundle {folder}: {rel} is a symbolic link; bundles hold plain files only (re-export it)")
        if path.is_file():
            out.append(rel)
    return out


def _check_format(rel: str, folder: Path) -> None:
    suffix = Path(rel).suffix.lower()
    if suffix in EXECUTABLE_SUFFIXES:
        raise BundleError(f"bundle {folder}: {rel} is in an executable format ({suffix}: pickle-like files can run code when loaded); "
                          "the service reads only safetensors, ONNX, JSON and text — remove the file or re-export the bundle")
    if suffix not in ALLOWED_SUFFIXES:
        raise BundleError(f"bundle {folder}: {rel} has a format the service does not read ({suffix or 'no suffix'}); allowed: "
                          f"{', '.join(ALLOWED_SUFFIXES)} — remove the file or re-export the bundle")


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of the bundle in ``folder``, its format checked (not yet the files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"bundle {folder}: no such folder; pass a folder written by 'python -m recbook export'")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {folder}: no {MANIFEST}; pass a folder written by 'python -m recbook export'")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {folder}: {MANIFEST} is not valid JSON ({exc}); re-export the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"bundle {folder}: {MANIFEST} is not a {FORMAT_NAME} manifest; pass a folder written by 'python -m recbook export'")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"bundle {folder}: format_version {manifest.get('format_version')!r}; this recbook reads version {FORMAT_VERSION} "
                          "— re-export the bundle with this version of recbook")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"bundle {folder}: {MANIFEST} lists no files; re-export the bundle")
    return manifest


def verify_bundle(folder: str | os.PathLike) -> dict:
    """Check a bundle without loading it; return its manifest. :class:`BundleError` names the first problem:

    a file listed but missing, a file present but not listed, a file in a format the service must not read
    (pickle and friends), a path escaping the folder, or a file whose size or sha256 differs from the manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = manifest["files"]
    for rel in listed:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
            raise BundleError(f"bundle {folder}: {MANIFEST} lists {rel!r}, a path outside the bundle; re-export the bundle")
        _check_format(rel, folder)
    present = [rel for rel in _files_under(folder) if rel != MANIFEST]
    for rel in present:
        _check_format(rel, folder)
    extra = sorted(set(present) - set(listed))
    if extra:
        raise BundleError(f"bundle {folder}: {extra[0]} is not listed in {MANIFEST} (a bundle is written once; a file added later is "
                          "refused) — remove it or re-export the bundle")
    missing = sorted(set(listed) - set(present))
    if missing:
        raise BundleError(f"bundle {folder}: {missing[0]} is listed in {MANIFEST} but missing; copy the whole bundle folder again")
    for rel in sorted(listed):
        entry = listed[rel]
        path = folder / rel
        if not isinstance(entry, dict) or "sha256" not in entry:
            raise BundleError(f"bundle {folder}: {MANIFEST} has no sha256 for {rel}; re-export the bundle")
        if "bytes" in entry and path.stat().st_size != entry["bytes"]:
            raise BundleError(f"bundle {folder}: {rel} has {path.stat().st_size} bytes, the manifest says {entry['bytes']} — the file was "
                              "changed or truncated after export; copy the bundle again or re-export it")
        if sha256_of(path) != entry["sha256"]:
            raise BundleError(f"bundle {folder}: {rel} does not match its sha256 in {MANIFEST} — the file was changed after export "
                              "(tampered or corrupted); copy the bundle again or re-export it")
    return manifest


# ------------------------------------------------------------------ writing
def _histories_arrays(history, item_row: dict) -> dict[str, np.ndarray]:
    """Users' catalogue rows, oldest first (stable on equal timestamps), as three flat arrays."""
    frame = history.sort_values(["user_id", "timestamp"], kind="stable") if "timestamp" in history.columns else history.sort_values(
        "user_id", kind="stable")
    users = frame["user_id"].to_numpy()
    rows = np.array([item_row.get(i, -1) for i in frame["item_id"].tolist()], dtype=np.int64)
    if (rows < 0).any():
        bad = frame["item_id"].to_numpy()[rows < 0][0]
        raise BundleError(f"the history refers to item_id {bad}, which is not in the catalogue being exported")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, dtype=np.int64)
    offsets = np.r_[starts, len(users)].astype(np.int64)
    return {"user_ids": users[starts].astype(np.int64), "offsets": offsets, "items": rows}


def _atomic_folder(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"--out {out}: already exists; a bundle version is written once — choose a new folder (e.g. bundles/v2)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def write_bundle(out: str | os.PathLike, retriever, dataset, history, reranker=None, tokenizer=None, reranker_config: dict | None = None,
                 version: str | None = None, parent: str | None = None, source: dict | None = None,
                 drift: dict | None = None) -> Path:
    """Write a bundle to ``out`` (a new folder) from models in memory; return its path.

    ``retriever``: a :class:`recbook.models.sequential.SequentialRecommender` over ``dataset``'s catalogue (same order);
    ``history``: the interactions whose users the service knows by ``user_id`` (columns ``user_id``, ``item_id``,
    ``timestamp``); ``reranker`` (optional): a :class:`recbook.models.cross_encoder.CrossEncoder` with its
    ``tokenizer``, exported to ONNX and quantized to int8 here; ``reranker_config``: ``max_length``,
    ``max_history_items``, ``max_history_tokens``. ``version`` defaults to a UTC time stamp plus a content hash.
    ``drift`` (optional): drift measurements of the data this version learned from (:func:`recbook.drift.drift_summary`),
    written as ``drift.json`` — listed in the manifest like every file — which the service exports as gauges.
    """
    import torch

    from ..data.text import history_entries
    from ..pipeline import catalogue_fingerprint
    from .retrieval import _as_matrix

    out = Path(out)
    if (reranker is None) != (tokenizer is None):
        raise BundleError("a re-ranker needs its tokenizer (and a tokenizer needs a re-ranker)")
    item_ids = [int(i) for i in dataset.item_ids]
    if retriever.n_items != len(item_ids):
        raise BundleError(f"the retriever scores {retriever.n_items} items, the catalogue has {len(item_ids)}; export the retriever "
                          "trained on this data")
    tmp = _atomic_folder(out)
    try:
        from safetensors.numpy import save_file

        item_row = {i: r for r, i in enumerate(item_ids)}
        items = {"item_ids": item_ids, "titles": dataset.items["title"].astype(str).tolist(),
                 "texts": dataset.items["text"].astype(str).tolist(), "history_entries": history_entries(dataset, HISTORY_FIELD)}
        (tmp / "items.json").write_text(json.dumps(items, ensure_ascii=False))
        save_file(_histories_arrays(history, item_row), str(tmp / "histories.safetensors"))
        retriever.save(tmp / "retriever", item_ids)
        with torch.no_grad():
            vectors = retriever.eval().item_table()[1 : retriever.n_items + 1].float().cpu().numpy()
        save_file({"item_vectors": _as_matrix(vectors, "item vectors")}, str(tmp / "item_vectors.safetensors"))
        if drift is not None:
            from ..drift import write_drift_json

            write_drift_json(tmp, drift)
        reranker_info = None
        if reranker is not None:
            reranker_info = _write_reranker(tmp / "reranker", reranker, tokenizer, reranker_config or {})
        files = {}
        for rel in _files_under(tmp):
            _check_format(rel, tmp)
            files[rel] = {"sha256": sha256_of(tmp / rel), "bytes": (tmp / rel).stat().st_size}
        content = hashlib.sha256("".join(f"{k}{v['sha256']}" for k, v in sorted(files.items())).encode()).hexdigest()
        now = _dt.datetime.now(_dt.timezone.utc)
        fingerprint = {**catalogue_fingerprint(dataset), "users": int(history["user_id"].nunique()), "interactions": int(len(history)),
                       "histories_sha256": files["histories.safetensors"]["sha256"]}
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                    "version": version or f"{now:%Y%m%d-%H%M%S}-{content[:8]}", "parent": parent,
                    "created": now.isoformat(timespec="seconds"), "data": {"name": dataset.name, **fingerprint},
                    "retriever": {"model": "sasrec" if retriever.config.objective == "causal" else "bert4rec",
                                  "item_features": retriever.config.item_features, "dim": retriever.config.dim},
                    "reranker": reranker_info, "source": source or {}, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out.exists():  # an empty folder (checked above)
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_reranker(folder: Path, model, tokenizer, config: dict) -> dict:
    from ..compress.onnx import export_onnx, quantize_onnx_dynamic

    folder.mkdir(parents=True)
    fp32 = folder.parent / ".reranker.fp32.onnx.tmp"
    try:
        export_onnx(model, fp32)
        quantize_onnx_dynamic(fp32, folder / "model.int8.onnx")
    finally:
        for leftover in fp32.parent.glob(".reranker.fp32*"):
            leftover.unlink()
    tokenizer.save_pretrained(folder / "tokenizer")
    for path in (folder / "tokenizer").iterdir():  # e.g. a chat template: not read by the service, not shipped
        if path.suffix not in (".json", ".txt"):
            path.unlink()
    max_length = int(config.get("max_length", 128))
    info = {"format": "onnx-int8-dynamic", "max_length": max_length, "max_history_items": int(config.get("max_history_items", 10)),
            "max_history_tokens": int(config.get("max_history_tokens", history_token_budget(max_length))), "history_field": HISTORY_FIELD}
    (folder / "reranker.json").write_text(json.dumps(info, indent=1))
    return info


def export_bundle(retriever_run: str | os.PathLike, out: str | os.PathLike, reranker_run: str | os.PathLike | None = None,
                  version: str | None = None, parent: str | None = None) -> Path:
    """Build a bundle from training runs (``python -m recbook train`` output folders) — what ``recbook export`` calls.

    The retriever run must hold a ``sasrec`` or ``bert4rec`` model; its data is rebuilt from ``run.json`` (same source,
    profile and seed) and the users' training + validation interactions become the stored histories (the test item
    stays unseen, so the service can be evaluated on it). The re-ranker run (optional) must hold a ``cross-encoder``
    trained on the same catalogue.
    """
    from ..errors import ConfigError
    from ..evaluate import history_for_test
    from ..models import SEQUENTIAL_MODELS
    from ..pipeline import check_catalogue, checkpoint_folder, prepare_data, run_profile

    folder, run = checkpoint_folder(retriever_run)
    if run.get("model") not in SEQUENTIAL_MODELS:
        raise ConfigError("retriever", f"retriever={str(retriever_run)!r} holds a {run.get('model')} model; the retriever must be "
                          f"{' or '.join(SEQUENTIAL_MODELS)} (python -m recbook train --model sasrec)", str(retriever_run))
    rr_folder = rr_run = None
    if reranker_run is not None:
        rr_folder, rr_run = checkpoint_folder(reranker_run)
        if rr_run.get("model") != "cross-encoder":
            raise ConfigError("reranker", f"reranker={str(reranker_run)!r} holds a {rr_run.get('model')} model; the re-ranker must be a "
                              "cross-encoder (python -m recbook train --model cross-encoder)", str(reranker_run))
        if rr_run.get("catalogue") != run.get("catalogue"):
            raise ConfigError("reranker", f"reranker={str(reranker_run)!r} was trained on another catalogue than the retriever "
                              f"{str(retriever_run)!r}; train both on the same data", str(reranker_run))
    profile = run_profile(run)
    ds, split = prepare_data(run["data"], profile, run["seed"], run.get("split", "leave-last-out"), run.get("cold_fraction", 0.1),
                             run.get("all_users", False))
    check_catalogue(run, ds, run["data"])
    split = split.warm() if run.get("split") == "cold-items" else split
    from ..models.base import Recommender

    model = Recommender.from_pretrained(folder).network
    reranker = tokenizer = config = None
    if rr_folder is not None:
        rr = Recommender.from_pretrained(rr_folder)
        reranker, tokenizer = rr.network.eval(), rr.tokenizer
        config = {"max_length": rr.config.max_length, "max_history_items": rr.config.max_history_items,
                  "max_history_tokens": history_token_budget(rr.config.max_length)}
    source = {"retriever_run": str(Path(retriever_run).resolve()), "retriever_model": run["model"], "data": run["data"], "seed": run["seed"],
              "reranker_run": str(Path(reranker_run).resolve()) if reranker_run is not None else None}
    return write_bundle(out, model, ds, history_for_test(split), reranker, tokenizer, config, version, parent, source)


# ------------------------------------------------------------------ loading and serving
@dataclass
class Bundle:
    """A verified, loaded bundle: the models and tables one version of the service answers with.

    Thread-safe for inference (nothing but the locked ``vector_cache`` changes after loading), so requests in flight
    can keep using an old ``Bundle`` while a new one is swapped in.
    """

    folder: Path
    manifest: dict
    item_ids: np.ndarray
    titles: list[str]
    texts: list[str]
    entries: list[str]
    retriever: object
    item_vectors: np.ndarray
    index: object
    histories: dict
    reranker: object = None
    tokenizer: object = None
    reranker_config: dict = field(default_factory=dict)
    entry_costs: np.ndarray | None = None
    item_row: dict = field(default_factory=dict)
    vector_cache: OrderedDict = field(default_factory=OrderedDict)  # user id → query vector (filled by the service)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)
    drift: dict | None = None  # drift.json (recbook update's measurement of the data this version learned), if present

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def rows_of(self, item_ids, field_name: str = "history") -> np.ndarray:
        """Catalogue rows of item ids; ``KeyError``-like :class:`UnknownItems` naming the field and positions."""
        rows = [self.item_row.get(i, -1) if isinstance(i, (int, np.integer)) and not isinstance(i, bool) else -1 for i in item_ids]
        bad = [(pos, item_ids[pos]) for pos, r in enumerate(rows) if r < 0]
        if bad:
            raise UnknownItems(field_name, bad)
        return np.asarray(rows, dtype=np.int64)

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """The retriever's query vector for each history (catalogue rows, oldest first)."""
        import torch

        with torch.inference_mode():
            vectors = self.retriever.user_vectors([np.asarray(h, dtype=np.int64) + 1 for h in histories])
        return vectors.float().cpu().numpy()

    def retrieve(self, history: np.ndarray, n: int, exclude_seen: bool = True, vector: np.ndarray | None = None):
        """``(scores, rows)`` of the top ``n`` items for one history (padding rows dropped)."""
        query = self.user_vectors([history]) if vector is None else vector[None]
        scores, rows = self.index.search(query, n, exclude=[history] if exclude_seen else None)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def history_text(self, history: np.ndarray, candidate: int) -> str:
        """How the re-ranker reads a history: most recent first within the item and token budgets, never the candidate."""
        from ..data.text import HISTORY_SEPARATOR, _most_recent_within_budget

        rows = np.asarray([r for r in history.tolist() if r != candidate], dtype=np.int64)
        chosen = _most_recent_within_budget(rows, self.entry_costs, self.reranker_config["max_history_items"],
                                            self.reranker_config["max_history_tokens"])
        return HISTORY_SEPARATOR.join(self.entries[j] for j in chosen)

    def rerank_many(self, requests: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Cross-encoder logits for several ``(history rows, candidate rows)`` requests in ONE batched ONNX Runtime pass."""
        from ..data import PairCollator, encode_pairs
        from ..models.cross_encoder import predict_pairs

        if self.reranker is None:
            raise BundleError(f"bundle {self.folder} has no re-ranker; export it with --reranker")
        histories, items, sizes = [], [], []
        for history, candidates in requests:
            for c in candidates.tolist():
                histories.append(self.history_text(history, c))
                items.append(self.texts[c])
            sizes.append(len(candidates))
        if not items:
            return [np.zeros(0, dtype=np.float32) for _ in requests]
        encoded = encode_pairs(histories, items, self.tokenizer, self.reranker_config["max_length"])
        scores = predict_pairs(self.reranker, encoded, PairCollator(self.tokenizer), batch_size=256)
        return np.split(scores.astype(np.float32), np.cumsum(sizes)[:-1])

    def explain(self, history: np.ndarray, row: int) -> tuple[float, np.ndarray]:
        """Leave-one-out attribution: ``(score, drops)`` where ``drops[j]`` = score − score without history item ``j``.

        A large positive drop means the item pushed the recommendation up; negative, that it held it back. One
        batched pass over ``len(history) + 1`` sequences.
        """
        sequences = [history] + [np.delete(history, j) for j in range(len(history))]
        scores = self.user_vectors(sequences) @ self.item_vectors[row]
        return float(scores[0]), (scores[0] - scores[1:]).astype(np.float64)

    def warm_up(self) -> None:
        """Run every path once (first calls allocate, compile kernels and fill caches), so the first user is not slow."""
        history = next(iter(self.histories.values()), np.zeros(0, dtype=np.int64))[-20:]
        _, rows = self.retrieve(history, min(20, self.n_items))
        if self.reranker is not None and len(rows):
            self.rerank_many([(history, rows[: min(4, len(rows))])])
        if len(history) and len(rows):
            self.explain(history[-5:], int(rows[0]))


class UnknownItems(ValueError):
    """Item ids a request names that are not in the bundle's catalogue: ``field`` and ``(position, id)`` pairs."""

    def __init__(self, field_name: str, bad: list):
        self.field, self.bad = field_name, bad
        shown = ", ".join(f"{field_name}[{p}]={i!r}" for p, i in bad[:5])
        super().__init__(f"unknown item id(s) {shown}{' …' if len(bad) > 5 else ''}: not in the model's catalogue")


def load_bundle(folder: str | os.PathLike, threads: int | None = None) -> Bundle:
    """Verify (every sha256, before anything is opened) and load a bundle; :class:`BundleError` names any problem."""
    from safetensors.numpy import load_file

    from ..models.sequential import SequentialRecommender
    from .retrieval import ExactIndex

    folder = Path(folder)
    manifest = verify_bundle(folder)  # nothing below runs on an unverified file
    try:
        items = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        item_ids = np.asarray(items["item_ids"], dtype=np.int64)
        arrays = load_file(str(folder / "histories.safetensors"))
        offsets, rows = arrays["offsets"], arrays["items"]
        histories = {int(u): rows[offsets[i]:offsets[i + 1]] for i, u in enumerate(arrays["user_ids"].tolist())}
        retriever, retriever_items = SequentialRecommender.load(folder / "retriever")
        vectors = load_file(str(folder / "item_vectors.safetensors"))["item_vectors"]
    except (KeyError, OSError, ValueError) as exc:
        raise BundleError(f"bundle {folder}: its files verify but do not load ({type(exc).__name__}: {exc}); re-export it") from None
    if len(retriever_items) != len(item_ids) or (np.asarray(retriever_items, dtype=np.int64) != item_ids).any():
        raise BundleError(f"bundle {folder}: retriever/sequential.json has another catalogue than items.json; re-export it")
    if vectors.shape[0] != len(item_ids):
        raise BundleError(f"bundle {folder}: item_vectors.safetensors has {vectors.shape[0]} rows for {len(item_ids)} items; re-export it")
    bundle = Bundle(folder, manifest, item_ids, items["titles"], items["texts"], items["history_entries"], retriever.eval(), vectors,
                    ExactIndex(vectors), histories, item_row={int(i): r for r, i in enumerate(item_ids.tolist())})
    if (folder / "reranker").is_dir():
        from transformers import AutoTokenizer

        from ..compress.onnx import OrtCrossEncoder
        from ..data.text import HISTORY_SEPARATOR

        bundle.reranker_config = json.loads((folder / "reranker" / "reranker.json").read_text())
        bundle.tokenizer = AutoTokenizer.from_pretrained(str(folder / "reranker" / "tokenizer"))
        bundle.reranker = OrtCrossEncoder(folder / "reranker" / "model.int8.onnx", threads=threads)
        sep_cost = len(bundle.tokenizer(HISTORY_SEPARATOR.strip(), add_special_tokens=False)["input_ids"])
        bundle.entry_costs = np.array([len(ids) for ids in bundle.tokenizer(bundle.entries, add_special_tokens=False)["input_ids"]]) + sep_cost
    from ..drift import read_drift_json

    bundle.drift = read_drift_json(folder)  # checked here: a malformed drift.json fails the load, before any swap
    return bundle
