"""The course's one training loop — read it top to bottom.

Taught in notebook ``04a_finetune_bert`` (and used by MF-BPR in ``03_baselines``).

A model plugs in by defining ``training_loss(batch) -> scalar tensor``; everything else is
configured in :class:`TrainConfig`:

- **AdamW** with no weight decay on biases and LayerNorm weights (decaying them only hurts);
- **linear warm-up, then linear decay** of the learning rate to 0;
- **gradient clipping** by global norm, and **gradient accumulation** (a large effective batch
  from small micro-batches);
- **mixed precision**: bf16 autocast on GPUs that support it, fp16 with a ``GradScaler`` on
  older ones; on a CPU only where it has native bf16 (AMX / AVX-512 BF16) — elsewhere it is
  emulated and slower than fp32 (notebook 00 measures it);
- **evaluation and early stopping** on a validation metric (and optionally a time budget),
  keeping the best weights;
- **checkpoints** in safetensors (no pickle: safe to load from anywhere) with the optimizer,
  scheduler and RNG state, so a run **resumes** exactly where it stopped;
- a tqdm bar, a ``history`` of losses/metrics for plots, and seeding.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .device import detect_device, seed_everything


@dataclass
class TrainConfig:
    """Every knob of :func:`train_model`.

    Early stopping: ``patience=p`` stops training at the ``p``-th evaluation in a row that does not beat the best
    (Keras, Hugging Face and Lightning count the same way); ``keep_best`` then restores the best weights.
    """

    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; stops early when reached
    lr: float = 5e-5
    head_lr: float | None = None  # learning rate of a new output layer named `head` (None = lr)
    weight_decay: float = 0.01
    decay_norm_and_bias: bool = False  # True = decay every parameter (e.g. embeddings-only models)
    warmup_ratio: float = 0.1
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    amp: str = "auto"  # "auto" | "bf16" | "fp16" | "off"
    eval_every: int | None = None  # optimizer steps between evaluations; None = end of each epoch
    metric: str = "NDCG@10"  # key of the dict evaluate_fn returns; higher is better
    patience: int | None = None  # stop after this many evaluations in a row without improvement; None = never stop early
    time_budget: float | None = None  # seconds: stop at the first evaluation after this much training time
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None  # also save every N optimizer steps (None = at evaluations / epoch ends)
    stop_after: int | None = None  # leave after N optimizer steps, schedule unchanged: simulates an interruption
    keep_best: bool = True  # restore the best-evaluated weights at the end
    seed: int = 0
    device: str | None = None
    progress: bool = True
    log_every: int = 10

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {self.amp!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"time_budget must be positive seconds, got {self.time_budget}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 (evaluations in a row without improvement) or None, got {self.patience}")


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one row per logged step / evaluation
    best_metric: float | None = None
    best_step: int | None = None
    steps: int = 0
    stopped_early: bool = False
    stop_reason: str | None = None  # "patience" or "time budget" when an evaluation ended training early
    seconds: float = 0.0
    examples: int = 0
    optimizer: object = field(default=None, repr=False)  # the AdamW used (its state, e.g. to count bytes)


# ------------------------------------------------------------------ pieces
def parameter_groups(model: torch.nn.Module, weight_decay: float, decay_norm_and_bias: bool = False,
                     head_lr: float | None = None) -> list[dict]:
    """AdamW groups: weight decay on weight matrices only — not on biases or LayerNorm/embedding-norm weights.

    ``head_lr``: parameters of a module named ``head`` (a new, randomly initialised output layer) get
    their own learning rate — they start from nothing, while the pretrained encoder needs small steps.
    """
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = decay_norm_and_bias or (p.ndim >= 2 and "norm" not in name.lower())
        head = head_lr is not None and "head" in name.split(".")[:-1]
        groups.setdefault((head, decay), []).append(p)
    out = []
    for head in (False, True):
        for decay in (True, False):
            if groups.get((head, decay)):
                group = {"params": groups[(head, decay)], "weight_decay": weight_decay if decay else 0.0}
                if head:
                    group["lr"] = head_lr
                out.append(group)
    return out


def warmup_linear_schedule(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate × step/warmup during warm-up, then linearly down to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_dtype(amp: str, device: str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full precision).

    ``"auto"``: on CUDA, bf16 where the GPU supports it, else fp16 (with a GradScaler); on a CPU,
    bf16 only when the CPU has native bf16 instructions (AMX-BF16 or AVX-512 BF16) — elsewhere
    bf16 is emulated and slower than fp32, so it stays off; on other devices, off.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    device = device.split(":")[0]  # "cuda:1" → "cuda"
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        from .device import cpu_features

        features = cpu_features()
        return torch.bfloat16 if features["AMX-BF16"] or features["AVX-512 BF16"] else None
    return None


def _autocast_device(device: str) -> str:
    """``torch.autocast`` wants a device *type*: ``cuda:1`` → ``cuda``; XLA autocasts as ``cpu`` here."""
    kind = device.split(":")[0]
    return "cpu" if kind == "xla" else kind


@contextmanager
def _gradient_sync(model, sync: bool):
    """Under gradient accumulation, data-parallel models skip the gradient all-reduce on all but the last
    micro-batch: DDP's ``no_sync()``, FSDP2's ``set_requires_gradient_sync``. A no-op for other models."""
    if sync:
        yield
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def _save_progress(config, model, optimizer, scheduler, result, epoch: int, micro_in_epoch: int) -> None:
    save_checkpoint(config.checkpoint_dir, model, optimizer, scheduler, {
        "step": result.steps, "epoch": epoch, "micro_in_epoch": micro_in_epoch, "history": result.history,
        "best_metric": result.best_metric, "best_step": result.best_step, "config": asdict(config)})


def _move(batch, device: str):
    if isinstance(batch, dict):
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return batch


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if torch.is_tensor(v) and v.ndim >= 1:
                return int(v.shape[0])
    return 0


# ------------------------------------------------------------- checkpoints
def save_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None, state: dict | None = None) -> Path:
    """Write model (and optimizer, scheduler, RNG, loop state) to ``folder`` as safetensors + JSON, atomically.

    Under ``torch.distributed`` every rank must call it: each rank's RNG state is gathered (dropout differs
    per rank, so exact resumption needs all of them) and rank 0 writes the files.
    """
    from safetensors.torch import save_file

    rng_states = _gather_rng_states()
    if rng_states is None:  # not rank 0
        return Path(folder)
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    meta: dict = {"state": state or {}}
    if optimizer is not None:
        opt = optimizer.state_dict()
        tensors = {}
        for idx, st in opt["state"].items():
            for key, value in st.items():
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu() if torch.is_tensor(value) else torch.tensor(value)
        for rank, rng in enumerate(rng_states):
            tensors[f"rng.torch.{rank}"] = rng
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta["param_groups"] = [{k: v for k, v in g.items()} for g in opt["param_groups"]]
    if scheduler is not None:
        meta["scheduler"] = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=1, default=float))
    _swap_in(tmp, folder)
    return folder


def _previous(folder: Path) -> Path:
    return folder.with_name(folder.name + ".previous")


def _swap_in(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by the complete ``tmp`` so that a crash at any point leaves one whole checkpoint: the old one
    is renamed aside first (``NAME.previous``, which :func:`load_checkpoint` falls back to) and deleted only after the
    new one is in place."""
    import shutil

    previous = _previous(folder)
    if folder.exists():
        if previous.exists():
            shutil.rmtree(previous)
        folder.rename(previous)
    tmp.rename(folder)
    if previous.exists():
        shutil.rmtree(previous)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _gather_rng_states() -> list[torch.Tensor] | None:
    """Every rank's CPU RNG state on rank 0 (``None`` on other ranks); just this process's without distributed."""
    import torch.distributed as dist

    rng = torch.get_rng_state()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [rng]
    states = [torch.empty_like(rng) for _ in range(dist.get_world_size())]
    dist.all_gather(states, rng)
    return states if dist.get_rank() == 0 else None


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Load what :func:`save_checkpoint` wrote; return the loop state dict.

    ``restore_rng=False`` leaves the RNG alone and returns this rank's saved state under ``"rng_state"``
    (the loop restores it at the exact point of the run where it was saved).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.exists() and (_previous(folder) / "model.safetensors").is_file():
        folder = _previous(folder)  # a save was interrupted between its two renames: the previous checkpoint is whole
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} holds no model.safetensors; pass a folder written by save_checkpoint")
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    meta = json.loads((folder / "trainer_state.json").read_text()) if (folder / "trainer_state.json").is_file() else {"state": {}}
    if optimizer is not None and (folder / "optimizer.safetensors").is_file():
        tensors = load_file(str(folder / "optimizer.safetensors"))
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("rng."):
                continue
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        rank = _rank()
        key = f"rng.torch.{rank}" if f"rng.torch.{rank}" in tensors else ("rng.torch.0" if "rng.torch.0" in tensors else "rng.torch")
        if restore_rng:
            torch.set_rng_state(tensors[key])
        else:
            meta["state"]["rng_state"] = tensors[key]
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})
    return meta["state"]


# -------------------------------------------------------------------- loop
def train_model(
    model: torch.nn.Module,
    batches: Iterable,
    config: TrainConfig,
    evaluate_fn: Callable[[torch.nn.Module], dict] | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` on ``batches`` (a DataLoader or any re-iterable of batches) with ``config``.

    ``model.training_loss(batch)`` must return the scalar loss of one micro-batch.
    ``evaluate_fn(model)`` returns a dict of validation metrics, called every ``eval_every``
    optimizer steps (or each epoch); ``config.metric`` decides early stopping and the best weights.
    ``resume_from`` continues a run from a checkpoint folder written by this loop.
    """
    if not hasattr(model, "training_loss"):
        raise TypeError(f"{type(model).__name__} has no training_loss(batch) method; the loop needs one")
    seed_everything(config.seed)
    device = config.device or detect_device()
    model.to(device)
    amp_dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    try:
        per_epoch = math.ceil(len(batches) / config.grad_accum)
    except TypeError:
        raise TypeError("batches must have a length (a DataLoader, or a list of batches)") from None
    if per_epoch == 0:
        raise ValueError("batches is empty: nothing to train on")
    total = per_epoch * config.epochs if config.max_steps is None else min(config.max_steps, per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay, config.decay_norm_and_bias, config.head_lr), lr=config.lr)
    scheduler = warmup_linear_schedule(optimizer, int(config.warmup_ratio * total), total)

    result = TrainResult()
    start_epoch, skip_micro, pending_rng = 0, 0, None
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, scheduler, restore_rng=False)
        result.history, result.steps = state.get("history", []), state.get("step", 0)
        result.best_metric, result.best_step = state.get("best_metric"), state.get("best_step")
        start_epoch, skip_micro = state.get("epoch", 0), state.get("micro_in_epoch", 0)
        # Saved mid-epoch, the RNG state is that of a run whose batch iterator already exists; creating the
        # iterator draws a random seed (DataLoader), so restore the state only after creating it.
        pending_rng = state.get("rng_state")
        if pending_rng is not None and skip_micro == 0:
            torch.set_rng_state(pending_rng)
            pending_rng = None
    best_state, bad_evals = None, 0

    def evaluate_and_maybe_stop(epoch: int, micro: int) -> bool:
        nonlocal best_state, bad_evals
        model.eval()
        with torch.no_grad():
            metrics = evaluate_fn(model)
        model.train()
        if config.metric not in metrics:
            raise KeyError(f"evaluate_fn returned {sorted(metrics)}, which lacks config.metric={config.metric!r}")
        value = float(metrics[config.metric])
        result.history.append({"step": result.steps, "epoch": epoch, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}})
        if result.best_metric is None or value > result.best_metric:
            result.best_metric, result.best_step, bad_evals = value, result.steps, 0
            if config.keep_best:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_evals += 1
        if config.checkpoint_dir:
            save_checkpoint(config.checkpoint_dir, model, optimizer, scheduler, {
                "step": result.steps, "epoch": epoch, "micro_in_epoch": micro, "history": result.history,
                "best_metric": result.best_metric, "best_step": result.best_step, "config": asdict(config)})
        out_of_time = config.time_budget is not None and time.perf_counter() - started > config.time_budget
        if config.patience is not None and bad_evals >= config.patience:
            result.stop_reason = "patience"
        elif out_of_time:
            result.stop_reason = "time budget"
        return result.stop_reason is not None

    model.train()
    started = time.perf_counter()
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=result.steps, desc="train", leave=True)
    running, running_n = 0.0, 0
    stop = result.steps >= total
    for epoch in range(start_epoch, config.epochs):
        if stop:
            break
        for holder in (batches, getattr(batches, "batch_sampler", None), getattr(batches, "sampler", None)):
            if hasattr(holder, "set_epoch"):
                holder.set_epoch(epoch)
        micro = 0
        for batch in batches:
            micro += 1
            if epoch == start_epoch and micro <= skip_micro:
                continue  # resuming: these micro-batches were already trained on
            if pending_rng is not None:
                torch.set_rng_state(pending_rng)
                pending_rng = None
            batch = _move(batch, device)
            last_micro = micro % config.grad_accum == 0 or micro == len(batches)
            # micro-batches in this accumulation group: grad_accum, or fewer in an epoch's last, partial group — the
            # gradient is the mean over the group's micro-batches either way
            group = min(config.grad_accum, len(batches) - (micro - 1) // config.grad_accum * config.grad_accum)
            with _gradient_sync(model, last_micro):
                with torch.autocast(device_type=_autocast_device(device), dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = model.training_loss(batch) / group
                (scaler.scale(loss) if scaler else loss).backward()
            running += loss.item() * group
            running_n += 1
            result.examples += _batch_size(batch)
            if micro % config.grad_accum and micro != len(batches):
                continue
            if config.grad_clip is not None:
                if scaler:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            if bar is not None:
                bar.update(1)
            if result.steps % config.log_every == 0 or result.steps == total:
                result.history.append({"step": result.steps, "epoch": epoch, "loss": running / running_n, "lr": scheduler.get_last_lr()[0]})
                if bar is not None:
                    bar.set_postfix(loss=f"{running / running_n:.4f}")
                running, running_n = 0.0, 0
            if evaluate_fn is not None and config.eval_every and result.steps % config.eval_every == 0:
                if evaluate_and_maybe_stop(epoch, micro):
                    result.stopped_early = True
                    stop = True
            if config.checkpoint_dir and config.checkpoint_every and result.steps % config.checkpoint_every == 0:
                finished_epoch = micro == len(batches)
                _save_progress(config, model, optimizer, scheduler, result, epoch + finished_epoch, 0 if finished_epoch else micro)
            if result.steps >= total or (config.stop_after is not None and result.steps >= config.stop_after):
                stop = True
            if stop:
                break
        if evaluate_fn is not None and not config.eval_every and not result.stopped_early:
            if evaluate_and_maybe_stop(epoch + 1, 0):
                result.stopped_early = True
                stop = True
        elif config.checkpoint_dir and evaluate_fn is None:
            finished_epoch = micro == len(batches)  # False when max_steps stopped the loop mid-epoch
            _save_progress(config, model, optimizer, scheduler, result, epoch + finished_epoch, 0 if finished_epoch else micro)
    if bar is not None:
        bar.close()
    if best_state is not None and config.keep_best:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    result.optimizer = optimizer
    return result
