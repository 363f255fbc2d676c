"""Checkers of notebook 10_peft."""

from __future__ import annotations

from recbook_course.exercises.core import _close, _exercise


@_exercise("10.lora_params", "10_peft", "Write lora_params(d_in, d_out, r, n_matrices): trainable parameters LoRA adds.")
def _lora_params(fn):
    for d_in, d_out, r, n in ((384, 384, 8, 12), (768, 3072, 4, 24), (10, 20, 1, 1)):
        expected = n * r * (d_in + d_out)
        got = fn(d_in, d_out, r, n)
        if got != expected:
            return False, f"for d_in={d_in}, d_out={d_out}, r={r}, {n} matrices: expected {expected}, got {got}. A is r×d_in, B is d_out×r."
    return True, "r·(d_in + d_out) per adapted matrix — tiny next to d_in·d_out."


@_exercise("10.merge", "10_peft", "Write merge(W, A, B, alpha, r): the merged weight W + (alpha / r)·B·A (torch tensors).")
def _merge(fn):
    import torch

    g = torch.Generator().manual_seed(0)
    W, A, B = torch.randn(6, 5, generator=g), torch.randn(2, 5, generator=g), torch.randn(6, 2, generator=g)
    x = torch.randn(3, 5, generator=g)
    got = fn(W.clone(), A, B, 16, 2)
    lora_out = x @ W.T + (16 / 2) * (x @ A.T @ B.T)
    if tuple(got.shape) != (6, 5):
        return False, f"the merged weight has W's shape (6, 5), got {tuple(got.shape)}."
    if not _close((x @ got.T).numpy(), lora_out.numpy(), 1e-4):
        return False, "x @ merged.T must equal x @ W.T + (alpha/r)·x @ A.T @ B.T."
    return True, "merged inference is exactly the adapter's output, at the base model's cost."


@_exercise("10.adam_bytes", "10_peft", "Write adam_state_bytes(n_trainable): bytes of AdamW state for fp32 parameters.")
def _adam_bytes(fn):
    for n in (1, 74_113, 22_713_601):
        if fn(n) != 8 * n:
            return False, f"for {n} parameters expected {8 * n}: two fp32 moments (4 bytes each) per trainable parameter."
    return True, "8 bytes per trainable parameter: PEFT shrinks the optimizer state as much as the trainable count."


@_exercise("10.lora_lr", "10_peft",
           "Train LoRA r=8 again at full fine-tuning's learning rate, score the same test users and compare its per-user AUC with "
           "LoRA at its own learning rate (paired, the low rate first); give the verdict.")
def _lora_lr(answer):
    from recbook.finetune.peft import count_parameters
    from recbook_course.exercises.common import _dict_with, _paired_interval, _per_user_tables

    hint = _dict_with(answer, ("model", "lr", "per_user", "reference", "diff_low", "diff_high", "verdict"))
    if hint:
        return False, hint
    try:
        count = count_parameters(answer["model"])
        lora_b = [p for n, p in answer["model"].named_parameters() if "lora_B" in n]
    except AttributeError:
        return False, "model must be the LoRA cross-encoder you trained (build(\"LoRA r=8\"), then train_model)."
    if not lora_b or count.trainable >= 0.05 * count.total:
        return False, (f"model trains {count.trainable:,} of {count.total:,} parameters and has {len(lora_b)} LoRA B matrices: "
                       "build it with build(\"LoRA r=8\").")
    if all(float(p.detach().abs().max()) == 0 for p in lora_b):
        return False, "every LoRA B matrix is still zero, as LoRA initialises it: train the model before you score it."
    if not float(answer["lr"]) < 1e-3:
        return False, f"lr is {answer['lr']:g}: use full fine-tuning's learning rate (LEARNING_RATES['full fine-tuning'] or the profile's)."
    hint = _per_user_tables(answer, "AUC", "evaluate(..., per_user=True)['per_user']")
    if hint:
        return False, hint
    hint, c = _paired_interval(answer["per_user"]["AUC"], answer["reference"]["AUC"], answer["diff_low"], answer["diff_high"],
                               answer["verdict"], "AUC, low lr − LoRA's lr", "paired_comparison(low, own), the low learning rate first")
    if hint:
        return False, hint
    said = {"lower": "the rate the adapters were given is part of the method: at full fine-tuning's rate the same budget leaves "
                     "LoRA behind",
            "higher": "the low rate came out ahead on these users — with this few users, check it on more before you believe it",
            "not shown": "these users cannot tell the two rates apart at this budget"}
    return True, (f"LoRA at lr {float(answer['lr']):g} against its own rate: AUC {c.diff.mean:+.3f} [{c.diff.low:+.3f}, "
                  f"{c.diff.high:+.3f}] over {len(answer['per_user'])} users — {said[answer['verdict']]}. B starts at zero, so "
                  "LoRA's update starts at zero and grows only as fast as the learning rate lets B grow; full fine-tuning "
                  f"moves all {count.total - count.trainable:,} pretrained weights a little, LoRA must move its {count.trainable:,} a lot. (Choosing the rate by this comparison would tune "
                  "on the test users; a project compares rates on validation users.)")
