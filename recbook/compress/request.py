"""Compress what runs on every request — the sequential recommender's user encoder and its item table — and judge each
variant by what users see (full-ranking NDCG@10, top-10 overlap with fp32) and by CPU milliseconds per request.

Run by ``python -m recbook bench --target request --model RUN --out DIR`` (:func:`recbook.compress.request_bench.run_request_bench`).

A request to the service costs one pass of the sequential model (SASRec, or lmrec: SASRec over fine-tuned text vectors)
over the user's last ``max_len`` items, then a product of the resulting user vector with the item table and a top-k.
The language model itself ran once per item, offline: its output is the item table. So the variants here are:

- ``fp32`` — eager PyTorch, the reference for quality;
- ``onnx-fp32`` — the same graph in ONNX Runtime with every graph optimisation (operator fusion, constant folding):
  usually the *best fp32 baseline* on a CPU, and every speed-up is measured against the best fp32 variant, not the
  slowest one;
- ``onnx-int8`` — ONNX Runtime dynamic int8 (weights per channel, activations quantized per call), after
  ``quant_pre_process`` (shape inference and graph clean-up, as ONNX Runtime's docs ask);
- ``onnx-int4w`` — weight-only int4 (``MatMulNBits``, blocks of 32 values with their own scale), activations fp32;
- ``…-lastN`` — the encoder reads only the user's last ``N`` items (fewer positions per request: attention is
  quadratic, the rest linear in them) — a quality trade the table shows;
- ``table-int8`` / ``table-int4`` — the item table stored with one int8 / int4 code per value and one fp32 scale per
  row (symmetric, per-row absmax), dequantized for scoring: the size that grows with the catalogue;
- ``onnx-int8+table-int8`` — both;
- ``student…`` / ``mlp-student…`` — encoders *distilled* from the trained one (:mod:`recbook.compress.student`): a 1-block
  transformer started from its last block, or an MLP over the last ``N`` item vectors; both score with the teacher's
  item table, run in ONNX Runtime in fp32 or (``-int8``) dynamic int8, and are distilled here, on the run's own training
  prefixes, with early stopping on its validation items.

Every encoder computes its last transformer block for the last position only
(:meth:`~recbook.models.sequential.SequentialRecommender.encode_last`): a request reads that position alone, so this is
exact, and the fp32 baselines run it too — a speed-up is never credited to skipping work the baseline also could skip.

Quality: every variant scores every test user's full catalogue; NDCG@10 with its bootstrap CI, the paired difference to
``fp32`` with its CI, and the mean top-10 overlap with ``fp32`` (label-free and low-variance). A variant is
*non-inferior* when the lower end of its paired difference's interval is above ``-margin`` (fixed before measuring:
0.005 by default) and its overlap is at least 0.8.

Cost: each variant answers the same requests — batch 1, one history each, encoder + scores + top-10 — in rounds whose
order is shuffled (a variant is not always timed after the same neighbour), with the threads fixed. CPU time of the
calling thread per request (``time.thread_time``; ONNX Runtime runs in the calling thread with one intra-op thread)
gives ``cpu_ms_p50``; wall time gives ``p50_ms``/``p99_ms``. This is the retrieval function the service runs, timed in
process: what the HTTP layer adds is the same for every variant (measure it with ``recbook loadtest``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbook.compress.request_variants import STUDENT_ENCODERS, VARIANTS, parse_variant


# ------------------------------------------------------------------ the item table, quantized per row
def quantize_table(table: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row quantization: ``(codes, scales)`` with ``codes`` in ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``
    (int8 storage; int4 codes are packed two per byte on disk, see :func:`table_bytes`) and ``table ≈ codes * scales``."""
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    table = np.asarray(table, dtype=np.float32)
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (items x dim), got shape {table.shape}")
    levels = 2 ** (bits - 1) - 1
    scales = np.abs(table).max(axis=1, keepdims=True) / levels
    scales[scales == 0] = 1.0  # an all-zero row (an item without a vector) stays exactly zero
    codes = np.clip(np.rint(table / scales), -levels, levels).astype(np.int8)
    return codes, scales.astype(np.float32)


def table_bytes(n_items: int, dim: int, bits: int) -> int:
    """Bytes of a stored item table: the codes (packed for int4) plus one fp32 scale per row (none for fp32)."""
    if bits == 32:
        return n_items * dim * 4
    return (n_items * dim * bits + 7) // 8 + n_items * 4


# ------------------------------------------------------------------ the user encoder, three ways
def _user_encoder(network):
    """``(seq (batch, max_len) int64, x = table[seq]) → user vector (batch, dim)``: the transformer a request runs, without
    the item table (looked up outside, so one stored table serves both the history and the scores)."""
    import torch

    class UserEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, seq, x):
            return self.network.encode_last(seq, x)

    return UserEncoder().eval()


def export_user_encoder(network, path: str | Path, opset: int = 18) -> Path:
    """Export the network's user encoder (eval mode; inputs ``seq`` and its item vectors ``x``) to ONNX, batch dynamic."""
    import warnings

    import torch

    path = Path(path)
    network = network.eval().float().cpu()
    with torch.no_grad():
        table = network.item_table().detach().clone()
    module = _user_encoder(network)
    example = torch.zeros(2, network.config.max_len, dtype=torch.long)
    example[:, -3:] = torch.tensor([1, 2, 3])
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example, table[example]), str(tmp), input_names=["seq", "x"], output_names=["user"],
                          opset_version=opset, dynamo=False,
                          dynamic_axes={"seq": {0: "batch", 1: "length"}, "x": {0: "batch", 1: "length"}, "user": {0: "batch"}})
    tmp.replace(path)
    return path


def quantize_user_encoder(source: str | Path, target: str | Path) -> Path:
    """ONNX Runtime dynamic int8 of an exported encoder, after ``quant_pre_process`` (shape inference, clean-up)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from recbook.compress.onnx import _quiet_root_logger

    prepared = Path(target).with_name(Path(target).name + ".pre.onnx")
    try:
        with _quiet_root_logger():
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        prepared.unlink(missing_ok=True)
    return Path(target)


class OrtUserEncoder:
    """An exported user encoder in ONNX Runtime (all graph optimisations, ``threads`` intra-op threads, no spinning)."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}  # an encoder that ignores seq (an MLP) has no seq input

    def __call__(self, seq: np.ndarray, x: np.ndarray) -> np.ndarray:
        feed = {"x": np.asarray(x, dtype=np.float32)}
        if "seq" in self.inputs:
            feed["seq"] = np.asarray(seq, dtype=np.int64)
        return self.session.run(["user"], feed)[0]


@dataclass
class RequestVariant:
    """One way to answer a request: the item table (looked up for the history, multiplied for the scores) and the
    encoder ``encode(seq, x) → user vectors``."""

    name: str
    encode: object
    full_table: np.ndarray  # (n_items + 2, dim) float32: row 0 padding, 1…n the items, n+1 [MASK] (dequantized if stored quantized)
    size_bytes: int
    window: int | None = None  # read only the last ``window`` positions of each (left-padded) history
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def table(self) -> np.ndarray:
        return self.full_table[1:-1]

    def scores(self, seq: np.ndarray) -> np.ndarray:
        seq = np.asarray(seq, dtype=np.int64)
        if self.window is not None:
            seq = seq[:, -self.window:]
        return np.asarray(self.encode(seq, self.full_table[seq]), dtype=np.float32) @ self.table.T


def weight_only_int4(source: str | Path, target: str | Path, block_size: int = 32) -> Path:
    """ONNX Runtime weight-only int4 of every MatMul (``MatMulNBits``: ``block_size`` values share a scale)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    from recbook.compress.onnx import _quiet_root_logger

    with _quiet_root_logger():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=DefaultWeightOnlyQuantConfig(block_size=block_size,
                                                                                                      is_symmetric=True))
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
    return Path(target)


def build_variants(network, names=VARIANTS, workdir: str | Path | None = None, threads: int = 1,
                   students: dict | None = None) -> list[RequestVariant]:
    """The request-path variants of a trained :class:`~recbook.models.sequential.SequentialRecommender`. A student
    encoder (:data:`~recbook.compress.request_variants.STUDENT_ENCODERS`) comes from ``students[(kind, window)]``, a
    :class:`~recbook.compress.student.StudentEncoder` distilled from ``network`` (:func:`distill_students`)."""
    import torch

    parsed = {name: parse_variant(name) for name in names}
    network = network.eval().float().cpu()
    with torch.no_grad():
        full_table = network.item_table().detach().clone().numpy().astype(np.float32)
    n, dim = full_table.shape[0] - 2, full_table.shape[1]
    # the encoder's own weights: the item table's ingredients (ID embeddings, text vectors and their projection) are not
    # shipped, the table they make is
    weights = sum(p.numel() * 4 for name, p in network.state_dict().items()
                  if not name.startswith(("text_features", "text_proj", "item_emb", "known_items")) and p.is_floating_point())

    def eager(seq, x):
        with torch.inference_mode():
            return network.encode_last(torch.from_numpy(seq), torch.from_numpy(x)).numpy()

    folder = Path(workdir or tempfile.mkdtemp(prefix="recbook-request-"))
    folder.mkdir(parents=True, exist_ok=True)
    encoders = {e for e, _, _ in parsed.values()}
    paths = {}
    if encoders & {"onnx-fp32", "onnx-int8", "onnx-int4w"}:
        paths["onnx-fp32"] = export_user_encoder(network, folder / "user_encoder.fp32.onnx")
    if "onnx-int8" in encoders:
        paths["onnx-int8"] = quantize_user_encoder(paths["onnx-fp32"], folder / "user_encoder.int8.onnx")
    if "onnx-int4w" in encoders:
        paths["onnx-int4w"] = weight_only_int4(paths["onnx-fp32"], folder / "user_encoder.int4w.onnx")
    paths = {e: path for e, path in paths.items() if e in encoders}  # the fp32 export may only be int8's source
    student_fp32 = {}  # (kind, window) → its fp32 ONNX file, the source of its int8 one
    for name, (encoder, window, _) in parsed.items():  # students: one ONNX file per (kind, window, precision)
        if encoder not in STUDENT_ENCODERS or (encoder, window) in paths:
            continue
        kind, precision = STUDENT_ENCODERS[encoder]
        student = (students or {}).get((kind, window))
        if student is None:
            raise ValueError(f"request variant {name!r} needs a {kind} student distilled for window {window}: pass "
                             f"students={{({kind!r}, {window}): ...}} (see distill_students)")
        stem = folder / f"{kind}_student_last{window}"
        if (kind, window) not in student_fp32:
            student_fp32[(kind, window)] = export_user_encoder(student, stem.with_suffix(".fp32.onnx"))
        fp32 = student_fp32[(kind, window)]
        paths[(encoder, window)] = fp32 if precision == 32 else quantize_user_encoder(fp32, stem.with_suffix(".int8.onnx"))
    sessions = {e: OrtUserEncoder(path, threads) for e, path in paths.items()}

    variants = []
    for name, (encoder, window, bits) in parsed.items():
        if encoder == "fp32":
            encode, enc_bytes = eager, weights
        else:
            key = (encoder, window) if encoder in STUDENT_ENCODERS else encoder
            encode, enc_bytes = sessions[key], paths[key].stat().st_size
        if bits < 32:
            codes, scales = quantize_table(full_table, bits)
            used = codes.astype(np.float32) * scales
        else:
            used = full_table
        t_bytes = table_bytes(n + 2, dim, bits)
        variants.append(RequestVariant(name, encode, used, enc_bytes + t_bytes, window=window,
                                       extra={"encoder_bytes": enc_bytes, "table_bytes": t_bytes}))
    return variants


def _student_key(name: str):
    encoder, window, _ = parse_variant(name)
    return (STUDENT_ENCODERS[encoder][0], window) if encoder in STUDENT_ENCODERS else None


def distill_students(network, dataset, split, names, seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """Distil the students the variant ``names`` ask for (one per kind and window), on ``split.train`` with early stopping
    on ``split.valid``: ``(students, notes)``, ``notes[(kind, window)]`` saying how each fit went."""
    from recbook.compress.student import StudentConfig, distill_user_encoder

    wanted = dict.fromkeys((STUDENT_ENCODERS[e][0], w) for e, w, _ in map(parse_variant, names) if e in STUDENT_ENCODERS)
    students, notes = {}, {}
    for kind, window in wanted:
        fit = distill_user_encoder(network, dataset, split, StudentConfig(kind=kind, window=window, seed=seed), progress=progress)
        students[(kind, window)] = fit.student
        notes[(kind, window)] = (f"{kind} student, last {window} items: distilled on {fit.prefixes} training prefixes in "
                                 f"{fit.train_seconds:.0f} s, stopped by {fit.stop_reason}, best validation NDCG@10 "
                                 f"{fit.result.best_metric:.4f}")
    return students, notes


__all__ = ["OrtUserEncoder", "RequestVariant", "build_variants", "distill_students", "export_user_encoder", "quantize_table",
           "quantize_user_encoder", "table_bytes", "weight_only_int4"]
