"""Making one device fast: mixed precision, ``torch.compile``, attention kernels, batch size, data loading,
profiling — and TPUs through ``torch_xla``.

Taught in notebook ``16_gpu_tpu``.

Every function measures on whatever device it is given and says what it measured; GPU-only paths
(fp16 with a GradScaler, CUDA timings) report ``skipped`` with the reason on a CPU, and the TPU path
reports ``skipped`` when ``torch_xla`` is not installed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import pandas as pd
import torch

from recbook.perf.timing import interleaved_ratios, synchronize, time_call, timed


def _forward(model, batch):
    return model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def precision_report(model: torch.nn.Module, batch: dict, device: str = "cpu", dtypes=("fp32", "bf16", "fp16"),
                     repeats: int = 5) -> pd.DataFrame:
    """Forward time and logit error of autocast in each dtype against fp32, on ``device``.

    The formats are timed interleaved over ``repeats`` rounds (:func:`recbook.perf.timing.interleaved_ratios`), so each
    speed-up comes with a 95% interval and a verdict, and the row ``fp32 (again)`` shows what noise alone does.
    fp16 autocast on a CPU is measured too (PyTorch supports it) but is rarely fast: fp16 is a GPU format.
    """
    model = model.to(device).eval()
    batch = {k: v.to(device) for k, v in batch.items()}
    rows, runs, reference = {}, {}, None
    for name in dtypes:
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]

        def run(dtype=dtype):
            with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                return _forward(model, batch).float()

        try:
            out = run()
        except RuntimeError as exc:  # a dtype this device cannot autocast to
            rows[name] = {"status": f"skipped: {str(exc).splitlines()[0][:80]}"}
            continue
        reference = out if reference is None else reference
        runs[name] = run
        rows[name] = {"status": "ok", "max_abs_logit_error": float((out - reference).abs().max())}
    if runs:
        timing = interleaved_ratios(runs, device, rounds=repeats)
        for name, t in timing.iterrows():
            rows.setdefault(name, {"status": "ok", "max_abs_logit_error": 0.0})
            rows[name].update({"forward_ms": t["median_ms"], "speed-up vs fp32": t["speed_up"], "low": t["low"], "high": t["high"],
                               "verdict": t["verdict"]})
    return pd.DataFrame(rows).T


def compile_report(model: torch.nn.Module, batch: dict, device: str = "cpu", mode: str | None = None, repeats: int = 5) -> dict:
    """Eager vs ``torch.compile`` for inference: first-call (compile) time, steady-state speed-up, max logit difference.

    Eager and compiled calls are interleaved over ``repeats`` rounds (:func:`recbook.perf.timing.interleaved_ratios`):
    ``speed_up`` has a 95% interval (``speed_up_low``/``speed_up_high``) and a ``verdict``, and ``noise_low``/
    ``noise_high`` is the interval of eager against itself. Returns ``{"status": "skipped: …"}`` when compilation
    is not possible here (e.g. no C++ compiler for the CPU backend) — the notebook prints the reason instead of failing.
    """
    model = model.to(device).eval()
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.inference_mode():
        eager_out = _forward(model, batch)
    compiled = torch.compile(copy.deepcopy(model), mode=mode, dynamic=False)
    try:
        out, first = timed(lambda: _forward_inference(compiled, batch), device)
    except Exception as exc:  # inductor needs a working compiler toolchain; report, don't crash
        return {"status": f"skipped: torch.compile failed here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"}
    t = interleaved_ratios({"eager": lambda: _forward_inference(model, batch), "compiled": lambda: _forward_inference(compiled, batch)},
                           device, rounds=repeats)
    return {"status": "ok", "mode": mode or "default", "eager_ms": t.loc["eager", "median_ms"], "compiled_ms": t.loc["compiled", "median_ms"],
            "first_call_s": first, "speed_up": t.loc["compiled", "speed_up"], "speed_up_low": t.loc["compiled", "low"],
            "speed_up_high": t.loc["compiled", "high"], "verdict": t.loc["compiled", "verdict"],
            "noise_low": t.loc["eager (again)", "low"], "noise_high": t.loc["eager (again)", "high"],
            "max_abs_logit_difference": float((out.float() - eager_out.float()).abs().max())}


def _forward_inference(model, batch):
    with torch.inference_mode():
        return _forward(model, batch)


def attention_report(model_name_or_path=None, batch: dict | None = None, device: str = "cpu", repeats: int = 5) -> pd.DataFrame:
    """The same BERT with ``attn_implementation="eager"`` (matmul + softmax written out) and ``"sdpa"``
    (``torch.nn.functional.scaled_dot_product_attention``: fused kernels, FlashAttention on recent GPUs).

    Timed interleaved over ``repeats`` rounds (:func:`recbook.perf.timing.interleaved_ratios`): each speed-up has a 95%
    interval and a verdict, and the row ``eager (again)`` shows how far noise alone moves the ratio."""
    from transformers import AutoModel

    from recbook.models.backbone import resolve_model_path

    if batch is None or "input_ids" not in batch:
        raise ValueError("batch must be a dict with input_ids and attention_mask (e.g. from recbook.data.PairCollator)")
    path = resolve_model_path(model_name_or_path)
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    mask = inputs["attention_mask"].bool()
    runs, differences, reference = {}, {}, None
    for impl in ("eager", "sdpa"):
        encoder = AutoModel.from_pretrained(path, attn_implementation=impl).to(device).eval()

        def run(encoder=encoder):
            with torch.inference_mode():
                return encoder(**inputs).last_hidden_state

        out = run()
        reference = out if reference is None else reference
        runs[impl], differences[impl] = run, float((out - reference)[mask].abs().max())
    t = interleaved_ratios(runs, device, rounds=repeats)
    return pd.DataFrame({"forward_ms": t["median_ms"], "max_abs_difference": pd.Series(differences).reindex(t.index).fillna(0.0),
                         "speed-up vs eager": t["speed_up"], "low": t["low"], "high": t["high"], "verdict": t["verdict"]})


def batch_size_sweep(model: torch.nn.Module, make_batch: Callable[[int], dict], sizes=(1, 8, 32, 64), device: str = "cpu",
                     repeats: int = 3, amp_dtype=None) -> pd.DataFrame:
    """Inference throughput (pairs/s) and latency per batch size: larger batches use the hardware better,
    until memory or latency limits stop them."""
    model = model.to(device).eval()
    rows = {}
    for size in sizes:
        batch = {k: v.to(device) for k, v in make_batch(size).items()}

        def run():
            with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                return _forward(model, batch)

        t = time_call(run, device, repeats)["median_s"]
        rows[size] = {"latency_ms": 1e3 * t, "pairs_per_s": size / t}
    table = pd.DataFrame(rows).T
    table.index.name = "batch size"
    return table


def dataloader_sweep(dataset, collate_fn, batch_size: int = 32, workers=(0, 2), batches: int = 20) -> pd.DataFrame:
    """Batches per second a ``DataLoader`` delivers with each number of worker processes (no model)."""
    rows = {}
    for n in workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate_fn, num_workers=n,
                                             persistent_workers=False)
        start = time.perf_counter()
        seen = 0
        for seen, _ in enumerate(loader, start=1):
            if seen >= batches:
                break
        rows[n] = {"batches": seen, "batches_per_s": seen / (time.perf_counter() - start)}
    table = pd.DataFrame(rows).T
    table.index.name = "workers"
    return table


def self_time_us(event, device: str) -> float:
    """An operator's own time in µs from a profiler average: device time on a GPU (``self_device_time_total``; torch
    before 2.4 called it ``self_cuda_time_total``, which newer versions no longer have), CPU time otherwise."""
    if device.startswith("cuda"):
        for key in ("self_device_time_total", "self_cuda_time_total"):
            if hasattr(event, key):
                return float(getattr(event, key))
        raise AttributeError(f"{type(event).__name__} has neither self_device_time_total nor self_cuda_time_total")
    return float(event.self_cpu_time_total)


def profile_step(model: torch.nn.Module, batch: dict, device: str = "cpu", top: int = 10, train: bool = True) -> pd.DataFrame:
    """``torch.profiler`` over one training step (forward, backward, AdamW) — or one forward — on ``device``:
    the ``top`` operators by self time, as a table."""
    from torch.profiler import ProfilerActivity, profile

    model = model.to(device)
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5) if train else None
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])

    def step():
        if train:
            model.train()
            loss = model.training_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                _forward(model.eval(), batch)

    step()  # warm-up outside the profile
    synchronize(device)
    with profile(activities=activities) as prof:
        step()
        synchronize(device)
    rows = []
    for e in prof.key_averages():
        rows.append({"operator": e.key, "calls": e.count, "self_ms": self_time_us(e, device) / 1e3, "total_ms": e.cpu_time_total / 1e3})
    table = pd.DataFrame(rows).sort_values("self_ms", ascending=False)
    table["share"] = table["self_ms"] / table["self_ms"].sum()
    return table.head(top).reset_index(drop=True)


def fp16_grad_scaler_steps(model: torch.nn.Module, batches, device: str, lr: float = 1e-4) -> dict:
    """A few fp16 training steps with ``torch.amp.GradScaler`` (CUDA only): the loss scale and whether steps were
    skipped for inf/NaN gradients. On other devices: ``{"status": "skipped: …"}``."""
    if not device.startswith("cuda"):
        return {"status": "skipped: fp16 training with a GradScaler needs a CUDA GPU (on CPUs use bf16, which needs no scaler)"}
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cuda")
    losses, scales = [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model.training_loss(batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
        scales.append(float(scaler.get_scale()))
    return {"status": "ok", "losses": losses, "loss_scales": scales}


# ----------------------------------------------------------------------------- TPU (torch_xla)
def xla_available() -> bool:
    """True when ``torch_xla`` is installed (Colab TPU runtimes; see notebook 16 for the set-up)."""
    import importlib.util

    return importlib.util.find_spec("torch_xla") is not None


def bucket_length(length: int, buckets=(32, 64, 128, 256)) -> int:
    """The smallest bucket ≥ ``length``: XLA compiles one graph per input shape, so pad to a few fixed lengths."""
    for b in buckets:
        if length <= b:
            return b
    raise ValueError(f"length {length} exceeds the largest bucket {buckets[-1]}")


def pad_to_bucket(batch: dict, buckets=(32, 64, 128, 256), pad_token_id: int = 0) -> dict:
    """Pad every sequence tensor of ``batch`` on the right to :func:`bucket_length` (labels untouched)."""
    length = batch["input_ids"].shape[1]
    target = bucket_length(length, buckets)
    out = {}
    for k, v in batch.items():
        if k in ("input_ids", "attention_mask", "token_type_ids") and target > length:
            fill = pad_token_id if k == "input_ids" else 0
            v = torch.nn.functional.pad(v, (0, target - length), value=fill)
        out[k] = v
    return out


def xla_train_steps(model: torch.nn.Module, batches, steps: int = 3, lr: float = 1e-4) -> dict:  # pragma: no cover - needs a TPU
    """Train ``steps`` steps on the XLA device with bucket-padded batches and ``xm.optimizer_step``."""
    if not xla_available():
        return {"status": "skipped: torch_xla is not installed (Colab: Runtime → Change runtime type → TPU)"}
    import torch_xla.core.xla_model as xm

    device = xm.xla_device()
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses, shapes = [], set()
    start = time.perf_counter()
    for _, batch in zip(range(steps), batches):
        batch = {k: v.to(device) for k, v in pad_to_bucket(batch).items()}
        shapes.add(tuple(batch["input_ids"].shape))
        loss = model.training_loss(batch)
        loss.backward()
        xm.optimizer_step(optimizer, barrier=True)  # all-reduce across TPU cores (if any) + step + mark_step
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach().cpu()))
    return {"status": "ok", "device": str(device), "losses": losses, "seconds": time.perf_counter() - start, "distinct_shapes": len(shapes)}
