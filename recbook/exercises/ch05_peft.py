"""Checkers of notebook 05_peft."""

from __future__ import annotations

from .core import _close, _exercise


@_exercise("05.lora_params", "05_peft", "Write lora_params(d_in, d_out, r, n_matrices): trainable parameters LoRA adds.")
def _lora_params(fn):
    for d_in, d_out, r, n in ((384, 384, 8, 12), (768, 3072, 4, 24), (10, 20, 1, 1)):
        expected = n * r * (d_in + d_out)
        got = fn(d_in, d_out, r, n)
        if got != expected:
            return False, f"for d_in={d_in}, d_out={d_out}, r={r}, {n} matrices: expected {expected}, got {got}. A is r×d_in, B is d_out×r."
    return True, "r·(d_in + d_out) per adapted matrix — tiny next to d_in·d_out."


@_exercise("05.merge", "05_peft", "Write merge(W, A, B, alpha, r): the merged weight W + (alpha / r)·B·A (torch tensors).")
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


@_exercise("05.adam_bytes", "05_peft", "Write adam_state_bytes(n_trainable): bytes of AdamW state for fp32 parameters.")
def _adam_bytes(fn):
    for n in (1, 74_113, 22_713_601):
        if fn(n) != 8 * n:
            return False, f"for {n} parameters expected {8 * n}: two fp32 moments (4 bytes each) per trainable parameter."
    return True, "8 bytes per trainable parameter: PEFT shrinks the optimizer state as much as the trainable count."
