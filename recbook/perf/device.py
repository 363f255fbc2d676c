"""Where the course runs: device detection, seeding, CPU features and an environment report.

Taught in notebook ``00_setup``.

Profiles (every size a notebook uses) live in :mod:`recbook.profile`; ``Profile``, ``PROFILES``,
``get_profile`` and ``PROFILE_ENV`` stay importable from here.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys

import numpy as np

# profiles have their own module; these names stay importable from here (notebooks use them)
from recbook.profile import get_profile


# --------------------------------------------------------------------------- device
def detect_device(prefer: str | None = None) -> str:
    """Return the best available device as a string: ``"cuda"``, ``"xla"``, ``"mps"`` or ``"cpu"``.

    ``prefer`` forces one (e.g. ``"cpu"`` for a reproducible run); asking for a device
    that is not available raises ``ValueError`` saying what is available.
    TPU is reported as ``"xla"`` only when ``torch_xla`` is importable (Colab TPU runtime).
    """
    available = available_devices()
    if prefer is not None:
        if prefer not in available:
            raise ValueError(
                f"device {prefer!r} was requested but is not available here; available: {available}. "
                "Pass prefer=None to pick the best one automatically."
            )
        return prefer
    for name in ("cuda", "xla", "mps", "cpu"):
        if name in available:
            return name
    return "cpu"  # pragma: no cover - "cpu" is always in available


def available_devices() -> list[str]:
    """List the device kinds usable from this process (always includes ``"cpu"``)."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _has_torch_xla():
        found.append("xla")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def _has_torch_xla() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch_xla") is not None
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        return False


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and all GPUs); return the seed.

    ``deterministic=True`` also asks PyTorch for deterministic kernels (slower on GPU).
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


# ----------------------------------------------------------------------- CPU features
_FEATURE_FLAGS = {
    "AVX2": ("avx2",),
    "AVX-512F": ("avx512f",),
    "AVX-512 VNNI": ("avx512_vnni", "avx512vnni"),
    "AVX-VNNI": ("avx_vnni",),
    "AVX-512 BF16": ("avx512_bf16",),
    "AMX-BF16": ("amx_bf16",),
    "AMX-INT8": ("amx_int8",),
    "ARM NEON": ("asimd", "neon"),
}


def cpu_features(flags: str | None = None) -> dict[str, bool]:
    """Which CPU features matter for int8/bf16 speed-ups: AVX2, AVX-512, VNNI, AMX, NEON.

    ``flags`` is a space-separated flag list (as in ``/proc/cpuinfo``); by default it is
    read from ``/proc/cpuinfo`` on Linux. Where no flag list can be read (macOS, Windows)
    every value is ``False`` and :func:`torch_cpu_capability` is the better hint.
    """
    if flags is None:
        flags = _read_cpu_flags()
    present = set(flags.lower().split())
    return {name: any(f in present for f in names) for name, names in _FEATURE_FLAGS.items()}


def _read_cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1]
    except OSError:
        pass
    return ""


def torch_cpu_capability() -> str:
    """The SIMD level PyTorch's CPU kernels dispatch to (e.g. ``"AVX2"``, ``"AVX512"``)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # pragma: no cover - old torch
        return "unknown"


# ------------------------------------------------------------------------ report
def environment_report(device: str | None = None) -> dict[str, object]:
    """Everything a benchmark or a bug report needs, in one dict.

    Versions of Python and the key libraries, the device, CPU model and features,
    thread count, GPU name and memory where there is one, and the active profile.
    """
    import torch

    device = device or detect_device()
    report: dict[str, object] = {
        "recbook": _version("recbook"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "datasets": _version("datasets"),
        "numpy": np.__version__,
        "device": device,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch_cpu_capability(),
        "cpu_features": ", ".join(k for k, v in cpu_features().items() if v) or "none detected",
        "profile": get_profile().name,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = props.name
        report["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        report["gpu_bf16"] = torch.cuda.is_bf16_supported()
    return report


def format_report(report: dict[str, object]) -> str:
    """Render :func:`environment_report` as aligned ``key : value`` lines."""
    width = max(len(k) for k in report)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in report.items())


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` PyTorch intra-op threads, restoring the previous count afterwards.

    Tiny models (MF-BPR: embedding look-ups of 32 numbers) gain nothing from a second thread and lose a lot
    when other processes share the cores: every small op then waits for a descheduled thread (notebook 03).
    """
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
