"""Compact checkpoints: sparse weights as a bit mask + non-zeros, int8 weights with per-row scales.

Taught in notebooks ``11_pruning`` and ``13_quantization``.

A pruned matrix saved densely is as large as before — zeros cost 4 bytes each. :func:`save_compact`
writes, for every 2-D weight:

- ``dense``   — as is (fp32/fp16/bf16/int8);
- ``sparse``  — a packed bit mask (1 bit per entry) + the non-zero values, when at least
  ``sparse_threshold`` of the entries are zero;
- ``int8``    — int8 values + one fp32 scale per row (symmetric), for names in ``int8``; combines with
  ``sparse`` (mask + int8 non-zeros).

Everything is one safetensors file (no pickle), with the layout in its metadata; :func:`load_compact`
returns an ordinary dense state dict (int8 entries dequantized).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from recbook.compress.quantize import QParams, choose_qparams, dequantize, quantize

FORMAT = "recbook-compact-1"


def save_compact(state_dict: dict[str, torch.Tensor], path: str | Path, int8=(), sparse_threshold: float = 0.3) -> int:
    """Write ``state_dict`` compactly to ``path`` (safetensors, written atomically); returns its size in bytes.

    ``int8``: names of float matrices to store as int8 with per-row scales (e.g. the Linear weights a
    dynamically quantized model runs in int8).
    """
    from safetensors.torch import save_file

    int8 = set(int8)
    unknown = int8 - set(state_dict)
    if unknown:
        raise KeyError(f"int8 names not in the state dict: {sorted(unknown)[:5]}")
    tensors, layout = {}, {}
    for name, t in state_dict.items():
        if not torch.is_tensor(t):
            raise TypeError(f"{name} is a {type(t).__name__}, not a tensor; pass a plain (float) state dict")
        t = t.detach().cpu().contiguous()
        kind = []
        values = t
        if t.ndim == 2 and t.is_floating_point() and (t == 0).float().mean() >= sparse_threshold:
            mask = t != 0
            tensors[f"{name}::mask"] = torch.from_numpy(np.packbits(mask.numpy().ravel()))
            values = t[mask]
            kind.append("sparse")
            row_of_value = mask.nonzero()[:, 0]
        if name in int8:
            if not t.is_floating_point() or t.ndim != 2:
                raise ValueError(f"{name}: only float matrices can be stored as int8, got {t.dtype} {tuple(t.shape)}")
            qp = choose_qparams(t.float(), per_channel=True, axis=0)
            scales = qp.scale.float()
            if "sparse" in kind:  # quantize the non-zeros with their row's scale
                values = torch.clamp(torch.round(values.float() / scales[row_of_value]), -128, 127).to(torch.int8)
            else:
                values = quantize(t.float(), qp)
            tensors[f"{name}::scale"] = scales
            kind.append("int8")
        tensors[f"{name}::values" if kind else name] = values.contiguous()
        layout[name] = {"kind": kind, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "layout": json.dumps(layout)})
    tmp.replace(path)
    return path.stat().st_size


def load_compact(path: str | Path) -> dict[str, torch.Tensor]:
    """The dense state dict stored by :func:`save_compact` (int8 entries dequantized to their saved dtype)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no compact checkpoint at {path}")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a recbook compact checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
        layout = json.loads(meta["layout"])
        raw = {k: fh.get_tensor(k) for k in fh.keys()}
    out = {}
    for name, info in layout.items():
        kind, shape, dtype = info["kind"], info["shape"], getattr(torch, info["dtype"])
        if not kind:
            out[name] = raw[name]
            continue
        values = raw[f"{name}::values"]
        if "sparse" in kind:
            bits = np.unpackbits(raw[f"{name}::mask"].numpy())[: int(np.prod(shape))]
            mask = torch.from_numpy(bits.astype(bool)).reshape(shape)
            dense = torch.zeros(shape, dtype=torch.float32)
            if "int8" in kind:
                rows = mask.nonzero()[:, 0]
                dense[mask] = values.float() * raw[f"{name}::scale"][rows]
            else:
                dense[mask] = values.float()
        else:
            scale = raw[f"{name}::scale"]
            dense = dequantize(values, QParams(scale, torch.zeros_like(scale, dtype=torch.int64), -128, 127, axis=0))
        out[name] = dense.to(dtype)
    return out


def linear_weight_names(model: torch.nn.Module, skip: tuple[str, ...] = ("head",)) -> list[str]:
    """State-dict names of every ``nn.Linear`` weight (the ones int8 kernels run), except under ``skip``."""
    return [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not name.startswith(skip)]


def file_size(path: str | Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
