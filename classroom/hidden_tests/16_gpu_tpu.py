"""Hidden tests for notebooks/16_gpu_tpu.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 16.bucket | 1 point
# Catches: buckets assumed sorted (the self-check's unsorted case happens to work without sorting), a length equal to
# a bucket, a list instead of a tuple.
from recbook.perf.accel import bucket_length

for length, buckets in ((20, (128, 32, 64)), (64, [64, 32]), (0, (16, 8)), (100, (256, 128, 512))):
    want = bucket_length(length, tuple(sorted(buckets)))
    assert bucket(length, buckets) == want, f"bucket({length}, {buckets}) should be {want}"
try:
    bucket(513, (512, 64))
except ValueError:
    pass
else:
    raise AssertionError("bucket(513, (512, 64)) must raise ValueError")

# %% 16.needs_scaler | 1 point
# Catches: "everything but bf16 and fp32" — float64 needs no scaling; torch.half is float16.
import torch

for dtype, want in ((torch.float64, False), (torch.half, True), (torch.bfloat16, False)):
    assert bool(needs_loss_scaling(dtype)) == want, f"{dtype}: {'needs' if want else 'does not need'} loss scaling"

# %% 16.best_batch | 1 point
# Catches: reading the dict as if sorted, stopping at the first batch over budget (latency need not grow with the
# batch), a budget met exactly, no measurements.
cases = (({64: 90.0, 1: 5.0, 32: 40.0, 8: 12.0}, 40, 32), ({1: 5.0, 2: 50.0, 4: 20.0}, 25, 4), ({}, 10, None),
         ({16: 11.0}, 10, None), ({4: 3.0, 16: 9.5, 2: 1.0}, 100, 16))
for latency, budget, want in cases:
    assert best_batch(dict(latency), budget) == want, f"best_batch({latency}, {budget}) should be {want}"

# %% 16.bucket_cost | 2 points
# Catches: a padded batch whose attention mask lets the model read the padding (the sum of the mask grew), and a
# reported logit difference that is not the one between these two batches (e.g. the batch compared with itself).
import torch

padded = answer["padded"]
assert int(padded["attention_mask"].sum()) == int(batch["attention_mask"].sum()), "padding must be masked out (attention_mask 0)"
assert torch.equal(padded["input_ids"][:, : batch["input_ids"].shape[1]], batch["input_ids"]), "pad on the right, keep every token"
with torch.no_grad():
    diff = float((model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}) -
                  model(**{k: padded[k] for k in ("input_ids", "attention_mask", "token_type_ids")})).abs().max())
assert abs(diff - float(answer["max_abs_difference"])) < 1e-5, f"the logits of the two batches differ by {diff:.2g}, not {answer['max_abs_difference']}"
