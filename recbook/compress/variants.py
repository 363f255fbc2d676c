"""Compressed variants of a BERT model — the fine-tuned cross-encoder, or the sentence encoder of
:mod:`recbook.compress.catalogue` — and the cached cross-encoder teacher.

:func:`make_variant` is used by notebooks ``11``–``14`` (on the catalogue encoder) and by ``python -m recbook bench``
(both targets); :func:`compression_setup` / :func:`load_or_train_teacher` by ``bench --target checkpoint``'s tests and
anyone compressing the cross-encoder.

:func:`load_or_train_teacher` fine-tunes the fp32 cross-encoder once and caches it as a ``recbook train``
checkpoint (``CrossEncoder.save`` + ``run.json``, written to a temporary folder and renamed, so an
interrupted run never leaves half a cache). :func:`make_variant` turns a model into a measurable
:class:`recbook.compress.bench.Variant` — the runtime model plus the file it ships as, written for real so the
size is measured, not computed.

Importing this module is light (standard library only): the command line reads :data:`VARIANT_KINDS` and
:func:`missing_packages` for ``bench``'s ``--help`` and argument checks; torch, pruning and quantization load
when a variant or a teacher is built.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# bump when the saved model layout or the training recipe changes (2: BERT's unused pooler no longer saved;
# 3: training negatives exclude only the user's training items, drawn per user — issue 9)
TEACHER_FORMAT = 4
VARIANT_KINDS = ("fp32", "bf16", "fp16", "int8", "torchao-int8", "onnx-fp32", "onnx-int8", "prune50-int8", "trim-int8")
# optional packages a variant kind needs beyond torch (pyproject's 'compress' extra)
VARIANT_REQUIRES = {"torchao-int8": ("torchao",), "onnx-fp32": ("onnx", "onnxruntime"), "onnx-int8": ("onnx", "onnxruntime")}


def _installed(module: str) -> bool:
    if module in sys.modules:  # imported already — or blocked (None), as a test does to simulate its absence
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(kinds) -> dict[str, list[str]]:
    """``{kind: [missing package, …]}`` for the variant kinds whose optional packages are not installed (empty when all are)."""
    missing = {}
    for kind in kinds:
        absent = [m for m in VARIANT_REQUIRES.get(kind, ()) if not _installed(m)]
        if absent:
            missing[kind] = absent
    return missing


@dataclass
class CompressionSetup:
    """Everything a compression experiment needs, built the same way in every notebook."""

    dataset: object
    split: object
    profile: object
    tokenizer: object
    teacher: object  # torch.nn.Module
    checkpoint: Path
    eval_set: object
    pairs: object  # recbook.compress.bench.PairSet
    data_source: str
    seed: int


def teacher_folder(data_source: str, profile, seed: int = 0, backbone: str | None = None, cache_dir=None) -> Path:
    """Where the cached teacher for these settings lives."""
    from recbook.data import default_cache_dir

    backbone_name = (backbone or "minilm").strip("/").replace("/", "_")
    name = f"v{TEACHER_FORMAT}-{data_source}-{profile.name}-steps{profile.bert_max_steps or 'all'}-seed{seed}-{backbone_name}"
    return Path(cache_dir or default_cache_dir()) / "teachers" / name


def load_or_train_teacher(data_source: str, profile, seed: int = 0, backbone: str | None = None, cache_dir=None,
                          progress: bool = True, data=None):
    """``(cross_encoder, folder, trained_now)``: the cached fine-tuned fp32 cross-encoder, trained if absent.

    ``data``: the ``(dataset, split)`` of ``data_source`` if the caller already built them.
    """
    from recbook.models.cross_encoder import CrossEncoderRecommender
    from recbook.runs.recipe import fit_recommender, prepare_data, run_record

    folder = teacher_folder(data_source, profile, seed, backbone, cache_dir)
    if (folder / "config.json").is_file():
        return CrossEncoderRecommender.from_pretrained(folder).network.eval(), folder, False
    dataset, split = data or prepare_data(data_source, profile, seed)
    fitted = fit_recommender("cross-encoder", dataset, split, profile, backbone, seed=seed, progress=progress)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        fitted.model.save_pretrained(tmp)
        run = run_record(data_source, "cross-encoder", profile, seed, dataset, backbone=backbone, train_seconds=round(fitted.train_seconds, 1))
        (tmp / "run.json").write_text(json.dumps(run, indent=1))
        if folder.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fitted.model.network.float().cpu().eval(), folder, True


def compression_setup(data_source: str | None = None, profile=None, seed: int = 0, eval_users: int | None = None,
                      backbone: str | None = None, cache_dir=None, progress: bool = True) -> CompressionSetup:
    """Data, split, teacher and the tokenized evaluation pairs (sampled protocol) for ``data_source``.

    ``data_source=None`` picks ``"synthetic"`` in the quick profile (a one-minute CPU fine-tune on MovieLens
    stays at chance — notebook 07 measures it) and ``"movielens-100k"`` in the full profile.
    """
    from recbook.compress.bench import make_pair_set
    from recbook.evaluation.protocol import make_eval_set
    from recbook.models.backbone import load_tokenizer
    from recbook.profile import get_profile
    from recbook.runs.recipe import prepare_data

    profile = profile or get_profile()
    data_source = data_source or ("synthetic" if profile.name == "quick" else "movielens-100k")
    dataset, split = prepare_data(data_source, profile, seed)
    teacher, folder, _ = load_or_train_teacher(data_source, profile, seed, backbone, cache_dir, progress, data=(dataset, split))
    tokenizer = load_tokenizer(folder / "encoder")
    eval_set = make_eval_set(dataset, split, "test", profile.eval_negatives, n_users=eval_users or profile.bert_eval_users, seed=seed)
    pairs = make_pair_set(eval_set, dataset, tokenizer, profile.max_length, profile.max_history_items)
    return CompressionSetup(dataset, split, profile, tokenizer, teacher, folder, eval_set, pairs, data_source, seed)


def catalogue_token_ids(dataset, tokenizer, items=None):
    """The token ids a (history, candidate) pair can contain — candidate texts, history entries, the separator — for
    ``items`` (default: the whole catalogue), plus special tokens: what :func:`trim_vocabulary` keeps. Pass the items
    known at training time: trimming on every item, new ones included, hides what the trimmed model does to a new item's
    unseen words (:func:`recbook.compress.quantize.unknown_token_rate`)."""
    import numpy as np

    from recbook.compress.quantize import used_token_ids
    from recbook.data import catalogue_texts

    if items is not None:
        items = np.asarray(items)
        if items.size == 0:
            raise ValueError("items is empty: trimming needs the texts of at least one item")
        missing = np.setdiff1d(items, dataset.items["item_id"].to_numpy())
        if missing.size:
            raise ValueError(f"items holds {missing.size} id(s) that are not in the items table of {dataset.name!r}, e.g. {missing[0]!r}")
    return used_token_ids(catalogue_texts(dataset, items=items), tokenizer)


def make_variant(kind: str, model, workdir: str | Path, name: str | None = None, dataset=None, tokenizer=None,
                 example: dict | None = None, vocabulary_items=None):
    """Build variant ``kind`` (one of :data:`VARIANT_KINDS`) of an fp32 BERT ``model`` and write its file.

    ``model(input_ids, attention_mask, token_type_ids)`` may return a cross-encoder's logits or a sentence
    encoder's embeddings (:class:`recbook.compress.catalogue.SentenceEncoder`); variants keep that call.

    - ``fp32`` / ``bf16`` / ``fp16``: the weights in that type (safetensors);
    - ``int8``: Linear layers dynamically quantized (torch.ao kernels) **and** the word embeddings int8;
      file = int8 matrices + per-row scales;
    - ``torchao-int8``: torchao's int8 dynamic quantization of the Linear layers (embeddings fp32);
    - ``onnx-fp32`` / ``onnx-int8``: an ONNX file run by ONNX Runtime (dynamic int8 for the latter);
    - ``prune50-int8``: 50% global magnitude pruning (Linear layers and embeddings), then ``int8``;
      file = bit mask + int8 non-zeros;
    - ``trim-int8``: vocabulary trimmed to the tokens of ``vocabulary_items``' texts (needs ``dataset`` and ``tokenizer``;
      default: every catalogue item — pass the items known at training time when new items are judged), then ``int8``.

    Returns a :class:`recbook.compress.bench.Variant`.
    """
    import torch

    from recbook.compress.bench import Variant
    from recbook.compress.prune import count_nonzero, magnitude_prune
    from recbook.compress.quantize import cast, dynamic_quantize, quantize_embeddings, trim_vocabulary
    from recbook.compress.storage import file_size, linear_weight_names, save_compact

    if kind not in VARIANT_KINDS:
        raise ValueError(f"unknown variant kind {kind!r}; choose one of {', '.join(VARIANT_KINDS)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = name or kind
    model = model.float().cpu().eval()
    params = sum(p.numel() for p in model.parameters())
    path = workdir / f"{name}.safetensors"
    notes = ""
    if kind in ("fp32", "bf16", "fp16"):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[kind]
        runtime = model if kind == "fp32" else cast(model, dtype)
        size = save_compact(_state(runtime), path, sparse_threshold=1.1)
        return Variant(name, runtime, size, params, count_nonzero(model)[0], notes)
    if kind == "torchao-int8":
        size = save_compact(_state(model), path, int8=linear_weight_names(model), sparse_threshold=1.1)
        return Variant(name, dynamic_quantize(model, "torchao"), size, params, params, "torchao Int8DynamicActivationInt8Weight, eager")
    if kind.startswith("onnx"):
        from recbook.compress.onnx import OrtCrossEncoder, export_onnx, quantize_onnx_dynamic

        fp32_path = export_onnx(model, workdir / f"{name}-fp32.onnx", example)
        path = fp32_path if kind == "onnx-fp32" else quantize_onnx_dynamic(fp32_path, workdir / f"{name}.onnx")
        return Variant(name, OrtCrossEncoder(path, threads=torch.get_num_threads()), file_size(path), params, params, "ONNX Runtime")
    # int8 variants: optional pruning / trimming first, then int8 Linear layers + int8 embeddings
    if kind == "prune50-int8":
        model = magnitude_prune(model, 0.5, scope="global", include_embeddings=True)
        notes = "50% global magnitude pruning"
    if kind == "trim-int8":
        if dataset is None or tokenizer is None:
            raise ValueError("trim-int8 needs dataset= and tokenizer= (the catalogue decides which tokens stay)")
        keep = catalogue_token_ids(dataset, tokenizer, vocabulary_items)
        model = trim_vocabulary(model, keep, tokenizer.unk_token_id)
        source = "the catalogue" if vocabulary_items is None else f"{len(set(vocabulary_items)):,} training-time items"
        notes = f"vocabulary {len(keep):,} of {tokenizer.vocab_size:,} tokens (from {source})"
    nonzero = count_nonzero(model)[0]
    params = sum(p.numel() for p in model.parameters())
    state = _state(model)
    int8_names = linear_weight_names(model) + [k for k in state if k.endswith("word_embeddings.weight") or k.endswith("word_embeddings.table.weight")]
    size = save_compact(state, path, int8=int8_names)
    runtime = dynamic_quantize(quantize_embeddings(model), "torch.ao")
    return Variant(name, runtime, size, params, nonzero, (notes + "; " if notes else "") + "int8 Linear (torch.ao) + int8 embeddings")


def _state(model) -> dict:
    import torch

    return {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}
