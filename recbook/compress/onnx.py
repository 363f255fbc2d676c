"""ONNX export of a cross-encoder and ONNX Runtime inference, fp32 and int8.

Taught in notebook ``13_quantization``.

- :func:`export_onnx` writes the model with dynamic batch and sequence axes (``torch.onnx.export``).
- :func:`quantize_onnx_dynamic` — ONNX Runtime's dynamic int8 (weights int8 offline, activations
  per batch): the usual "one line" CPU speed-up, largest on CPUs with VNNI/AMX.
- :func:`quantize_onnx_static` — static int8 with **calibration**: activation ranges are measured
  once on representative batches and frozen into the graph.
- :class:`OrtCrossEncoder` runs an ONNX file with the cross-encoder's call signature, so the same
  scorer and benchmark code measures every variant.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids)


def export_onnx(model: torch.nn.Module, path: str | Path, example: dict | None = None, opset: int = 18, dynamo: bool = False) -> Path:
    """Export a cross-encoder (``model(input_ids, attention_mask, token_type_ids) → logits``) to ``path``.

    ``dynamo=False`` uses the TorchScript-based exporter (about 1 s for MiniLM here); ``dynamo=True``
    the ``torch.export``-based one that PyTorch now recommends (slower to export, same graph result —
    the tests check both against PyTorch's outputs). Batch and sequence length stay dynamic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    if example is None:
        ids = torch.tensor([[1, 5, 6, 2, 7, 2]] * 2)  # any ids inside the vocabulary
        example = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    args = tuple(example[k].cpu() for k in INPUTS)
    tmp = path.with_name(path.name + ".tmp")
    if dynamo:
        batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
        shapes = {"dynamic_shapes": {k: {0: batch, 1: sequence} for k in INPUTS}}
    else:
        shapes = {"dynamic_axes": {**{k: {0: "batch", 1: "sequence"} for k in INPUTS}, "logits": {0: "batch"}}}
    # the wrapper must be in eval mode too: the exporter restores the mode it finds, recursively
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Logits(model).eval(), args, str(tmp), input_names=list(INPUTS), output_names=["logits"],
                          opset_version=opset, dynamo=dynamo, **shapes)
    tmp.replace(path)
    return path


def quantize_onnx_dynamic(source: str | Path, target: str | Path) -> Path:
    """ONNX Runtime dynamic int8: MatMul weights to int8 (per channel), activations quantized per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_file(source)
    with _quiet_root_logger():  # ORT logs a generic "consider pre-processing" hint on every call
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return Path(target)


def quantize_onnx_static(source: str | Path, target: str | Path, calibration_batches) -> Path:
    """ONNX Runtime static int8 (QDQ format), activation ranges calibrated on ``calibration_batches``
    (dicts of ``input_ids``/``attention_mask``/``token_type_ids`` tensors or arrays)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    _check_file(source)
    batches = [{k: np.asarray(b[k], dtype=np.int64) for k in INPUTS} for b in calibration_batches]
    if not batches:
        raise ValueError("calibration_batches is empty: static quantization needs representative inputs")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    with _quiet_root_logger():
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])
    return Path(target)


@contextmanager
def _quiet_root_logger():
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _check_file(path) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no ONNX model at {path}; write one with export_onnx(model, path)")


class OrtCrossEncoder:
    """An ONNX Runtime session with the cross-encoder's call signature (returns a float32 tensor of logits).

    ``threads`` fixes ONNX Runtime's intra-op threads (benchmarks must compare like with like). Spinning is off: by
    default ORT's idle worker threads keep spinning after each call, taking CPU from whatever runs next — in an
    interleaved benchmark, the PyTorch variant timed right after an ONNX one (measured: int8 and trim-int8, the same
    arithmetic, swapped speeds depending on which of them followed the ONNX variant).
    """

    pooling = "mean"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        _check_file(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._names = {i.name for i in self.session.get_inputs()}

    def __call__(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(torch.as_tensor(input_ids))
        feed = {k: np.asarray(torch.as_tensor(v).cpu(), dtype=np.int64) for k, v in zip(INPUTS, (input_ids, attention_mask, token_type_ids)) if k in self._names}
        return torch.from_numpy(self.session.run(["logits"], feed)[0].astype(np.float32))

    # the scorer calls these on torch models; an ONNX session has nothing to switch
    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self
