"""Checkers of notebook 16_gpu_tpu."""

from __future__ import annotations

from recbook_course.exercises.core import _exercise


@_exercise("16.bucket", "16_gpu_tpu", "Write bucket(length, buckets): the smallest bucket >= length; ValueError if none.")
def _bucket(fn):
    from recbook.perf.accel import bucket_length

    for length, buckets in ((23, (32, 64)), (64, (32, 64, 128)), (1, (8,)), (65, (128, 32, 64))):
        if fn(length, buckets) != bucket_length(length, tuple(sorted(buckets))):
            return False, f"bucket({length}, {buckets}) should be {bucket_length(length, tuple(sorted(buckets)))}."
    try:
        fn(300, (32, 64))
    except ValueError:
        return True, "a handful of shapes means a handful of XLA compilations."
    return False, "bucket(300, (32, 64)) must raise ValueError."


@_exercise("16.needs_scaler", "16_gpu_tpu", "Write needs_loss_scaling(dtype): True only for torch.float16.")
def _needs_scaler(fn):
    import torch

    expected = {torch.float16: True, torch.bfloat16: False, torch.float32: False}
    for dtype, want in expected.items():
        if bool(fn(dtype)) != want:
            return False, f"{dtype}: {'needs' if want else 'does not need'} loss scaling — compare torch.finfo(dtype).tiny."
    return True, "bf16 has fp32's exponent range; fp16's small gradients underflow without scaling."


@_exercise("16.best_batch", "16_gpu_tpu", "Write best_batch(latency_ms, budget_ms): the largest batch within the latency budget, else None.")
def _best_batch(fn):
    lat = {1: 5.0, 8: 12.0, 32: 40.0, 64: 90.0}
    for budget, want in ((50, 32), (100, 64), (4, None), (12, 8)):
        if fn(lat, budget) != want:
            return False, f"with budget {budget} ms expected {want}."
    return True, "the latency budget caps the batch; where throughput still grows with the batch (check your sweep), the largest batch that fits is the best."


@_exercise("16.bucket_cost", "16_gpu_tpu",
           "Pad the measured batch to the 256-token bucket, time the cross-encoder on it against the unpadded batch "
           "(interleaved, unpadded first), report the largest logit difference, and the padded row's verdict.")
def _bucket_cost(answer):
    from recbook_course.exercises.common import _dict_with, _ratios_table

    hint = _dict_with(answer, ("table", "padded", "max_abs_difference", "verdict"),
                      "table, padded (the padded batch), max_abs_difference and verdict")
    hint = hint or _ratios_table(answer["table"], "unpadded, then padded", "time the unpadded batch first")
    if hint:
        return False, hint
    table = answer["table"]
    length = int(answer["padded"]["input_ids"].shape[1])
    if length != 256:
        return False, f"the padded batch has {length} tokens per pair; pad to the 256 bucket: accel.pad_to_bucket(batch, (256,))."
    diff = float(answer["max_abs_difference"])
    if not diff < 1e-3:
        return False, (f"the logits moved by {diff:.2g}: padding must be invisible to the model — pad attention_mask with 0 "
                       "(pad_to_bucket does), and compare the logits of the same pairs.")
    row = table.iloc[1]
    if answer["verdict"] != row["verdict"]:
        return False, f"read the padded row's verdict: {row['verdict']!r} (its interval [{row['low']:.2f}, {row['high']:.2f}])."
    cost = 1 / row["speed_up"] if row["speed_up"] > 0 else float("nan")
    meaning = {"slower": f"the padded batch costs {cost:.1f}× the time for the same answers (largest logit difference {diff:.1g}): "
                         "a bucket buys fewer distinct shapes — one compilation each on XLA or with torch.compile — with "
                         "compute, so choose buckets close to the lengths you see",
               "faster": "padding came out faster here, which the extra tokens do not explain: re-run with more rounds",
               "within noise": "no cost is shown at this size: compare the A/A row"}.get(answer["verdict"], "")
    return True, f"padded to 256: {row['speed_up']:.2f}× [{row['low']:.2f}, {row['high']:.2f}] → {answer['verdict']}: {meaning}."
