"""Checkers of notebook 08_quantization."""

from __future__ import annotations

from .core import _close, _exercise


@_exercise("08.scale_zero_point", "08_quantization", "Write scale_zero_point(lo, hi): asymmetric uint8 (scale, zero_point).")
def _scale_zero_point(fn):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization.observer import MinMaxObserver

    for lo, hi in ((-1.0, 3.0), (-0.25, 0.5), (-6.0, 0.1)):
        obs = MinMaxObserver(dtype=torch.quint8)
        obs(torch.tensor([lo, hi]))
        s, z = obs.calculate_qparams()
        got = fn(lo, hi)
        if not (_close(got[0], float(s), 1e-6) and int(got[1]) == int(z)):
            return False, f"for [{lo}, {hi}] PyTorch's observer gives scale {float(s):.6f}, zero point {int(z)}."
    return True, "identical to PyTorch's MinMaxObserver."


@_exercise("08.int8_dot", "08_quantization", "Write int8_dot(qa, qb, za, sa, sb): sa·sb·Σ(qa − za)·qb accumulated in int32.")
def _int8_dot(fn):
    import torch

    g = torch.Generator().manual_seed(9)
    for n in (8, 384, 1536):
        qa = torch.randint(0, 256, (n,), generator=g).to(torch.uint8)
        qb = torch.randint(-128, 128, (n,), generator=g).to(torch.int8)
        za, sa, sb = 113, 0.02, 0.003
        expected = sa * sb * float(((qa.long() - za) * qb.long()).sum())
        if not _close(fn(qa, qb, za, sa, sb), expected, 1e-6):
            return False, "convert to int32 before subtracting and multiplying: uint8 arithmetic wraps around."
    return True, "one float multiply at the end; everything else is integer."


@_exercise("08.int8_mb", "08_quantization", "Write int8_model_mb(n_params): MB of int8 weights plus one fp32 scale per 384 weights.")
def _int8_mb(fn):
    for n in (384, 22_713_216, 10**6):
        if not _close(fn(n), (n + 4 * n / 384) / 1e6, 1e-6):
            return False, "1 byte per weight plus 4 bytes per scale, one scale per 384 weights; MB = 10**6 bytes."
    return True, "about 1% overhead for the scales: int8 is ~4× smaller than fp32."
