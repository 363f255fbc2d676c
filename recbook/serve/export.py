"""Writing a serving bundle (:mod:`recbook.serve.bundle` describes the format and loads it): from models in memory
(:func:`write_bundle`) or from training runs (:func:`export_bundle`, what ``python -m recbook export`` calls).

Apart from loading on purpose: export needs the training stack (the data pipeline, ONNX export and quantization),
a server loading a bundle must not.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from recbook.data.text import HISTORY_FIELD, history_token_budget
from recbook.serve.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    BundleError,
    _check_format,
    _files_under,
    bundle_key,
    manifest_signature,
    sha256_of,
)


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
        raise BundleError(f"{out} already exists; a bundle version is written once — choose a new folder (e.g. bundles/v2)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def write_bundle(out: str | os.PathLike, retriever, dataset, history, reranker=None, tokenizer=None, reranker_config: dict | None = None,
                 version: str | None = None, parent: str | None = None, source: dict | None = None,
                 drift: dict | None = None, user_encoder: dict | None = None, signing_key: str | bytes | None = None) -> Path:
    """Write a bundle to ``out`` (a new folder) from models in memory; return its path.

    ``retriever``: a :class:`recbook.models.sequential.SequentialRecommender` over ``dataset``'s catalogue (same order);
    ``history``: the interactions whose users the service knows by ``user_id`` (columns ``user_id``, ``item_id``,
    ``timestamp``); ``reranker`` (optional): a :class:`recbook.models.cross_encoder.CrossEncoder` with its
    ``tokenizer``, exported to ONNX and quantized to int8 here; ``reranker_config``: ``max_length``,
    ``max_history_items``, ``max_history_tokens``. ``version`` defaults to a UTC time stamp plus a content hash.
    ``drift`` (optional): drift measurements of the data this version learned from (:func:`recbook.continual.drift_export.drift_summary`),
    written as ``drift.json`` — listed in the manifest like every file — which the service exports as gauges.
    ``user_encoder`` (optional): the request path of a variant of :mod:`recbook.compress.request` — ``{"variant": name,
    "onnx": path of its ONNX user encoder, "window": items it reads, "table_bits": 32, 8 or 4}`` — stored as
    ``retriever/user_encoder.onnx`` (+ ``.json``) and, with fewer table bits, the item vectors as per-row codes and
    scales: the service then answers with that variant (:meth:`recbook.serve.bundle.Bundle.user_vectors`).
    ``signing_key`` (default ``$RECBOOK_BUNDLE_KEY``): the deploy key; when there is one, ``manifest.sig`` holds the
    manifest's HMAC-SHA256 and a service with the same key refuses any bundle whose signature does not match.
    """
    import torch

    from recbook.data.text import history_entries
    from recbook.runs.recipe import catalogue_fingerprint
    from recbook.serve.retrieval import _as_matrix

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
        encoder_info = _write_user_encoder(tmp / "retriever", retriever, user_encoder) if user_encoder is not None else None
        bits = encoder_info["table_bits"] if encoder_info else 32
        if bits < 32:
            from recbook.compress.request import quantize_table

            codes, scales = quantize_table(vectors, bits)
            save_file({"item_codes": codes, "item_scales": scales}, str(tmp / "item_vectors.safetensors"))
        else:
            save_file({"item_vectors": _as_matrix(vectors, "item vectors")}, str(tmp / "item_vectors.safetensors"))
        if drift is not None:
            from recbook.continual.drift_export import write_drift_json

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
                                  "item_features": retriever.config.item_features, "dim": retriever.config.dim,
                                  "trained_as": (source or {}).get("retriever_model"), "request_path": encoder_info},
                    "reranker": reranker_info, "source": source or {}, "files": files}
        manifest_bytes = json.dumps(manifest, indent=1).encode("utf-8")
        (tmp / MANIFEST).write_bytes(manifest_bytes)
        key = bundle_key(signing_key)
        if key is not None:  # signed with the deploy key: a service that has the key loads nothing else
            (tmp / SIGNATURE).write_text(manifest_signature(manifest_bytes, key) + "\n", encoding="ascii")
        if out.exists():  # an empty folder (checked above)
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_user_encoder(folder: Path, retriever, spec: dict) -> dict:
    """Copy a request variant's ONNX user encoder into the bundle's retriever folder, with what the service needs to run it."""
    missing = {"variant", "onnx", "table_bits"} - set(spec)
    if missing:
        raise BundleError(f"user_encoder needs {sorted(missing)}: pass {{'variant', 'onnx', 'window', 'table_bits'}}")
    if retriever.config.objective != "causal":
        raise BundleError("an ONNX user encoder is served for causal retrievers (sasrec, lmrec); a bert4rec retriever runs in PyTorch")
    if spec["table_bits"] not in (32, 8, 4):
        raise BundleError(f"user_encoder table_bits must be 32, 8 or 4, got {spec['table_bits']!r}")
    window = spec.get("window") or retriever.config.max_len
    if not isinstance(window, int) or not 1 <= window <= retriever.config.max_len:
        raise BundleError(f"user_encoder window must be 1…{retriever.config.max_len} (the retriever's max_len), got {window!r}")
    shutil.copyfile(spec["onnx"], folder / "user_encoder.onnx")
    info = {"variant": str(spec["variant"]), "window": window, "table_bits": int(spec["table_bits"])}
    (folder / "user_encoder.json").write_text(json.dumps(info, indent=1))
    return info


def _write_reranker(folder: Path, model, tokenizer, config: dict) -> dict:
    from recbook.compress.onnx import export_onnx, quantize_onnx_dynamic

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
                  version: str | None = None, parent: str | None = None, request_variant: str | None = None) -> Path:
    """Build a bundle from training runs (``python -m recbook train`` output folders) — what ``recbook export`` calls.

    The retriever run must hold a ``sasrec`` or ``bert4rec`` model; its data is rebuilt from ``run.json`` (same source,
    profile and seed) and the users' training + validation interactions become the stored histories (the test item
    stays unseen, so the service can be evaluated on it). The re-ranker run (optional) must hold a ``cross-encoder``
    trained on the same catalogue. ``request_variant`` (e.g. ``onnx-int8+table-int8``, ``mlp-student-int8-last10``;
    :mod:`recbook.compress.request`) makes the service answer with that compressed request path, built here (a student
    is distilled on the run's own training data first).
    """
    from recbook.errors import ConfigError
    from recbook.evaluation.protocol import history_for_test
    from recbook.models import SEQUENTIAL_MODELS
    from recbook.runs.recipe import checkpoint_folder, run_data

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
    _, ds, split = run_data(run)
    from recbook.models.base import Recommender

    model = Recommender.from_pretrained(folder).network
    reranker = tokenizer = config = None
    if rr_folder is not None:
        rr = Recommender.from_pretrained(rr_folder)
        reranker, tokenizer = rr.network.eval(), rr.tokenizer
        config = {"max_length": rr.config.max_length, "max_history_items": rr.config.max_history_items,
                  "max_history_tokens": history_token_budget(rr.config.max_length)}
    source = {"retriever_run": str(Path(retriever_run).resolve()), "retriever_model": run["model"], "data": run["data"], "seed": run["seed"],
              "reranker_run": str(Path(reranker_run).resolve()) if reranker_run is not None else None,
              "retriever_weights_sha256": sha256_of(folder / "model.safetensors")}  # which weights, not only which folder
    if request_variant is None:
        return write_bundle(out, model, ds, history_for_test(split), reranker, tokenizer, config, version, parent, source)
    import tempfile

    from recbook.compress.request import build_variants, distill_students
    from recbook.compress.request_variants import parse_variant

    try:
        encoder, window, bits = parse_variant(request_variant)
    except ValueError as exc:
        raise ConfigError("request_variant", str(exc), request_variant) from None
    if model.config.objective != "causal":
        raise ConfigError("request_variant", f"request_variant={request_variant!r}: an ONNX user encoder is served for causal "
                          f"retrievers (sasrec, lmrec); this run holds a {run['model']}", request_variant)
    if encoder == "fp32":
        raise ConfigError("request_variant", f"request_variant={request_variant!r} runs the encoder in PyTorch, as a bundle does "
                          "without one; name an ONNX or student encoder (e.g. onnx-int8+table-int8)", request_variant)
    with tempfile.TemporaryDirectory(prefix="recbook-export-") as work:
        students, _ = distill_students(model, ds, split, [request_variant], seed=run["seed"])
        variant = build_variants(model, [request_variant], work, 1, students)[0]
        spec = {"variant": request_variant, "onnx": variant.encode.path, "window": window, "table_bits": bits}
        source["request_variant"] = request_variant
        return write_bundle(out, model, ds, history_for_test(split), reranker, tokenizer, config, version, parent, source,
                            user_encoder=spec)
