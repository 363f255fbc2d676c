"""The serving bundle: one versioned, verifiable folder holding everything the service needs.

Taught in notebook ``17_serving``. A training run's folder is made for experiments; a service needs something
stricter — a **bundle**, written once, never edited, named by a version:

.. code-block:: text

    manifest.json                 format, version, parent version, creation time, data fingerprint,
                                  and the sha256 + size of every other file
    manifest.sig                  (with a deploy key) the HMAC-SHA256 of manifest.json's bytes
    items.json                    catalogue: item ids, titles, texts, how each is written in a history
    histories.safetensors         users' histories (user ids, offsets, catalogue rows, oldest first)
    item_vectors.safetensors      the retriever's item matrix, computed once (retrieval = one matrix product)
    retriever/model.safetensors   the sequential model (SASRec/BERT4Rec) that turns a history into a vector
    retriever/sequential.json     its configuration
    retriever/user_encoder.onnx   (optional) a compressed request path (recbook.compress.request): the ONNX encoder the
    retriever/user_encoder.json   service runs instead of the PyTorch one, the items it reads, the item table's bits
    reranker/model.int8.onnx      (optional) the cross-encoder, ONNX Runtime dynamic int8
    reranker/reranker.json        how it writes its input (max length, history budget)
    reranker/tokenizer/…          its tokenizer (JSON and vocabulary text)

Three rules make it safe to load on a server:

1. **Verify before loading, and load what was verified.** :func:`load_bundle` hashes every file and compares it with
   the manifest before it opens a single one; a missing, changed or unlisted file is refused with its name
   (:class:`BundleError`). It reads each file once, hashes those bytes and loads from a private copy of them, so a
   file swapped after the check is never read.
2. **No executable formats.** Only safetensors, ONNX, JSON and plain text are ever read. A pickle
   (``.pt``, ``.bin``, ``.pkl``) can run arbitrary code when loaded, so a bundle holding one is refused even
   before hashing.
3. **Signed by the deploy key.** With ``RECBOOK_BUNDLE_KEY`` set, ``export`` and ``update`` write ``manifest.sig`` and
   the service loads only bundles whose signature matches: write access to the models volume is not enough to serve.

Writes (:mod:`recbook.serve.export`, kept apart: it needs the training stack, loading must not) are atomic: the bundle is written to a temporary folder beside the target and renamed into place, so a
crash never leaves a half-written version that looks complete.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT_NAME = "recbook-serving-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"  # hex HMAC-SHA256 of manifest.json's bytes under the deploy key (RECBOOK_BUNDLE_KEY)
BUNDLE_KEY_ENV = "RECBOOK_BUNDLE_KEY"
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


def bundle_key(key: str | bytes | None = None) -> bytes | None:
    """The deploy key bundles are signed with: ``key``, else ``$RECBOOK_BUNDLE_KEY``, else ``None`` (unsigned). An empty
    key is an error, not "unsigned": a Secret whose value went missing must not switch the check off silently."""
    source = f"${BUNDLE_KEY_ENV}" if key is None else "the signing key"
    key = os.environ.get(BUNDLE_KEY_ENV) if key is None else key
    if key is None:
        return None
    if not key:
        raise BundleError(f"{source} is set but empty; give the deploy key (e.g. openssl rand -hex 32), or unset it to serve "
                          "unsigned bundles")
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def manifest_signature(manifest_bytes: bytes, key: str | bytes) -> str:
    """Hex HMAC-SHA256 of a manifest's bytes: what ``manifest.sig`` holds. The manifest lists every file's sha256, so
    the signature covers every byte of the bundle."""
    return hmac.new(bundle_key(key), manifest_bytes, hashlib.sha256).hexdigest()


def read_manifest(folder: str | os.PathLike, key: str | bytes | None = None) -> dict:
    """The manifest of the bundle in ``folder``, its format checked (not yet the files). With a deploy key (``key`` or
    ``$RECBOOK_BUNDLE_KEY``) its signature is checked too: a bundle without ``manifest.sig``, or whose signature does
    not match the manifest's bytes, is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"bundle {folder}: no such folder; pass a folder written by 'python -m recbook export'")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {folder}: no {MANIFEST}; pass a folder written by 'python -m recbook export'")
    raw = path.read_bytes()
    secret = bundle_key(key)
    if secret is not None:
        sig_path = folder / SIGNATURE
        if not sig_path.is_file():
            raise BundleError(f"bundle {folder}: no {SIGNATURE}, and this service only loads bundles signed with its deploy key "
                              f"(${BUNDLE_KEY_ENV}); export it with that key set")
        given = sig_path.read_bytes().strip()
        if not hmac.compare_digest(given, manifest_signature(raw, secret).encode("ascii")):
            raise BundleError(f"bundle {folder}: {SIGNATURE} does not match {MANIFEST} under this service's deploy key — the manifest "
                              "was changed after signing, or it was signed with another key; re-export it with the deploy key")
    try:
        manifest = json.loads(raw.decode("utf-8"))
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


def verify_bundle(folder: str | os.PathLike, into: str | os.PathLike | None = None, key: str | bytes | None = None) -> dict:
    """Check a bundle without loading it; return its manifest. :class:`BundleError` names the first problem:

    a file listed but missing, a file present but not listed, a file in a format the service must not read
    (pickle and friends), a path escaping the folder, a file whose size or sha256 differs from the manifest, or (with
    a deploy key: ``key`` or ``$RECBOOK_BUNDLE_KEY``) a manifest whose signature does not match.

    ``into``: a private folder that receives a copy of every file, written from the very bytes that were hashed —
    load from there, and a file swapped in the bundle between the check and the load is never read (the
    check-then-use gap).
    """
    folder = Path(folder)
    manifest = read_manifest(folder, key)
    listed = manifest["files"]
    for rel in listed:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
            raise BundleError(f"bundle {folder}: {MANIFEST} lists {rel!r}, a path outside the bundle; re-export the bundle")
        _check_format(rel, folder)
    present = [rel for rel in _files_under(folder) if rel not in (MANIFEST, SIGNATURE)]
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
        if into is None:
            digest = sha256_of(path)
        else:
            data = path.read_bytes()  # read once: these bytes are hashed and these bytes are loaded
            digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise BundleError(f"bundle {folder}: {rel} does not match its sha256 in {MANIFEST} — the file was changed after export "
                              "(tampered or corrupted); copy the bundle again or re-export it")
        if into is not None:
            target = Path(into) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return manifest


# ------------------------------------------------------------------ writing


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
    live_drift: object = None  # a recbook.serve.live_drift.LiveDrift against this version's histories (set by the service)
    user_encoder: object = None  # a recbook.compress.request.OrtUserEncoder when the bundle ships a compressed request path
    encoder_info: dict = field(default_factory=dict)  # its user_encoder.json: variant, window, table_bits
    lookup: np.ndarray | None = None  # the item vectors with a zero padding row first (and one after): what it looks up

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
        """The retriever's query vector for each history (catalogue rows, oldest first): the bundle's ONNX user encoder
        over the last ``window`` items when it ships one, else the PyTorch retriever."""
        if self.user_encoder is not None:
            from recbook.compress.request_bench import padded

            seq = padded([np.asarray(h, dtype=np.int64) + 1 for h in histories], self.encoder_info["window"])
            return np.asarray(self.user_encoder(seq, self.lookup[seq]), dtype=np.float32)
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
        from recbook.data.text import HISTORY_SEPARATOR, _most_recent_within_budget

        rows = np.asarray([r for r in history.tolist() if r != candidate], dtype=np.int64)
        chosen = _most_recent_within_budget(rows, self.entry_costs, self.reranker_config["max_history_items"],
                                            self.reranker_config["max_history_tokens"])
        return HISTORY_SEPARATOR.join(self.entries[j] for j in chosen)

    def rerank_many(self, requests: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Cross-encoder logits for several ``(history rows, candidate rows)`` requests in ONE batched ONNX Runtime pass."""
        from recbook.data import PairCollator, encode_pairs
        from recbook.models.cross_encoder import predict_pairs

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
    """Verify (every sha256, and the signature where a deploy key is set, before anything is opened) and load a bundle
    from a private copy of the verified bytes; :class:`BundleError` names any problem."""
    folder = Path(folder)
    # private (0700): the verified copy everything loads from, in $TMPDIR (the pod's emptyDir in deploy/k8s), removed below
    staged = Path(tempfile.mkdtemp(prefix="recbook-bundle-"))
    try:
        manifest = verify_bundle(folder, into=staged)  # nothing below runs on an unverified file
        return _load_verified(folder, staged, manifest, threads)
    except BundleError as exc:  # messages name the bundle, never the private copy
        raise BundleError(str(exc).replace(str(staged), str(folder))) from None
    except (OSError, ValueError, KeyError) as exc:  # e.g. a re-ranker, tokenizer or drift.json that verifies but does not load
        raise BundleError(f"bundle {folder}: its files verify but do not load ({type(exc).__name__}: "
                          f"{str(exc).replace(str(staged), str(folder))}); re-export it") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # every model is in memory by now


def _load_verified(origin: Path, folder: Path, manifest: dict, threads: int | None) -> Bundle:
    from safetensors.numpy import load_file

    from recbook.models.sequential import SequentialRecommender
    from recbook.serve.retrieval import ExactIndex

    try:
        items = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        item_ids = np.asarray(items["item_ids"], dtype=np.int64)
        arrays = load_file(str(folder / "histories.safetensors"))
        offsets, rows = arrays["offsets"], arrays["items"]
        histories = {int(u): rows[offsets[i]:offsets[i + 1]] for i, u in enumerate(arrays["user_ids"].tolist())}
        retriever, retriever_items = SequentialRecommender.load(folder / "retriever")
        stored = load_file(str(folder / "item_vectors.safetensors"))
        if "item_codes" in stored:  # a quantized table (per-row scales): what a compressed request path scores with
            vectors = (stored["item_codes"].astype(np.float32) * stored["item_scales"]).astype(np.float32)
        else:
            vectors = stored["item_vectors"]
    except (KeyError, OSError, ValueError) as exc:
        raise BundleError(f"bundle {origin}: its files verify but do not load ({type(exc).__name__}: {exc}); re-export it") from None
    if len(retriever_items) != len(item_ids) or (np.asarray(retriever_items, dtype=np.int64) != item_ids).any():
        raise BundleError(f"bundle {origin}: retriever/sequential.json has another catalogue than items.json; re-export it")
    if vectors.shape[0] != len(item_ids):
        raise BundleError(f"bundle {origin}: item_vectors.safetensors has {vectors.shape[0]} rows for {len(item_ids)} items; re-export it")
    bundle = Bundle(origin, manifest, item_ids, items["titles"], items["texts"], items["history_entries"], retriever.eval(), vectors,
                    ExactIndex(vectors), histories, item_row={int(i): r for r, i in enumerate(item_ids.tolist())})
    if (folder / "retriever" / "user_encoder.onnx").is_file():
        from recbook.compress.request import OrtUserEncoder

        try:
            info = json.loads((folder / "retriever" / "user_encoder.json").read_text())
            window = info["window"]
            if not isinstance(window, int) or not 1 <= window <= retriever.config.max_len:
                raise ValueError(f"window {window!r} is not 1…{retriever.config.max_len}")
            encoder = OrtUserEncoder(folder / "retriever" / "user_encoder.onnx", threads=threads or 1)
        except Exception as exc:  # noqa: BLE001 - any failure here means the bundle cannot serve its request path
            raise BundleError(f"bundle {origin}: retriever/user_encoder.onnx + .json verify but do not load ({type(exc).__name__}: "
                              f"{exc}); re-export it") from None
        bundle.encoder_info, bundle.user_encoder = info, encoder
        dim = vectors.shape[1]
        bundle.lookup = np.vstack([np.zeros((1, dim), np.float32), vectors, np.zeros((1, dim), np.float32)])  # row 0: padding
    if (folder / "reranker").is_dir():
        from transformers import AutoTokenizer

        from recbook.compress.onnx import OrtCrossEncoder
        from recbook.data.text import HISTORY_SEPARATOR

        bundle.reranker_config = json.loads((folder / "reranker" / "reranker.json").read_text())
        bundle.tokenizer = AutoTokenizer.from_pretrained(str(folder / "reranker" / "tokenizer"))
        bundle.reranker = OrtCrossEncoder(folder / "reranker" / "model.int8.onnx", threads=threads)
        sep_cost = len(bundle.tokenizer(HISTORY_SEPARATOR.strip(), add_special_tokens=False)["input_ids"])
        bundle.entry_costs = np.array([len(ids) for ids in bundle.tokenizer(bundle.entries, add_special_tokens=False)["input_ids"]]) + sep_cost
    from recbook.continual.drift_export import read_drift_json

    bundle.drift = read_drift_json(folder)  # checked here: a malformed drift.json fails the load, before any swap
    return bundle
