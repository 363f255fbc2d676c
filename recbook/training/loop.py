"""The course's one training loop — read it top to bottom.

Taught in notebook ``06_finetune_bert`` (and used by MF-BPR in ``03_baselines``).

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
- **checkpoints** in safetensors (no pickle: safe to load from anywhere) with the optimizer, scheduler,
  GradScaler, best weights, early-stopping and RNG state, so a run **resumes** exactly where it stopped
  (:mod:`recbook.training.checkpoint`);
- a tqdm bar, a ``history`` of losses/metrics for plots, and seeding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recbook.perf.device import detect_device, seed_everything
from recbook.training.checkpoint import RunState


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
        from recbook.perf.device import cpu_features

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


def _set_epoch(batches, epoch: int) -> None:
    """Tell samplers that shuffle per epoch (``DistributedSampler``, ``LengthBucketBatchSampler``) which epoch it is."""
    for holder in (batches, getattr(batches, "batch_sampler", None), getattr(batches, "sampler", None)):
        if hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)


def _optimizer_step(model, optimizer, scheduler, scaler, grad_clip: float | None) -> None:
    """Clip the (unscaled) gradients, step AdamW (through the fp16 GradScaler, if any) and the schedule, zero the gradients."""
    if grad_clip is not None:
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


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
    ``resume_from`` continues a run from a checkpoint folder written by this loop (:mod:`recbook.training.checkpoint`).
    Every row of ``history`` says where it was taken: ``step``, ``epoch`` (whole epochs done) and ``micro``
    (micro-batches done of the next epoch).
    """
    if not hasattr(model, "training_loss"):
        raise TypeError(f"{type(model).__name__} has no training_loss(batch) method; the loop needs one")
    seed_everything(config.seed)
    device = config.device or detect_device()
    model.to(device)
    amp_dtype = autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    try:
        n = len(batches)  # micro-batches per epoch
    except TypeError:
        raise TypeError("batches must have a length (a DataLoader, or a list of batches)") from None
    if n == 0:
        raise ValueError("batches is empty: nothing to train on")
    per_epoch = math.ceil(n / config.grad_accum)
    total = per_epoch * config.epochs if config.max_steps is None else min(config.max_steps, per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay, config.decay_norm_and_bias, config.head_lr), lr=config.lr)
    scheduler = warmup_linear_schedule(optimizer, int(config.warmup_ratio * total), total)
    result = TrainResult(optimizer=optimizer)
    run = RunState(model, optimizer, scheduler, scaler, result, config)  # position, early stopping, RNG: what a checkpoint holds
    if resume_from is not None:
        run.resume(resume_from)

    def evaluate(where: dict) -> None:
        """Validate; keep the best weights; set ``stop_reason`` once patience or the time budget has run out."""
        model.eval()
        with torch.no_grad():
            metrics = evaluate_fn(model)
        model.train()
        if config.metric not in metrics:
            raise KeyError(f"evaluate_fn returned {sorted(metrics)}, which lacks config.metric={config.metric!r}")
        result.history.append({**where, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}})
        value = float(metrics[config.metric])
        if result.best_metric is None or value > result.best_metric:
            result.best_metric, result.best_step, run.bad_evals = value, result.steps, 0
            if config.keep_best:
                run.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            run.bad_evals += 1
        if config.patience is not None and run.bad_evals >= config.patience:
            result.stop_reason = "patience"
        elif config.time_budget is not None and time.perf_counter() - started > config.time_budget:
            result.stop_reason = "time budget"
        result.stopped_early = result.stop_reason is not None

    def after_step(epoch: int, micro: int) -> bool:
        """After an optimizer step, ``epoch`` whole epochs and ``micro`` micro-batches in: log, evaluate, checkpoint.
        Returns True when training must stop."""
        run.epoch, run.micro = epoch, micro
        where = {"step": result.steps, "epoch": epoch, "micro": micro}
        finished = result.steps >= total
        if bar is not None:
            bar.update(1)
        if result.steps % config.log_every == 0 or finished:
            result.history.append({**where, "loss": run.loss_sum / run.loss_n, "lr": scheduler.get_last_lr()[0]})
            if bar is not None:
                bar.set_postfix(loss=f"{run.loss_sum / run.loss_n:.4f}")
            run.loss_sum, run.loss_n = 0.0, 0
        evaluating = evaluate_fn is not None and (result.steps % config.eval_every == 0 if config.eval_every else micro == 0 or finished)
        if evaluating:
            evaluate(where)
        stop = finished or result.stopped_early or (config.stop_after is not None and result.steps >= config.stop_after)
        every = config.checkpoint_every and result.steps % config.checkpoint_every == 0
        if config.checkpoint_dir and (evaluating or micro == 0 or stop or every):
            run.save(config.checkpoint_dir)
        return stop

    model.train()
    started = time.perf_counter()
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=result.steps, desc="train", leave=True)
    stop = result.steps >= total or result.stopped_early  # a resumed run that had already ended
    for epoch in range(run.epoch, config.epochs):
        if stop:
            break
        _set_epoch(batches, epoch)
        for micro, batch in run.batches(batches, epoch):  # after a resume: from where the checkpoint was taken
            batch = _move(batch, device)
            end_of_group = micro % config.grad_accum == 0 or micro == n
            # micro-batches in this accumulation group: grad_accum, or fewer in an epoch's last, partial group — the
            # gradient is the mean over the group's micro-batches either way
            group = min(config.grad_accum, n - (micro - 1) // config.grad_accum * config.grad_accum)
            with _gradient_sync(model, end_of_group):
                with torch.autocast(device_type=_autocast_device(device), dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = model.training_loss(batch) / group
                (scaler.scale(loss) if scaler else loss).backward()
            run.loss_sum += loss.item() * group
            run.loss_n += 1
            result.examples += _batch_size(batch)
            if not end_of_group:
                continue
            _optimizer_step(model, optimizer, scheduler, scaler, config.grad_clip)
            result.steps += 1
            if micro < n and after_step(epoch, micro):  # an epoch's last step is handled once its batches are done
                stop = True
                break
        else:
            stop = after_step(epoch + 1, 0)
    if bar is not None:
        bar.close()
    if config.keep_best and run.best_weights is not None:
        model.load_state_dict(run.best_weights)
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------ did it learn?
def base_rate_loss(positive_share: float) -> float:
    """Binary cross-entropy (nats) of a model that knows nothing about a pair and predicts only the share of positives —
    the floor a pointwise classifier must get below before its scores mean anything."""
    if not 0 < positive_share < 1:
        raise ValueError(f"positive_share must be in (0, 1), got {positive_share}")
    p = positive_share
    return float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))


@dataclass(frozen=True)
class LossProgress:
    """How far a training loss moved, and whether that counts as having learned (see :func:`loss_progress`)."""

    learned: bool
    text: str


def loss_progress(first: float, last: float, steps: int, floor: float | None = None,
                  floor_label: str = "knowing nothing") -> LossProgress:
    """Judge a training loss by where it ended: with a ``floor`` (e.g. :func:`base_rate_loss`), it learned when it ended
    at least 10 % below that floor; without one (a softmax with a sampling correction has no single such level), when it
    fell at least 20 % from its first logged value. A model that has not learned ranks by its initial weights: the usual
    cause of a fine-tuned model losing to popularity on a small step budget (notebook 07)."""
    if floor is not None:
        learned = last < 0.9 * floor
        text = f"training loss {first:.3f} → {last:.3f} after {steps} steps, against {floor:.3f} for {floor_label}"
    else:
        learned = last < 0.8 * first
        text = f"training loss {first:.3f} → {last:.3f} after {steps} steps ({1 - last / first:.0%} lower)"
    return LossProgress(learned, text + (": it learned something" if learned else ": it has barely learned"))
