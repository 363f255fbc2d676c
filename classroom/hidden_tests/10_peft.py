"""Hidden tests for notebooks/10_peft.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 10.lora_params | 1 point
# Catches: square-matrix shortcuts, a rank of 0, and other sizes than the self-check's.
for d_in, d_out, r, n in ((1, 1, 1, 1), (4096, 11008, 16, 64), (384, 384, 0, 12), (128, 512, 3, 5)):
    want = n * r * (d_in + d_out)
    got = lora_params(d_in, d_out, r, n)
    assert got == want, f"lora_params({d_in}, {d_out}, {r}, {n}) should be {want}, got {got}"

# %% 10.merge | 1 point
# Catches: alpha // r (integer division: 16 // 2 is right, 6 // 4 is not), other shapes and ranks.
import torch

g = torch.Generator().manual_seed(51)
for d_out, d_in, r, alpha in ((4, 9, 3, 6), (7, 2, 1, 1), (5, 5, 4, 6)):
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    A = torch.randn(r, d_in, generator=g, dtype=torch.float64)
    B = torch.randn(d_out, r, generator=g, dtype=torch.float64)
    got = torch.as_tensor(merge(W.clone(), A, B, alpha, r))
    want = W + (alpha / r) * (B @ A)
    assert tuple(got.shape) == (d_out, d_in), f"the merged weight has W's shape {(d_out, d_in)}, got {tuple(got.shape)}"
    assert torch.allclose(got.double(), want, atol=1e-6), f"alpha={alpha}, r={r}: expected W + (alpha / r)·B·A with alpha / r = {alpha / r}"

# %% 10.adam_bytes | 1 point
# Catches: other counts, including none and more than 2³¹ parameters.
for n in (0, 7, 123_456_789, 3_000_000_000):
    got = adam_state_bytes(n)
    assert got == 8 * n, f"adam_state_bytes({n}) should be {8 * n}, got {got}"

# %% 10.adapter_params | 1 point
# Catches: formulas fitted to the three sizes the notebook checks; one layer, a bottleneck of 1, BERT-large.
from recbook.finetune.adapters import adapter_parameter_count

for size in ((1, 1, 1), (64, 8, 3), (1024, 32, 24), (384, 1, 12)):
    got, want = adapter_params(*size), adapter_parameter_count(*size)
    assert got == want, f"adapter_params{size} should be {want:,}, got {got}"

# %% 10.lora_lr | 2 points
# Catches: another method or rank than LoRA r=8 (e.g. IA3, or r=2); a rate other than full fine-tuning's; scores that
# are not the handed-in model's on the test users; a reference other than LoRA at its own rate (e.g. full fine-tuning).
import numpy as np

from recbook.finetune.peft import count_parameters

assert answer["lr"] == (LEARNING_RATES["full fine-tuning"] or profile.learning_rate), "use full fine-tuning's learning rate"
assert count_parameters(answer["model"]).trainable == count_parameters(build("LoRA r=8")).trainable, "train LoRA r=8, as section 2 does"
rescorer = CrossEncoderScorer(answer["model"], tokenizer, data, history_for_test(split), profile.max_length, profile.max_history_items,
                              device=device, amp_dtype=amp)
rescored = evaluate(rescorer, eval_set, "sampled", per_user=True)["per_user"]["AUC"].to_numpy()
assert np.allclose(np.asarray(answer["per_user"]["AUC"], dtype=float), rescored, atol=1e-6), \
    "per_user must be the handed-in model's scores on eval_set, the test users of section 2"
assert np.allclose(np.asarray(answer["reference"]["AUC"], dtype=float), results["LoRA r=8"]["per_user"]["AUC"].to_numpy()), \
    "compare with LoRA at its own rate: results['LoRA r=8']['per_user']"
