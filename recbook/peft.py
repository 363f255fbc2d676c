"""Parameter-efficient fine-tuning of the cross-encoder with the ``peft`` library.

Taught in notebook ``05_peft``.

Full fine-tuning updates all ~22M weights of MiniLM and keeps two AdamW moments for each.
PEFT freezes the pretrained weights and trains a small add-on:

- **LoRA**: each chosen weight ``W`` becomes ``W + (alpha / r)·B·A`` with ``A`` (r × d) and ``B``
  (d × r) trained, ``B`` starting at zero; after training ``B·A`` can be **merged** into ``W``, so
  inference costs nothing extra;
- **prefix tuning**: trained key/value vectors prepended to every attention layer;
- **IA3**: trained vectors that rescale keys, values and feed-forward activations (fewest parameters).

The cross-encoder's scoring head is always trained (it is new). Everything here wraps ``peft``;
nothing is re-implemented.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

METHODS = ("lora", "prefix", "ia3")


def peft_config(method: str, r: int = 8, alpha: int = 16, dropout: float = 0.1, target_modules=None, num_virtual_tokens: int = 16):
    """The ``peft`` config for ``method`` on a BERT encoder (attention module names ``query``/``key``/``value``)."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, TaskType

    if method == "lora":
        return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules or ["query", "value"]),
                          task_type=TaskType.FEATURE_EXTRACTION)
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=num_virtual_tokens, task_type=TaskType.FEATURE_EXTRACTION)
    if method == "ia3":
        return IA3Config(target_modules=list(target_modules or ["key", "value", "output.dense"]),
                         feedforward_modules=["output.dense"], task_type=TaskType.FEATURE_EXTRACTION)
    raise ValueError(f"unknown PEFT method {method!r}; choose one of {', '.join(METHODS)}")


def apply_peft(model, method: str = "lora", **kwargs):
    """Wrap ``model.encoder`` (a cross-encoder's or two-tower's) with a PEFT adapter, in place; return ``model``.

    Only the adapter (and a cross-encoder's head) stay trainable.
    """
    from peft import get_peft_model

    if not hasattr(model, "encoder"):
        raise TypeError(f"{type(model).__name__} has no .encoder to adapt")
    model.encoder = get_peft_model(model.encoder, peft_config(method, **kwargs))
    return model


def merge_lora(model):
    """Fold LoRA's ``B·A`` into the frozen weights and drop the adapter: a plain model for inference."""
    from peft import PeftModel

    if not isinstance(model.encoder, PeftModel):
        raise ValueError("the model's encoder has no PEFT adapter to merge")
    if model.encoder.peft_config["default"].peft_type.value != "LORA":
        raise ValueError("only LoRA adapters can be merged into the weights")
    model.encoder = model.encoder.merge_and_unload()
    return model


@dataclass
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def optimizer_state_bytes(self, bytes_per_value: int = 4) -> int:
        """AdamW keeps two moments (exp_avg, exp_avg_sq) per trainable parameter."""
        return 2 * self.trainable * bytes_per_value


def count_parameters(model: torch.nn.Module) -> ParameterCount:
    """Trainable and total parameters (each tensor counted once)."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return ParameterCount(trainable, total)


def _read_peak_rss() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextmanager
def peak_memory(device: str = "cpu"):
    """Measure peak memory inside the ``with`` block: CUDA allocator peak on GPU; on Linux CPUs the
    process's peak resident set (reset through ``/proc/self/clear_refs``). Yields a dict filled on exit
    with ``peak_bytes`` (``None`` where it cannot be measured) and ``how``."""
    out: dict = {"peak_bytes": None, "how": "not measurable here"}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        yield out
        out.update(peak_bytes=torch.cuda.max_memory_allocated(), how="torch.cuda.max_memory_allocated")
        return
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets the peak RSS (VmHWM) of this process
        ok = True
    except OSError:
        ok = False
    yield out
    if ok:
        out.update(peak_bytes=_read_peak_rss(), how="process peak RSS (VmHWM), includes everything loaded")


def time_train_steps(model, batches, steps: int = 5, lr: float = 1e-4, device: str = "cpu", amp_dtype=None) -> dict:
    """Median seconds per optimizer step and peak memory over ``steps`` steps (after one warm-up step)."""
    from .train import parameter_groups

    model.to(device).train()
    opt = torch.optim.AdamW(parameter_groups(model, 0.01), lr=lr)
    it = iter(batches)
    times = []
    with peak_memory(device) as mem:
        for i in range(steps + 1):
            batch = {k: v.to(device) for k, v in next(it).items()}
            start = time.perf_counter()
            with torch.autocast(device_type=device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                loss = model.training_loss(batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:
                times.append(time.perf_counter() - start)
    times.sort()
    return {"step_seconds": times[len(times) // 2], "peak_bytes": mem["peak_bytes"], "peak_how": mem["how"]}
