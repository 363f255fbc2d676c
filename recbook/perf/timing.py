"""Timing and memory measurement, in one place: what :mod:`recbook.compress.bench` and :mod:`recbook.perf.accel` measure with.

- :func:`synchronize` waits for queued GPU/XLA work, so a timer measures the work and not just its launch;
- :func:`timed` times one call (device synchronised after it); :func:`time_call` the median and minimum of
  ``repeats`` calls after ``warmup`` — notebook ``16_gpu_tpu``'s forward timings;
- :func:`peak_memory`: peak memory inside a ``with`` block (CUDA allocator peak, or the process's peak
  resident set on Linux); :func:`read_memory_status` reads ``/proc/self/status``;
- :func:`weights_bytes`: the bytes a model's weights occupy in memory, packed int8 weights included.

Comparisons of several models are *interleaved* (A, B, C, A, B, C, …) so machine noise hits all alike:
:func:`interleaved_ratios` does it for a few callables and puts a 95% interval on each speed-up
(:func:`paired_speedup`: the per-round ratios, paired), next to an A/A row (the baseline against itself) that
shows how large a speed-up noise alone produces; :func:`recbook.compress.bench.time_variants` does it for compressed
variants and batch sizes, timing each call with :func:`timed`, with the same paired interval.

Why not ``torch.utils.benchmark.Timer``: it adds warm-up calls of its own (``timeit``) or picks the number of
calls itself (``blocked_autorange``), and runs with **one** thread unless told otherwise — the course's timings
need a known number of calls (a slow path must stay bounded), every call timed at the thread count the
notebook set, and interleaving across models, which a per-statement timer cannot do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd


def synchronize(device: str) -> None:
    """Wait for queued GPU/XLA work, so a timer measures the work and not just its launch."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "xla":  # pragma: no cover - needs torch_xla
        import torch_xla.core.xla_model as xm

        xm.mark_step()
        xm.wait_device_ops()


def timed(fn: Callable[[], object], device: str = "cpu") -> tuple[object, float]:
    """``(fn(), seconds)``: one call of ``fn``, timed with ``time.perf_counter`` and the device synchronised after it."""
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def time_call(fn: Callable[[], object], device: str = "cpu", repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median and min seconds of ``fn()`` after ``warmup`` calls (device synchronised around each call):
    exactly ``warmup + repeats`` calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = [timed(fn, device)[1] for _ in range(repeats)]
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times))}


def paired_speedup(base_seconds, seconds, level: float = 0.95) -> dict:
    """How much faster ``seconds`` is than ``base_seconds``, the two paired by position (timing round).

    Both are sequences of call times taken interleaved, one of each per round; only the first
    ``min(len(base_seconds), len(seconds))`` rounds are paired (a slow path timed in fewer rounds is compared
    with the baseline's same rounds). Returns ``speed_up`` (geometric mean of the per-round ratios
    base / other), ``low`` and ``high`` (a ``level`` t-interval on the log ratios, NaN below 3 rounds),
    ``verdict`` (``faster`` or ``slower`` when the interval excludes 1, ``within noise`` when it does not,
    ``too few rounds`` below 3) and ``rounds``. Pairing by round removes what the two calls of one round share
    (another process waking up, the CPU's clock) — why this interval is narrower than comparing two medians.
    """
    from scipy import stats

    base_t, t = np.asarray(base_seconds, dtype=float), np.asarray(seconds, dtype=float)
    n = min(len(base_t), len(t))
    if n == 0:
        raise ValueError("paired_speedup needs at least one timing on each side")
    if (base_t[:n] <= 0).any() or (t[:n] <= 0).any():
        raise ValueError("paired_speedup needs positive times (seconds)")
    logs = np.log(base_t[:n] / t[:n])
    row = {"speed_up": float(np.exp(logs.mean())), "low": float("nan"), "high": float("nan"),
           "verdict": "too few rounds", "rounds": n}
    if n >= 3:
        half = stats.t.ppf(0.5 + level / 2, n - 1) * logs.std(ddof=1) / np.sqrt(n)
        row.update(low=float(np.exp(logs.mean() - half)), high=float(np.exp(logs.mean() + half)))
        row["verdict"] = "faster" if row["low"] > 1 else "slower" if row["high"] < 1 else "within noise"
    return row


def format_speedup(speed_up: float, low: float, high: float, verdict: str, digits: int = 2) -> str:
    """One speed-up as a learner reads it: ``"3.95× [3.80, 4.10] (faster)"``; without an interval (too few
    rounds, or the baseline itself) ``"0.24× (too few rounds)"``."""
    text = f"{speed_up:.{digits}f}×"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{text} ({verdict})"


def interleaved_ratios(fns: dict[str, Callable[[], object]], device: str = "cpu", rounds: int = 7, warmup: int = 1,
                       level: float = 0.95) -> pd.DataFrame:
    """Time each callable once per round, interleaved, and compare each with the first (the baseline).

    Each round runs every callable once, in an order rotated from round to round, after ``warmup`` untimed
    rounds; the baseline also runs a second time per round (row ``"<baseline> (again)"``: an A/A comparison
    whose "speed-up" is pure noise). Per callable: the median ms, the speed-up over the baseline (geometric
    mean of the per-round ratios baseline / callable, i.e. paired by round) with a ``level`` t-interval on
    the log ratios, and a verdict: ``faster`` or ``slower`` when the interval excludes 1, else ``within noise``
    (``too few rounds`` below 3 rounds). Exactly ``(warmup + rounds) × (len(fns) + 1)`` calls.
    """
    import pandas as pd

    if not fns:
        raise ValueError("interleaved_ratios needs at least one callable")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    base = next(iter(fns))
    again = f"{base} (again)"
    if again in fns:
        raise ValueError(f"{again!r} is the name of the A/A row; rename that callable")
    order = list(fns) + [again]
    calls = {**fns, again: fns[base]}
    times = {name: [] for name in order}
    for r in range(warmup + rounds):
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            seconds = timed(calls[name], device)[1]
            if r >= warmup:
                times[name].append(seconds)
    rows = {}
    for name in order:
        row = paired_speedup(times[base], times[name], level)
        rows[name] = {"median_ms": 1e3 * float(np.median(times[name])), **row}
    # the baseline against itself is 1 by definition: the A/A row is where its noise shows
    rows[base].update(speed_up=1.0, low=float("nan"), high=float("nan"), verdict="baseline")
    return pd.DataFrame(rows).T


# ----------------------------------------------------------------------------------------------- memory
def read_memory_status(field: str = "VmHWM") -> int | None:
    """A memory field of ``/proc/self/status`` in bytes (``VmHWM``: peak resident set; ``VmRSS``: current); None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def trim_freed_memory() -> bool:
    """Give memory that Python and the C allocator have freed back to the operating system (``gc.collect`` and glibc's
    ``malloc_trim``); True where ``malloc_trim`` exists. Without it, a block that runs after a bigger one reuses the
    pages that one freed and its peak resident memory looks smaller than it is: measurements depend on their order."""
    import ctypes
    import gc

    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) >= 0)
    except (OSError, AttributeError):
        return False


@contextmanager
def peak_memory(device: str = "cpu"):
    """Measure peak memory inside the ``with`` block: CUDA allocator peak on GPU; on Linux CPUs the
    process's peak resident set (reset through ``/proc/self/clear_refs``), after freed memory has been returned to
    the system (:func:`trim_freed_memory`). Yields a dict filled on exit with ``peak_bytes`` (``None`` where it cannot
    be measured) and ``how``; on CPUs also ``start_bytes``, the resident memory when the block began (``peak_bytes -
    start_bytes`` is what the block added)."""
    out: dict = {"peak_bytes": None, "how": "not measurable here"}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        yield out
        out.update(peak_bytes=torch.cuda.max_memory_allocated(), how="torch.cuda.max_memory_allocated")
        return
    trim_freed_memory()
    out["start_bytes"] = read_memory_status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets the peak RSS (VmHWM) of this process
        ok = True
    except OSError:
        ok = False
    yield out
    if ok:
        out.update(peak_bytes=read_memory_status("VmHWM"), how="process peak RSS (VmHWM), includes everything loaded")


def weights_bytes(model) -> int | None:
    """Bytes the model's weights occupy in memory (parameters, buffers and packed int8 weights); None for ONNX."""
    if not isinstance(model, torch.nn.Module):
        return None
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    for m in model.modules():  # torch.ao dynamic Linear keeps int8 weights outside parameters()
        if hasattr(m, "_packed_params") and hasattr(m, "weight") and callable(m.weight):
            w = m.weight()
            total += w.numel() * w.element_size() + (m.bias().numel() * 4 if m.bias() is not None else 0)
    return total
