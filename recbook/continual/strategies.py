"""Keeping a sequential recommender good over time: update strategies measured against retraining.

Taught in notebook ``18_continual`` (and used by ``python -m recbook update``).

The protocol is global-temporal (:func:`recbook.data.temporal_windows`): a model trained on the base period serves
window 1, is updated with window 1, serves window 2, and so on. Each strategy below is one way to do the update:

- ``frozen`` — never updated: what happens when nobody retrains;
- ``finetune`` — a few epochs on the new window only (its interactions are the targets; the older history is still
  read as context): cheap, but it may **forget** what older windows taught;
- ``replay`` — the same, plus a **reservoir** of past interactions replayed as extra targets (Algorithm R keeps a
  uniform sample of everything seen, in bounded memory);
- ``ewc`` — fine-tuning with the Elastic Weight Consolidation penalty ``λ/2 · Σ F_i (θ_i − θ*_i)²`` that holds
  the parameters the old data relied on (diagonal Fisher ``F``, scaled to mean 1) near their old values
  (Kirkpatrick et al. 2017);
- ``lora`` — a fresh LoRA adapter per window on the frozen base model (peft), merged for serving: tiny updates,
  but a frozen item table cannot learn items that did not exist when the base was trained;
- ``lora_continue`` — one LoRA adapter that keeps training window after window (what the previous window taught is
  kept), merged into a copy for serving;
- ``retrain`` — a fresh model on everything known, with the base model's recipe, stopped early on validation: the
  reference.

**Held-out events** (:meth:`Stream.hold_out`): a random share of the interactions is never a training target of any
strategy — ``valid`` events choose settings (early stopping of ``retrain`` and the base model, and
:func:`~recbook.continual.experiment.tune_updates`' grid of replay size, EWC λ and LoRA rank), ``test`` events measure forgetting. Measuring
forgetting on events a strategy trained on (its replay buffer included) would reward re-fitting what is scored —
the literature measures backward transfer on held-out data of each task (Lopez-Paz & Ranzato 2017; Chaudhry et
al. 2018).

Quality is measured on **every interaction of the next window** whose user has any history: the model (frozen at
the window's start) reads the user's live history up to that moment and ranks the whole catalogue (seen items
excluded); per-user means give confidence intervals. **Forgetting** on window ``j``: its quality on the held-out
``test`` events right after the model learned the window, minus the same after the last update, paired per user.
Cost: process CPU seconds of the update (``time.process_time``, every thread; validation passes included) and the
training targets processed. :func:`~recbook.continual.experiment.run_seeds` repeats everything with several seeds and :func:`~recbook.continual.experiment.seeds_table` reports
the spread.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from recbook.continual.retention import ReservoirBuffer, ewc_penalty, fisher_diagonal
from recbook.continual.stream import Stream, next_item_metrics, per_user, target_windows
from recbook.data.windows import WindowDataset
from recbook.errors import positive_int
from recbook.models.sequential import SequentialConfig, SequentialRecommender

STRATEGIES = ("frozen", "finetune", "replay", "ewc", "lora", "lora_continue", "retrain")
LORA_STRATEGIES = ("lora", "lora_continue")


@dataclass
class UpdateConfig:
    """The knobs of every strategy. The defaults are a starting point (and what ``recbook update`` uses);
    :func:`~recbook.continual.experiment.tune_updates` chooses epochs, replay size, EWC λ and LoRA rank on validation, as notebook 18 does."""

    epochs: int = 3  # epochs over the new window (finetune, replay, ewc, lora, lora_continue)
    retrain_epochs: int = 10  # most epochs of a fresh model on everything known (retrain, and the base model)
    patience: int | None = 2  # a fresh model stops after this many epochs without a better validation NDCG@10
    # (None = always retrain_epochs); used only where the stream holds validation events
    valid_per_user: int | None = 3  # validation events per user and period (the latest): bounds each validation pass
    lr: float = 1e-3
    batch_size: int = 64
    replay_size: int = 5000  # reservoir capacity: past target interactions kept
    replay_ratio: float = 1.0  # replayed interactions per new one (at most the reservoir)
    ewc_lambda: float = 1.0  # EWC penalty weight (the Fisher is scaled to mean 1)
    ewc_batches: int = 20  # batches of known data used to estimate the Fisher
    lora_rank: int = 8
    lora_lr: float = 1e-2  # adapters start at zero and hold few parameters: they need a larger step than full fine-tuning
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "retrain_epochs", "batch_size", "ewc_batches", "lora_rank", "patience", "valid_per_user"):
            value = getattr(self, name)
            if value is None and name in ("patience", "valid_per_user"):
                continue
            setattr(self, name, positive_int(value, f"UpdateConfig.{name}"))
        if isinstance(self.replay_size, bool) or not isinstance(self.replay_size, int) or self.replay_size < 0:
            raise ValueError(f"UpdateConfig.replay_size must be a non-negative integer, got {self.replay_size!r}")
        for name in ("lr", "lora_lr", "replay_ratio", "ewc_lambda"):
            positive = name in ("lr", "lora_lr")
            value = getattr(self, name)
            if not value >= 0 or (positive and value == 0):
                raise ValueError(f"UpdateConfig.{name} must be {'positive' if positive else 'non-negative'}, got {value}")


# ------------------------------------------------------------------ training
class _WithPenalty(torch.nn.Module):
    def __init__(self, model, penalty):
        super().__init__()
        self.model, self.penalty = model, penalty

    def training_loss(self, batch):
        return self.model.training_loss(batch) + self.penalty(self.model)


def train_on(model: SequentialRecommender, windows: dict, epochs: int, config: UpdateConfig, penalty=None, lr: float | None = None,
             stream: "Stream | None" = None, valid_events=None) -> dict:
    """Train ``model`` in place on ``windows`` for ``epochs`` with the course's loop; returns CPU seconds, wall seconds,
    the number of training targets processed and the epochs run.

    With ``valid_events`` (and ``config.patience``), the model is scored on them (NDCG@10 per user, averaged) after
    every epoch, stops after ``patience`` epochs without improvement and keeps its best epoch's weights."""
    from recbook.training.loop import TrainConfig, train_model

    if valid_events and stream is None:
        raise ValueError("train_on: valid_events need the stream they come from (pass stream=...)")
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), batch_size=config.batch_size, shuffle=True, generator=generator)
    early = bool(valid_events) and config.patience is not None
    train_config = TrainConfig(epochs=epochs, lr=lr or config.lr, weight_decay=0.01, warmup_ratio=0.0, grad_clip=1.0, amp="off",
                               keep_best=early, patience=config.patience if early else None, progress=False,
                               seed=config.seed, device="cpu")
    module = model if penalty is None else _WithPenalty(model, penalty)

    def evaluate_fn(_):
        return {"NDCG@10": validation_score(model, stream, valid_events)}

    cpu, wall = time.process_time(), time.perf_counter()
    result = train_model(module, loader, train_config, evaluate_fn=evaluate_fn if early else None)
    model.eval()
    per_epoch = len(loader)
    run = min(epochs, -(-result.steps // per_epoch)) if per_epoch else epochs
    cost = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "examples": int((windows["target"] > 0).sum()) * run, "epochs": run}
    # without validation the last epoch is the one kept; valid_ndcg is then NaN (nothing was scored)
    cost["best_epoch"] = (-(-int(result.best_step) // per_epoch) if result.best_step else run) if early else run
    cost["valid_ndcg"] = float(result.best_metric) if early else float("nan")
    return cost


def validation_score(model: SequentialRecommender, stream: "Stream", events, metric: str = "NDCG@10") -> float:
    """Mean over users of ``metric`` on ``events`` (each user's mean first, so heavy users do not dominate)."""
    return float(per_user(next_item_metrics(model, stream, events))[metric].mean())


def _mark_known(model: SequentialRecommender, rows: dict) -> None:
    known = model.known_items.clone()
    for r in rows.values():
        known[torch.as_tensor(r)] = True
    known[0] = False
    model.known_items.copy_(known)


def fit_base(stream: Stream, end: int, n_items: int, model_config: SequentialConfig | None = None,
             config: UpdateConfig | None = None, text_features=None, valid_events=None) -> tuple[SequentialRecommender, dict]:
    """A fresh causal model trained on every trainable interaction before ``end`` (:meth:`Stream.trainable`) for at
    most ``config.retrain_epochs`` — the base model, and what ``retrain`` does at every update. With
    ``valid_events`` it stops early on them (``config.patience``) and keeps its best epoch."""
    config = config or UpdateConfig()
    model_config = model_config or SequentialConfig()
    if model_config.objective != "causal":
        raise ValueError("continual updates are implemented for the causal (SASRec) objective; got objective="
                         f"{model_config.objective!r}")
    torch.manual_seed(config.seed)
    known = stream.upto(end)
    flags = np.zeros(n_items, dtype=bool)
    for r in known.values():
        flags[r - 1] = True
    model = SequentialRecommender(n_items, model_config, text_features, flags)
    targets = stream.trainable_upto(end)
    cost = train_on(model, target_windows(stream, targets, model_config.max_len), config.retrain_epochs, config,
                    stream=stream, valid_events=valid_events)
    return model, cost


def _lora_adapter(base: SequentialRecommender, config: UpdateConfig):
    from peft import LoraConfig, get_peft_model

    targets = ["qkv", "proj", "mlp.0", "mlp.2"]
    return get_peft_model(copy.deepcopy(base), LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank,
                                                          target_modules=targets, lora_dropout=0.0))


# ------------------------------------------------------------------ one strategy, one update
@dataclass
class UpdateState:
    """What a strategy carries from one update to the next."""

    model: SequentialRecommender
    base: SequentialRecommender
    buffer: ReservoirBuffer | None = None
    fisher: dict | None = None
    adapter: object | None = None  # lora_continue: the LoRA model that keeps training


def start_state(strategy: str, base: SequentialRecommender, stream: Stream, base_end: int, config: UpdateConfig) -> UpdateState:
    """The state a strategy starts from: the base model (copied), a reservoir filled with the base period's
    interactions for ``replay``, the Fisher of the base period for ``ewc``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    state = UpdateState(copy.deepcopy(base), base)
    known = stream.trainable_upto(base_end)
    if strategy == "replay":
        state.buffer = ReservoirBuffer(config.replay_size, config.seed)
        state.buffer.add(known)
    if strategy == "ewc":
        windows = target_windows(stream, known, base.config.max_len)  # every trainable base-period interaction a target
        state.fisher = fisher_diagonal(state.model, windows, config.ewc_batches, config.batch_size, config.seed)
    return state


def update(strategy: str, state: UpdateState, stream: Stream, start: int, end: int, config: UpdateConfig) -> dict:
    """Update ``state.model`` with the interactions in ``[start, end)`` by ``strategy``; returns the cost (``cpu_s``,
    ``wall_s``, ``examples``, and for trained updates ``epochs``, ``best_epoch`` and ``valid_ndcg`` — see
    :func:`train_on`). ``frozen`` does nothing."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    none = {"cpu_s": 0.0, "wall_s": 0.0, "examples": 0}
    if strategy == "frozen":
        return none
    max_len = state.model.config.max_len
    new = stream.trainable(stream.events(start, end))
    if strategy == "retrain":  # stopped early on the newest window's validation events, when the stream holds some
        text = state.model.text_features[1:-1].numpy() if hasattr(state.model, "text_features") else None
        valid = stream.held_out("valid", start, end, config.valid_per_user)
        state.model, cost = fit_base(stream, end, state.model.n_items, state.model.config, config, text, valid_events=valid)
        return cost
    if not new:
        return none
    if strategy not in LORA_STRATEGIES:
        _mark_known(state.model, stream.upto(end))
    if strategy == "finetune":
        return train_on(state.model, target_windows(stream, new, max_len), config.epochs, config)
    if strategy == "replay":
        replayed = state.buffer.sample(int(round(config.replay_ratio * len(new))))
        cost = train_on(state.model, target_windows(stream, new + replayed, max_len), config.epochs, config)
        state.buffer.add(new)
        return cost
    if strategy == "ewc":
        anchor = {n: p.detach().clone() for n, p in state.model.named_parameters()}
        windows = target_windows(stream, new, max_len)
        cost = train_on(state.model, windows, config.epochs, config, penalty=ewc_penalty(anchor, state.fisher, config.ewc_lambda))
        cpu = time.process_time()
        fresh = fisher_diagonal(state.model, windows, config.ewc_batches, config.batch_size, config.seed)
        state.fisher = {n: 0.5 * (state.fisher[n] + fresh[n]) for n in state.fisher}  # old and new windows both count
        cost["cpu_s"] += time.process_time() - cpu
        return cost
    # lora: a fresh adapter on the frozen base each window; lora_continue: the same adapter keeps training
    if strategy == "lora" or state.adapter is None:
        state.adapter = _lora_adapter(state.base, config)
    cost = train_on(state.adapter, target_windows(stream, new, max_len), config.epochs, config, lr=config.lora_lr)
    state.model = copy.deepcopy(state.adapter).merge_and_unload().eval()  # merged into a copy for serving
    return cost
