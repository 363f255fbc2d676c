"""Parameter-efficient fine-tuning of the cross-encoder with the ``peft`` library.

Taught in notebook ``10_peft``.

Full fine-tuning updates all ~22M weights of MiniLM and keeps two AdamW moments for each.
PEFT freezes the pretrained weights and trains a small add-on:

- **LoRA**: each chosen weight ``W`` becomes ``W + (alpha / r)·B·A`` with ``A`` (r × d) and ``B``
  (d × r) trained, ``B`` starting at zero; after training ``B·A`` can be **merged** into ``W``, so
  inference costs nothing extra;
- **prefix tuning**: trained key/value vectors prepended to every attention layer;
- **IA3**: trained vectors that rescale keys, values and feed-forward activations (fewest parameters);
- **AdaLoRA**: LoRA in SVD form ``P·Λ·Q`` that starts at rank ``init_r`` and, during training, prunes the
  least important singular values so that the *average* rank ends at ``target_r`` — layers that matter
  keep more rank (it needs the number of training steps up front, and a call after every optimizer step:
  :func:`adalora_training`);
- **bottleneck adapters** (Houlsby et al., 2019): small down-/up-projections inserted after each
  attention and feed-forward block — hand-written in :mod:`recbook.finetune.adapters`, not from ``peft``.

The cross-encoder's scoring head is always trained (it is new). LoRA, prefix tuning, IA3 and AdaLoRA
wrap ``peft``; nothing of the library is re-implemented.

Memory is measured per method in a **fresh process** (:func:`measure_in_fresh_process`): the peak resident
memory of a process that has already built and trained other models says little about the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from recbook.perf.timing import peak_memory, read_memory_status

PEFT_LIBRARY_METHODS = ("lora", "prefix", "ia3", "adalora")  # built by the `peft` library
METHODS = PEFT_LIBRARY_METHODS + ("adapter",)  # "adapter": recbook.finetune.adapters, hand-written


def peft_config(method: str, r: int = 8, alpha: int = 16, dropout: float = 0.1, target_modules=None, num_virtual_tokens: int = 16,
                total_step: int | None = None, init_r: int = 12, target_r: int = 8, tinit: int | None = None, tfinal: int | None = None,
                deltaT: int = 1, orth_reg_weight: float = 0.5):
    """The ``peft`` config for ``method`` on a BERT encoder (attention module names ``query``/``key``/``value``).

    AdaLoRA (``"adalora"``) needs ``total_step``, the number of optimizer steps it will be trained for: its rank
    budget falls from ``init_r`` to ``target_r`` per matrix (on average) between step ``tinit`` (default 10% of the
    steps) and step ``total_step - tfinal`` (default: the last 20% train with the final ranks); ``orth_reg_weight``
    weighs its orthogonality penalty (:func:`adalora_orthogonality_penalty`).
    """
    if method == "adapter":
        raise ValueError("the bottleneck adapter is not a `peft` method: it is hand-written in recbook.finetune.adapters; "
                         "use apply_peft(model, 'adapter') or recbook.finetune.adapters.add_adapters(model)")
    if method not in PEFT_LIBRARY_METHODS:
        raise ValueError(f"unknown PEFT method {method!r}; choose one of {', '.join(METHODS)}")
    from peft import AdaLoraConfig, IA3Config, LoraConfig, PrefixTuningConfig, TaskType

    if method == "adalora":
        if total_step is None or isinstance(total_step, bool) or int(total_step) != total_step or total_step < 3:
            raise ValueError(f"AdaLoRA needs total_step= (the number of optimizer steps it will train for, >= 3), got {total_step!r}")
        total_step = int(total_step)
        tinit = max(1, total_step // 10) if tinit is None else tinit
        tfinal = max(1, total_step // 5) if tfinal is None else tfinal
        if not 0 <= tinit < total_step - tfinal:
            raise ValueError(f"AdaLoRA's schedule needs 0 <= tinit < total_step - tfinal, got tinit={tinit}, tfinal={tfinal}, "
                             f"total_step={total_step}")
        return AdaLoraConfig(init_r=init_r, target_r=target_r, tinit=tinit, tfinal=tfinal, deltaT=deltaT, total_step=total_step,
                             orth_reg_weight=orth_reg_weight,
                             lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules or ["query", "value"]),
                             task_type=TaskType.FEATURE_EXTRACTION)
    if method == "lora":
        return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules or ["query", "value"]),
                          task_type=TaskType.FEATURE_EXTRACTION)
    if method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=num_virtual_tokens, task_type=TaskType.FEATURE_EXTRACTION)
    if method == "ia3":
        return IA3Config(target_modules=list(target_modules or ["key", "value", "output.dense"]),
                         feedforward_modules=["output.dense"], task_type=TaskType.FEATURE_EXTRACTION)
    raise AssertionError(method)  # pragma: no cover


def apply_peft(model, method: str = "lora", **kwargs):
    """Wrap ``model.encoder`` (a cross-encoder's or two-tower's) with a PEFT adapter, in place; return ``model``.

    Only the adapter (and a cross-encoder's head) stay trainable. ``method="adapter"`` inserts the hand-written
    bottleneck adapters of :mod:`recbook.finetune.adapters` instead (``kwargs`` go to :func:`recbook.finetune.adapters.add_adapters`);
    the other methods' ``kwargs`` go to :func:`peft_config` (AdaLoRA needs ``total_step=``).
    """
    if not hasattr(model, "encoder"):
        raise TypeError(f"{type(model).__name__} has no .encoder to adapt")
    if method == "adapter":
        from recbook.finetune.adapters import add_adapters

        return add_adapters(model, **kwargs)
    from peft import get_peft_model

    model.encoder = get_peft_model(model.encoder, peft_config(method, **kwargs))
    return model


def _adalora_tuner(model):
    from peft import PeftModel

    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, PeftModel) or encoder.peft_config["default"].peft_type.value != "ADALORA":
        raise ValueError("the model's encoder has no AdaLoRA adapter (apply_peft(model, 'adalora', total_step=...) first)")
    return encoder.base_model


def adalora_orthogonality_penalty(model) -> torch.Tensor:
    """AdaLoRA's regulariser: mean over adapted matrices of ``‖P·Pᵀ − I‖_F`` (for ``lora_A``) and ``‖Qᵀ·Q − I‖_F``
    (for ``lora_B``), which keeps the SVD factors near-orthogonal so that ``Λ`` (``lora_E``) ranks directions."""
    _adalora_tuner(model)
    terms = []
    for name, p in model.encoder.named_parameters():
        if p.requires_grad and ("lora_A" in name or "lora_B" in name):
            cov = p @ p.T if "lora_A" in name else p.T @ p
            terms.append(torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)))
    return torch.stack(terms).mean()


@contextmanager
def adalora_training(model):
    """Give AdaLoRA what ``peft`` expects of a training loop, around :func:`recbook.training.loop.train_model`::

        with adalora_training(model):
            train_model(model, loader, config)

    1. after every optimizer step (while the gradients still exist), ``update_and_allocate(step)``: update the
       importance scores and mask the least important singular values to the scheduled budget;
    2. the orthogonality penalty (weight ``orth_reg_weight`` of the config) added to ``model.training_loss`` —
       ``peft`` adds it only when the wrapped model returns a loss itself, and our encoder does not.

    Step 1 uses a PyTorch optimizer post-step hook, active only inside the ``with`` block and only for an
    optimizer that holds this model's parameters. Yields a dict whose ``steps`` counts the allocations.
    """
    from torch.optim.optimizer import register_optimizer_step_post_hook

    tuner = _adalora_tuner(model)
    weight = tuner.peft_config["default"].orth_reg_weight
    ours = {id(p) for p in model.parameters() if p.requires_grad}
    state = {"steps": 0}

    def after_step(optimizer, args, kwargs):
        if any(id(p) in ours for group in optimizer.param_groups for p in group["params"]):
            tuner.update_and_allocate(state["steps"])
            state["steps"] += 1

    plain_loss = model.training_loss
    model.training_loss = lambda batch: plain_loss(batch) + weight * adalora_orthogonality_penalty(model)
    handle = register_optimizer_step_post_hook(after_step)
    try:
        yield state
    finally:
        handle.remove()
        del model.training_loss  # back to the class's method


def adalora_ranks(model) -> dict[str, int]:
    """The rank each AdaLoRA-adapted matrix has now: its non-zero singular values (``lora_E``), by module name."""
    _adalora_tuner(model)
    return {name.split(".lora_E")[0].replace("base_model.model.", ""): int((p != 0).sum())
            for name, p in model.encoder.named_parameters() if "lora_E" in name}


def token_types_reaching_bert(model, batch: dict) -> torch.Tensor | None:
    """The token-type (segment) ids that BERT's embedding layer actually receives when ``model`` scores ``batch``.

    ``None`` means BERT was given none and used its default, all zeros (segment A). ``peft``'s prompt-learning
    methods (prefix tuning) drop ``token_type_ids`` before calling BERT, so history and candidate are then one
    segment; LoRA, IA3 and AdaLoRA pass them through.
    """
    seen = {}
    embeddings = next((m for n, m in model.named_modules() if n.endswith("embeddings.token_type_embeddings")), None)
    if embeddings is None:
        raise TypeError(f"{type(model).__name__} has no BERT token_type_embeddings")

    def record(module, inputs, output):  # returns None: the output is left as it is
        seen.setdefault("ids", inputs[0].detach().clone())

    handle = embeddings.register_forward_hook(record)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    finally:
        handle.remove()
        model.train(was_training)
    return seen.get("ids")


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


def time_train_steps(model, batches, steps: int = 5, lr: float = 1e-4, device: str = "cpu", amp_dtype=None) -> dict:
    """Median seconds per optimizer step and peak memory over ``steps`` steps (after one warm-up step)."""
    from recbook.training.loop import parameter_groups

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


# ------------------------------------------------------------- memory, one fresh process per method
_MARKER = "RECBOOK_MEASUREMENT "


def measure_in_fresh_process(method: str, method_kwargs: dict | None = None, model_name_or_path=None, steps: int = 3,
                             batch_size: int = 16, seq_len: int = 64, lr: float = 1e-4, threads: int | None = None,
                             device: str = "cpu", amp: str = "off", timeout: float = 600.0) -> dict:
    """Build a cross-encoder trained with ``method`` (``"full"`` or one of :data:`METHODS`) in a **new Python process**,
    run ``steps`` training steps (after one warm-up) on random token batches of ``batch_size × seq_len``, and return
    what that process measured:

    - ``rss_loaded_bytes``: resident memory once the libraries and the model are loaded (before training);
    - ``peak_bytes``: peak memory over the training steps (peak resident set on a CPU, ``peak_how`` says how);
    - ``training_bytes``: ``peak_bytes − rss_loaded_bytes`` (CPU) — what training added: gradients, optimizer
      state, activations;
    - ``step_seconds`` (median), ``trainable`` and ``total`` parameters, ``method``, ``pid``.

    A process that has built and trained other models keeps their memory (and its peak), so only a fresh process
    measures one method alone. Every child imports the same libraries (``peft`` included), so their baselines match.
    Memory depends on the shapes, not on the tokens, hence random ids. AdaLoRA's ``total_step`` defaults to the
    measured steps. ``amp`` is the training loop's setting (``"auto"``, ``"bf16"``, ``"fp16"``, ``"off"``): autocast
    changes the activations' size, so measure with the precision you train in. ``threads``: PyTorch threads in the
    child (default: this process's count). Raises ``RuntimeError`` with the child's last error lines when it fails or times out.
    Taught in notebook ``10_peft``.
    """
    if method != "full" and method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose 'full' or one of {', '.join(METHODS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")
    spec = {"method": method, "kwargs": dict(method_kwargs or {}), "model": None if model_name_or_path is None else str(model_name_or_path),
            "steps": steps, "batch_size": int(batch_size), "seq_len": int(seq_len), "lr": lr, "device": device, "amp": amp,
            "threads": int(threads or torch.get_num_threads())}
    code = "import sys; from recbook.finetune.peft import _measure_here; _measure_here(sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"measuring {method!r} in a fresh process did not finish within {timeout:g} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARKER)]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"measuring {method!r} in a fresh process failed (exit code {done.returncode}); its last lines:\n{tail}")
    return json.loads(lines[-1][len(_MARKER):])


def _random_batches(n: int, batch_size: int, seq_len: int, vocab: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    half = seq_len // 2
    types = torch.cat([torch.zeros(batch_size, half, dtype=torch.long), torch.ones(batch_size, seq_len - half, dtype=torch.long)], 1)
    return [{"input_ids": torch.randint(1000, vocab, (batch_size, seq_len), generator=g), "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
             "token_type_ids": types, "labels": (torch.arange(batch_size) % 2).float()} for _ in range(n)]


def _measure_here(spec_json: str) -> None:
    """The child of :func:`measure_in_fresh_process`: measure, then print one marked JSON line."""
    import resource

    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    import peft  # noqa: F401 — every child loads the same libraries, whatever its method
    from transformers import AutoModel

    from recbook.models.backbone import resolve_model_path
    from recbook.models.cross_encoder import CrossEncoder
    from recbook.training.loop import autocast_dtype

    torch.manual_seed(0)
    model = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(spec["model"])))
    kwargs = dict(spec["kwargs"])
    if spec["method"] == "adalora":
        kwargs.setdefault("total_step", spec["steps"] + 1)
    if spec["method"] != "full":
        apply_peft(model, spec["method"], **kwargs)
    count = count_parameters(model)
    rss_loaded = read_memory_status("VmRSS")
    batches = _random_batches(spec["steps"] + 1, spec["batch_size"], spec["seq_len"], model.encoder.config.vocab_size)
    with adalora_training(model) if spec["method"] == "adalora" else nullcontext():
        result = time_train_steps(model, batches, steps=spec["steps"], lr=spec["lr"], device=spec["device"],
                                  amp_dtype=autocast_dtype(spec["amp"], spec["device"]))
    peak, how = result["peak_bytes"], result["peak_how"]
    if peak is None and spec["device"] == "cpu":  # no /proc (macOS): the process's lifetime peak
        scale = 1 if sys.platform == "darwin" else 1024
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "process lifetime peak RSS (getrusage)"
    out = {"method": spec["method"], "pid": os.getpid(), "trainable": count.trainable, "total": count.total,
           "rss_loaded_bytes": rss_loaded, "peak_bytes": peak, "peak_how": how,
           "training_bytes": None if peak is None or rss_loaded is None or spec["device"] != "cpu" else peak - rss_loaded,
           "step_seconds": result["step_seconds"], "batch_size": spec["batch_size"], "seq_len": spec["seq_len"],
           "amp": spec["amp"], "threads": torch.get_num_threads()}
    print(_MARKER + json.dumps(out), flush=True)
