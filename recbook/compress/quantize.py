"""Quantization: the fixed-point arithmetic by hand, then the maintained tools that do it for a model.

Taught in notebook ``13_quantization``.

A real number ``x`` is stored as a small integer ``q`` with a **scale** ``s`` and a **zero point** ``z``::

    q = clamp(round(x / s) + z, qmin, qmax)        x ≈ s · (q − z)

- *asymmetric* (affine): ``s = (max − min) / (qmax − qmin)``, ``z`` chosen so that 0.0 is exact;
- *symmetric*: ``z = 0`` and ``s = max|x| / ((qmax − qmin) / 2)`` — what weights use, because it
  keeps the int8 matmul free of zero-point cross terms;
- *per-tensor* uses one ``(s, z)``; *per-channel* one per output row, which follows each row's range.

The formulas are PyTorch's ``MinMaxObserver`` / ``PerChannelMinMaxObserver`` (the tests check it),
and :func:`int8_linear` is the integer matmul a CPU runs: int8 × int8 products summed in int32,
rescaled once at the end. Model-level tools, used as they are maintained:

- :func:`dynamic_quantize` — int8 weights, activations quantized on the fly per batch.
  ``backend="torch.ao"`` (``torch.ao.quantization.quantize_dynamic``: fbgemm/oneDNN kernels, fast in
  eager mode, but deprecated in favour of torchao) or ``backend="torchao"`` (``torchao.quantize_``
  with ``Int8DynamicActivationInt8WeightConfig``: the maintained API; its speed comes through
  ``torch.compile``, in eager mode on a CPU it is not faster — notebook 13 measures both);
- :func:`cast` — fp16/bf16 copies;
- :class:`FakeQuantLinear` / :func:`prepare_qat` — quantization-aware training with fake quantization
  (``torch.fake_quantize_per_channel_affine``, straight-through gradients);
- :class:`Int8Embedding` — an int8 embedding table with one scale per row;
- :func:`trim_vocabulary` — keep only the tokens the catalogue and histories use (:func:`unknown_token_rate`: what
  that costs new items);
- ONNX export and ONNX Runtime int8 are in :mod:`recbook.compress.onnx`.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

EPS = torch.finfo(torch.float32).eps


@dataclass
class QParams:
    """How a tensor maps to integers: ``scale``/``zero_point`` (one each, or one per channel along ``axis``)."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int
    axis: int | None = None  # None = per-tensor

    @property
    def dtype(self) -> torch.dtype:
        return torch.int8 if self.qmin < 0 else torch.uint8

    def _broadcast(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        if self.axis is None:
            return t
        shape = [1] * ndim
        shape[self.axis] = -1
        return t.reshape(shape)


def qrange(bits: int = 8, signed: bool = True) -> tuple[int, int]:
    """The integer range of a ``bits``-bit type: (−128, 127) for signed 8-bit, (0, 255) unsigned."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def choose_qparams(x: torch.Tensor, bits: int = 8, symmetric: bool = True, per_channel: bool = False,
                   axis: int = 0, signed: bool = True) -> QParams:
    """Scale and zero point from the tensor's min/max (PyTorch's min-max observer formulas).

    ``per_channel=True`` computes one pair per slice along ``axis`` (rows of a Linear weight for ``axis=0``).
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("x is empty: nothing to quantize")
    qmin, qmax = qrange(bits, signed)
    x = x.detach().float()
    if per_channel:
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"axis {axis} out of range for a {x.ndim}-d tensor")
        axis = axis % x.ndim
        flat = x.movedim(axis, 0).reshape(x.shape[axis], -1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    else:
        lo, hi = x.min(), x.max()
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)  # 0.0 must be representable exactly
    if symmetric:
        scale = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
        scale = torch.clamp(scale, min=EPS)
        zero_point = torch.full_like(scale, 0 if signed else (qmin + qmax + 1) // 2, dtype=torch.int64)
    else:
        scale = torch.clamp((hi - lo) / (qmax - qmin), min=EPS)
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    return QParams(scale, zero_point, qmin, qmax, axis if per_channel else None)


def quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """``clamp(round(x / s) + z, qmin, qmax)`` as int8/uint8.

    Like PyTorch's kernels, it multiplies by ``1 / s`` and rounds half to even, so the integers are
    bit-identical to ``torch.quantize_per_tensor`` / ``quantize_per_channel``.
    """
    scale, zp = qp._broadcast(qp.scale, x.ndim), qp._broadcast(qp.zero_point, x.ndim)
    q = torch.round(x.detach().float() * (1.0 / scale)) + zp
    return torch.clamp(q, qp.qmin, qp.qmax).to(qp.dtype)


def dequantize(q: torch.Tensor, qp: QParams) -> torch.Tensor:
    """``s · (q − z)`` back to float32."""
    scale, zp = qp._broadcast(qp.scale, q.ndim), qp._broadcast(qp.zero_point, q.ndim)
    return (q.to(torch.int32) - zp.to(torch.int32)).float() * scale


def quantization_error(x: torch.Tensor, qp: QParams) -> dict[str, float]:
    """How much a round trip loses: max and mean absolute error, and the signal-to-noise ratio in dB."""
    x = x.detach().float()
    err = dequantize(quantize(x, qp), qp) - x
    noise = err.pow(2).mean().item()
    snr = float("inf") if noise == 0 else 10 * np.log10(x.pow(2).mean().item() / noise)
    return {"max_abs_error": err.abs().max().item(), "mean_abs_error": err.abs().mean().item(), "snr_db": snr}


def int8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                act_qparams: QParams | None = None, weight_qparams: QParams | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` computed the way an int8 kernel does.

    Activations: per-tensor asymmetric uint8 (from ``x``'s range unless given). Weights: per-channel
    symmetric int8. The products are summed in **int32**; one float multiply per output rescales::

        y[i, j] = s_x · s_w[j] · Σ_k (qx[i, k] − z_x) · qw[j, k]  + bias[j]
    """
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[-1]} features but weight expects {weight.shape[1]}")
    aq = act_qparams or choose_qparams(x, symmetric=False, signed=False)
    wq = weight_qparams or choose_qparams(weight, symmetric=True, per_channel=True, axis=0)
    if wq.zero_point.abs().max() != 0:
        raise ValueError("weights must be quantized symmetrically (zero_point 0) for this kernel")
    qx = quantize(x, aq).to(torch.int32) - aq.zero_point.to(torch.int32)
    qw = quantize(weight, wq).to(torch.int32)
    acc = qx.reshape(-1, x.shape[-1]) @ qw.T  # int32 accumulation
    if acc.dtype != torch.int32:
        raise AssertionError("integer matmul did not stay in int32")
    y = acc.float() * (aq.scale * wq.scale.reshape(1, -1))
    if bias is not None:
        y = y + bias.detach().float()
    return y.reshape(*x.shape[:-1], weight.shape[0])


# ----------------------------------------------------------------------------- model-level tools
BACKENDS = ("torch.ao", "torchao")


def dynamic_quantize(model: torch.nn.Module, backend: str = "torch.ao") -> torch.nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers use int8 weights and dynamically quantized activations.

    ``"torch.ao"``: ``torch.ao.quantization.quantize_dynamic`` (per-channel weights; fast fbgemm/oneDNN
    kernels in eager mode; deprecated upstream, its warnings are silenced here). ``"torchao"``:
    ``torchao.quantization.quantize_`` with ``Int8DynamicActivationInt8WeightConfig``.
    The model is put in eval mode; the original is untouched.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    model = copy.deepcopy(model).eval().float()
    if backend == "torch.ao":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            # per-channel weight scales: on the course's cross-encoder, per-tensor scales reorder candidates
            # noticeably (score correlation with fp32 0.95 vs 0.98 per channel, measured in notebook 13's setting)
            return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


def cast(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` with floating-point weights in ``dtype`` (``torch.float16`` / ``torch.bfloat16``)."""
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"dtype must be float16, bfloat16 or float32, got {dtype}")
    return copy.deepcopy(model).eval().to(dtype)


class FakeQuantLinear(torch.nn.Linear):
    """A Linear that rounds its weights (per-channel symmetric int8) and inputs (per-tensor uint8) in the
    forward pass but keeps float weights to train: quantization-aware training. Gradients pass straight
    through the rounding (``torch.fake_quantize_*``). Input ranges are tracked with a moving average."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, momentum: float = 0.1):
        super().__init__(in_features, out_features, bias)
        self.momentum = momentum
        self.register_buffer("act_min", torch.tensor(0.0))
        self.register_buffer("act_max", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear) -> "FakeQuantLinear":
        new = cls(linear.in_features, linear.out_features, linear.bias is not None)
        new.weight, new.bias = linear.weight, linear.bias
        return new.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min().float(), x.detach().max().float()
            if not bool(self.initialized):
                self.act_min.copy_(lo), self.act_max.copy_(hi), self.initialized.fill_(True)
            else:
                self.act_min.lerp_(lo, self.momentum), self.act_max.lerp_(hi, self.momentum)
        if bool(self.initialized):
            lo, hi = torch.clamp(self.act_min, max=0.0), torch.clamp(self.act_max, min=0.0)
            scale = float(torch.clamp((hi - lo) / 255, min=EPS))
            zp = int(torch.clamp(-torch.round(lo / scale), 0, 255))
            x = torch.fake_quantize_per_tensor_affine(x.float(), scale, zp, 0, 255)
        wq = choose_qparams(self.weight, per_channel=True, axis=0)
        w = torch.fake_quantize_per_channel_affine(self.weight.float(), wq.scale, wq.zero_point.to(torch.int32), 0, -128, 127)
        return torch.nn.functional.linear(x, w, self.bias)


def prepare_qat(model: torch.nn.Module, skip: tuple[str, ...] = ("head",)) -> torch.nn.Module:
    """Replace every ``nn.Linear`` (except modules whose name starts with one in ``skip``) by a
    :class:`FakeQuantLinear` sharing its weights, in place; returns the model. After fine-tuning, convert
    with :func:`dynamic_quantize` (FakeQuantLinear is an ``nn.Linear``) or :func:`unprepare_qat`."""
    replaced = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is torch.nn.Linear and not full.startswith(skip):
                setattr(module, child_name, FakeQuantLinear.from_linear(child))
                replaced += 1
    if replaced == 0:
        raise ValueError("no nn.Linear layers to prepare for quantization-aware training")
    return model


def unprepare_qat(model: torch.nn.Module) -> torch.nn.Module:
    """Turn :class:`FakeQuantLinear` layers back into plain ``nn.Linear`` (same trained weights), in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, FakeQuantLinear):
                plain = torch.nn.Linear(child.in_features, child.out_features, child.bias is not None)
                plain.weight, plain.bias = child.weight, child.bias
                setattr(module, child_name, plain)
    return model


class Int8Embedding(torch.nn.Module):
    """An embedding table stored as int8 with one float scale per row (symmetric): 4× smaller than fp32.

    Looked-up rows are dequantized on the fly, so the rest of the model is unchanged.
    """

    def __init__(self, weight_int8: torch.Tensor, scales: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scales", scales)
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = weight_int8.shape

    @classmethod
    def from_embedding(cls, embedding: torch.nn.Embedding) -> "Int8Embedding":
        qp = choose_qparams(embedding.weight, per_channel=True, axis=0)
        return cls(quantize(embedding.weight, qp), qp.scale.float(), embedding.padding_idx)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized table (for code that reads ``embedding.weight``)."""
        return self.weight_int8.float() * self.scales[:, None]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight_int8[input_ids].float()
        return rows * self.scales[input_ids].unsqueeze(-1)


def quantize_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with its word-embedding table as an :class:`Int8Embedding`."""
    model = copy.deepcopy(model)
    owner = _word_embeddings_owner(model)
    if isinstance(owner.word_embeddings, TrimmedEmbedding):  # trimmed first: quantize the kept rows
        owner.word_embeddings.table = Int8Embedding.from_embedding(_as_embedding(owner.word_embeddings.table))
    else:
        owner.word_embeddings = Int8Embedding.from_embedding(_as_embedding(owner.word_embeddings))
    return model


class TrimmedEmbedding(torch.nn.Module):
    """An embedding that keeps only some rows: ``remap[old_id]`` gives the row; unknown ids map to [UNK]'s row."""

    def __init__(self, table: torch.nn.Module, remap: torch.Tensor):
        super().__init__()
        self.table = table
        self.register_buffer("remap", remap)

    @property
    def weight(self) -> torch.Tensor:
        return self.table.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table(self.remap[input_ids])


def used_token_ids(texts, tokenizer, batch_size: int = 1024) -> np.ndarray:
    """Every token id ``tokenizer`` produces for ``texts``, plus its special tokens, sorted."""
    ids = set(tokenizer.all_special_ids)
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        for row in tokenizer(texts[start : start + batch_size], add_special_tokens=False)["input_ids"]:
            ids.update(row)
    return np.array(sorted(ids), dtype=np.int64)


def unknown_token_rate(texts, tokenizer, keep_ids, batch_size: int = 1024) -> float:
    """The share of ``texts``' tokens (special tokens aside) outside ``keep_ids``: what a vocabulary trimmed to
    ``keep_ids`` reads as ``[UNK]`` in them. Trim on the texts known at training time and measure this on new items'
    texts — the cost of trimming that an evaluation on the trimming texts themselves cannot show (it is 0 there)."""
    keep = set(np.asarray(keep_ids).tolist())
    texts = list(texts)
    total = outside = 0
    for start in range(0, len(texts), batch_size):
        for row in tokenizer(texts[start : start + batch_size], add_special_tokens=False)["input_ids"]:
            total += len(row)
            outside += sum(1 for t in row if t not in keep)
    if total == 0:
        raise ValueError("texts hold no tokens: nothing to measure an [UNK] rate on")
    return outside / total


def trim_vocabulary(model: torch.nn.Module, keep_ids, unk_id: int) -> torch.nn.Module:
    """A copy of ``model`` whose word embeddings hold only the rows in ``keep_ids``.

    Input ids are unchanged (a lookup table maps them to the kept rows), so the trimmed model gives
    **identical** outputs on any input made of kept tokens; any other token maps to ``unk_id``'s row.
    """
    keep = torch.as_tensor(np.asarray(keep_ids), dtype=torch.long)
    model = copy.deepcopy(model)
    owner = _word_embeddings_owner(model)
    old = _as_embedding(owner.word_embeddings)
    if keep.numel() == 0 or keep.min() < 0 or keep.max() >= old.num_embeddings:
        raise ValueError(f"keep_ids must be token ids in [0, {old.num_embeddings}), got {keep.numel()} ids")
    if unk_id not in set(keep.tolist()):
        raise ValueError(f"unk_id {unk_id} must be among keep_ids (unknown tokens map to it)")
    keep = torch.unique(keep)
    remap = torch.empty(old.num_embeddings, dtype=torch.int32)  # 4 bytes per original token id
    remap.fill_(int((keep == unk_id).nonzero()[0, 0]))
    remap[keep] = torch.arange(keep.numel(), dtype=torch.int32)
    table = torch.nn.Embedding(keep.numel(), old.embedding_dim)
    table.weight = torch.nn.Parameter(old.weight.detach()[keep].clone(), requires_grad=old.weight.requires_grad)
    owner.word_embeddings = TrimmedEmbedding(table, remap)
    return model


def _word_embeddings_owner(model: torch.nn.Module) -> torch.nn.Module:
    """The ``embeddings`` module (BERT) of a model, a cross-encoder or a bare encoder."""
    for module in model.modules():
        if hasattr(module, "word_embeddings"):
            return module
    raise ValueError(f"{type(model).__name__} has no word_embeddings module (expected a BERT-style encoder)")


def _as_embedding(module: torch.nn.Module) -> torch.nn.Embedding:
    if isinstance(module, torch.nn.Embedding):
        return module
    raise ValueError(f"word embeddings are already a {type(module).__name__}; trim or quantize a plain nn.Embedding")
