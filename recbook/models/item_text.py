"""Frozen sentence vectors of a catalogue's item texts, computed once per (encoder, texts) and cached on disk.

Taught in notebook ``05_sequential_cold_start``: a ``text``/``hybrid`` sequential model reads these vectors (through a
learned projection), so every item with a text has a representation — brand-new ones included.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _text_cache_key(model_id: str, max_length: int, texts: list[str]) -> str:
    h = hashlib.sha256(f"{model_id}|{max_length}|".encode())
    for t in texts:
        h.update(t.encode("utf-8") + b"\x00")
    return h.hexdigest()[:24]


def _model_identity(path: str) -> str:
    """A name for the model that changes when its weights do: the folder name + a hash of its config and weight files
    (their contents: a model fine-tuned in place gets a new cache key)."""
    folder = Path(path)
    if not folder.is_dir():
        return path  # a Hub id
    h = hashlib.sha256((folder / "config.json").read_bytes() if (folder / "config.json").is_file() else b"")
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return f"{folder.name}-{h.hexdigest()[:12]}"


def encode_texts(texts: list[str], encoder, tokenizer, max_length: int = 64, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Sentence embeddings: the encoder's token vectors, mean-pooled over real tokens, L2-normalised
    (the all-MiniLM-L6-v2 recipe). ``encoder`` may be any module returning ``last_hidden_state``."""
    from recbook.models.cross_encoder import mean_pool

    encoder.eval()
    if not texts:
        raise ValueError("encode_texts got no texts")

    def sentence(input_ids, attention_mask, token_type_ids=None):
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(mean_pool(hidden.float(), attention_mask), dim=-1)

    return embed_texts(sentence, tokenizer, texts, max_length, batch_size, progress)


def tokenize_texts(texts, tokenizer, max_length: int = 64) -> dict[str, torch.Tensor]:
    """One padded batch of ``texts`` (``input_ids``, ``attention_mask``, ``token_type_ids``)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    if "token_type_ids" not in enc:
        enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.inference_mode()
def embed_texts(model, tokenizer, texts, max_length: int = 64, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """``(len(texts), dim)`` float32 embeddings from ``model(input_ids, attention_mask, token_type_ids)`` — e.g. a
    :class:`recbook.compress.catalogue.SentenceEncoder`, a compressed copy of one, or an ONNX Runtime session with the
    same call (:class:`recbook.compress.onnx.OrtCrossEncoder`). Texts are sorted by length first (less padding);
    rows come back in the order given."""
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("embed_texts got no texts")
    if hasattr(model, "eval"):
        model.eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    chunks = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="embed item texts")
    for start in chunks:
        idx = order[start : start + batch_size]
        batch = tokenize_texts([texts[i] for i in idx], tokenizer, max_length)
        vectors = torch.as_tensor(model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])).float()
        if vectors.ndim != 2:
            raise ValueError(f"the encoder must return (batch, dim) embeddings, got shape {tuple(vectors.shape)}")
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors.numpy()
    return out


def item_text_embeddings(dataset, model_name_or_path=None, cache_dir: str | os.PathLike | None = None, max_length: int = 64,
                         batch_size: int = 128, progress: bool = True) -> np.ndarray:
    """Frozen sentence embeddings of every catalogue item's text, rows in ``dataset.item_ids`` order.

    Computed once per (model, texts) and cached as safetensors under ``cache_dir`` (default:
    ``recbook.data.default_cache_dir() / "item_embeddings"``), keyed by the model's identity and a
    hash of the texts, and written atomically (a temporary file renamed into place) so an interrupted
    run never leaves a half-written cache.
    """
    from safetensors.numpy import load_file, save_file

    from recbook.data import default_cache_dir
    from recbook.models.backbone import load_backbone, resolve_model_path

    texts = dataset.items.set_index("item_id").loc[dataset.item_ids, "text"].astype(str).tolist()
    target = resolve_model_path(model_name_or_path)
    key = _text_cache_key(_model_identity(target), max_length, texts)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "item_embeddings"
    path = folder / f"{key}.safetensors"
    if path.is_file():
        try:
            cached = load_file(str(path))["embeddings"]
            if cached.shape[0] == len(texts):
                return cached
        except Exception:  # a corrupt cache file is recomputed, never trusted
            pass
    encoder, tokenizer = load_backbone(target)
    vectors = encode_texts(texts, encoder, tokenizer, max_length, batch_size, progress)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    save_file({"embeddings": vectors}, str(tmp), metadata={"model": _model_identity(target), "items": str(len(texts))})
    os.replace(tmp, path)
    return vectors


# --------------------------------------------------------------------- sequences
