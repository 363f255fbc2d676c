"""Checkers of notebook 11_gpu_tpu."""

from __future__ import annotations

from .core import _exercise


@_exercise("11.bucket", "11_gpu_tpu", "Write bucket(length, buckets): the smallest bucket >= length; ValueError if none.")
def _bucket(fn):
    from ..accel import bucket_length

    for length, buckets in ((23, (32, 64)), (64, (32, 64, 128)), (1, (8,)), (65, (128, 32, 64))):
        if fn(length, buckets) != bucket_length(length, tuple(sorted(buckets))):
            return False, f"bucket({length}, {buckets}) should be {bucket_length(length, tuple(sorted(buckets)))}."
    try:
        fn(300, (32, 64))
    except ValueError:
        return True, "a handful of shapes means a handful of XLA compilations."
    return False, "bucket(300, (32, 64)) must raise ValueError."


@_exercise("11.needs_scaler", "11_gpu_tpu", "Write needs_loss_scaling(dtype): True only for torch.float16.")
def _needs_scaler(fn):
    import torch

    expected = {torch.float16: True, torch.bfloat16: False, torch.float32: False}
    for dtype, want in expected.items():
        if bool(fn(dtype)) != want:
            return False, f"{dtype}: {'needs' if want else 'does not need'} loss scaling — compare torch.finfo(dtype).tiny."
    return True, "bf16 has fp32's exponent range; fp16's small gradients underflow without scaling."


@_exercise("11.best_batch", "11_gpu_tpu", "Write best_batch(latency_ms, budget_ms): the largest batch within the latency budget, else None.")
def _best_batch(fn):
    lat = {1: 5.0, 8: 12.0, 32: 40.0, 64: 90.0}
    for budget, want in ((50, 32), (100, 64), (4, None), (12, 8)):
        if fn(lat, budget) != want:
            return False, f"with budget {budget} ms expected {want}."
    return True, "the latency budget caps the batch; where throughput still grows with the batch (check your sweep), the largest batch that fits is the best."
