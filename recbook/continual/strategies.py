"""Keeping a sequential recommender good over time: update strategies measured against retraining.

Taught in notebook ``13_continual`` (and used by ``python -m recbook update``).

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
:func:`tune_updates`' grid of replay size, EWC λ and LoRA rank), ``test`` events measure forgetting. Measuring
forgetting on events a strategy trained on (its replay buffer included) would reward re-fitting what is scored —
the literature measures backward transfer on held-out data of each task (Lopez-Paz & Ranzato 2017; Chaudhry et
al. 2018).

Quality is measured on **every interaction of the next window** whose user has any history: the model (frozen at
the window's start) reads the user's live history up to that moment and ranks the whole catalogue (seen items
excluded); per-user means give confidence intervals. **Forgetting** on window ``j``: its quality on the held-out
``test`` events right after the model learned the window, minus the same after the last update, paired per user.
Cost: process CPU seconds of the update (``time.process_time``, every thread; validation passes included) and the
training targets processed. :func:`run_seeds` repeats everything with several seeds and :func:`seeds_table` reports
the spread.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recbook.continual.retention import ReservoirBuffer, ewc_penalty, fisher_diagonal
from recbook.data.splits import TemporalWindows
from recbook.data.windows import WindowDataset, _left_pad, user_sequences
from recbook.models.sequential import SequentialConfig, SequentialRecommender

STRATEGIES = ("frozen", "finetune", "replay", "ewc", "lora", "lora_continue", "retrain")
LORA_STRATEGIES = ("lora", "lora_continue")


@dataclass
class UpdateConfig:
    """The knobs of every strategy. The defaults are a starting point (and what ``recbook update`` uses);
    :func:`tune_updates` chooses epochs, replay size, EWC λ and LoRA rank on validation, as notebook 13 does."""

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
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UpdateConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.replay_size, bool) or not isinstance(self.replay_size, int) or self.replay_size < 0:
            raise ValueError(f"UpdateConfig.replay_size must be a non-negative integer, got {self.replay_size!r}")
        for name in ("lr", "lora_lr", "replay_ratio", "ewc_lambda"):
            positive = name in ("lr", "lora_lr")
            value = getattr(self, name)
            if not value >= 0 or (positive and value == 0):
                raise ValueError(f"UpdateConfig.{name} must be {'positive' if positive else 'non-negative'}, got {value}")


# ------------------------------------------------------------------ sequences and targets
@dataclass
class Stream:
    """Every user's interactions as 1-based catalogue rows and their times, oldest first (one global sort), and the
    events held out of training (:meth:`hold_out`)."""

    item_ids: np.ndarray
    rows: dict = field(default_factory=dict)  # user -> np.ndarray of 1-based rows
    times: dict = field(default_factory=dict)  # user -> np.ndarray of timestamps
    valid: frozenset = frozenset()  # (user, position) events that choose settings; never a training target
    test: frozenset = frozenset()  # (user, position) events that measure forgetting; never a training target

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, item_ids) -> "Stream":
        item_ids = np.asarray(item_ids)
        rows, times = user_sequences(interactions, pd.Series(np.arange(len(item_ids)), index=item_ids), with_times=True)
        return cls(item_ids, rows, times)

    def upto(self, end: int) -> dict:
        """Each user's rows before time ``end``."""
        out = {}
        for u, t in self.times.items():
            n = int(np.searchsorted(t, end, side="left"))
            if n:
                out[u] = self.rows[u][:n]
        return out

    def events(self, start: int, end: int) -> list[tuple]:
        """``(user, position)`` of every interaction in ``[start, end)``."""
        out = []
        for u, t in self.times.items():
            a, b = np.searchsorted(t, start, side="left"), np.searchsorted(t, end, side="left")
            out.extend((u, p) for p in range(int(a), int(b)))
        return out

    def hold_out(self, valid: float = 0.1, test: float = 0.1, seed: int = 0) -> "Stream":
        """A copy in which each interaction with a history is, at random, a ``valid`` event (share ``valid``), a
        ``test`` event (share ``test``) or a training target. Held-out events stay in the histories the models read
        (a later event's context); only their role as a target is removed. The draw depends on ``seed`` and the data
        alone, so every strategy and every model seed sees the same split."""
        for name, value in (("valid", valid), ("test", test)):
            if not 0 <= value < 1:
                raise ValueError(f"hold_out: {name} must be a share in [0, 1), got {value}")
        if valid + test >= 1:
            raise ValueError(f"hold_out: valid + test = {valid + test} leaves nothing to train on; keep it below 1")
        rng = np.random.default_rng(seed)
        chosen = {"valid": set(), "test": set()}
        for u in sorted(self.rows, key=str):
            draw = rng.random(len(self.rows[u]))
            for p in range(1, len(draw)):  # position 0 has no history: never a target, never scored
                if draw[p] < valid:
                    chosen["valid"].add((u, p))
                elif draw[p] < valid + test:
                    chosen["test"].add((u, p))
        return dataclasses.replace(self, valid=frozenset(chosen["valid"]), test=frozenset(chosen["test"]))

    def trainable_upto(self, end: int) -> list[tuple]:
        """Every trainable event (:meth:`trainable`) before time ``end``."""
        return self.trainable((u, p) for u, r in self.upto(end).items() for p in range(1, len(r)))

    def trainable(self, events) -> list[tuple]:
        """The events that may be training targets: a history before them, and not held out."""
        return [(u, p) for u, p in events if p >= 1 and (u, p) not in self.valid and (u, p) not in self.test]

    def held_out(self, role: str, start: int, end: int, per_user: int | None = None) -> list[tuple]:
        """The ``role`` (``"valid"`` or ``"test"``) events in ``[start, end)``, the latest ``per_user`` of each user."""
        if role not in ("valid", "test"):
            raise ValueError(f"role must be 'valid' or 'test', got {role!r}")
        chosen = getattr(self, role)
        return _latest_per_user([e for e in self.events(start, end) if e in chosen], per_user)


def _latest_per_user(events, per_user: int | None) -> list[tuple]:
    if per_user is None:
        return list(events)
    by_user: dict = {}
    for u, p in events:
        by_user.setdefault(u, []).append(p)
    return [(u, p) for u, ps in by_user.items() for p in sorted(ps)[-per_user:]]


def target_windows(stream: Stream, events, max_len: int) -> dict[str, torch.Tensor]:
    """Causal training windows whose **targets** are exactly ``events`` (``(user, position)`` pairs); every other
    position is context only (target 0 = ignored by the loss). One window per (user, block of ``max_len`` targets)."""
    by_user: dict = {}
    for u, p in events:
        if p >= 1:  # the first interaction of a user has no history to predict it from
            by_user.setdefault(u, []).append(p)
    inputs, targets = [], []
    for u, positions in by_user.items():
        seq = stream.rows[u]
        positions = np.unique(positions)
        while len(positions):
            end = int(positions[-1]) + 1  # the window ends at the newest remaining target
            start = max(0, end - max_len - 1)
            chunk = seq[start:end]
            inside = positions[positions >= start + 1]
            mask = np.zeros(len(chunk) - 1, dtype=bool)
            mask[inside - start - 1] = True
            inputs.append(_left_pad(chunk[:-1], max_len))
            targets.append(_left_pad(np.where(mask, chunk[1:], 0), max_len))
            positions = positions[positions < start + 1]
    if not inputs:
        raise ValueError("no target interaction has a history before it: nothing to train on")
    return {"input": torch.from_numpy(np.stack(inputs)), "target": torch.from_numpy(np.stack(targets))}


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


# ------------------------------------------------------------------ evaluation
def next_item_metrics(model: SequentialRecommender, stream: Stream, events, k: int = 10, batch_size: int = 512) -> pd.DataFrame:
    """NDCG@k and HR@k of every event (``(user, position)``) given the user's history before it, ranked against
    the whole catalogue minus the items in that history; one row per event with ``user_id``."""
    events = [(u, p) for u, p in events if p >= 1]
    if not events:
        return pd.DataFrame(columns=["user_id", "NDCG@10", "HR@10"])
    from recbook.evaluation.metrics import per_user_metrics

    rows = []
    model.eval()
    with torch.no_grad():
        table = model.item_table()
        for start in range(0, len(events), batch_size):
            chunk = events[start : start + batch_size]
            histories = [stream.rows[u][:p] for u, p in chunk]
            scores = model.logits(model.user_vectors(histories), table).float().numpy()
            rows_ = np.arange(len(chunk))
            target = np.array([stream.rows[u][p] - 1 for u, p in chunk])
            y_true = np.zeros(scores.shape, dtype=np.int8)
            y_true[rows_, target] = 1
            keep = np.ones(scores.shape, dtype=bool)
            for i, h in enumerate(histories):
                keep[i, h - 1] = False
            keep[rows_, target] = True  # a re-consumed item stays rankable (data with repeats)
            m = per_user_metrics(y_true, scores, k, keep)  # tie-averaged, as every evaluation of the course
            rows.append(pd.DataFrame({"user_id": [u for u, _ in chunk], f"NDCG@{k}": m[f"NDCG@{k}"], f"HR@{k}": m[f"HR@{k}"]}))
    return pd.concat(rows, ignore_index=True)


def per_user(metrics: pd.DataFrame, key=None) -> pd.DataFrame:
    """Per-user means of :func:`next_item_metrics` (one value per user, the unit of the confidence intervals);
    ``key`` (e.g. the window number) is prepended to the index so windows can be pooled without merging users."""
    out = metrics.groupby("user_id").mean()
    if key is not None:
        out.index = pd.MultiIndex.from_product([[key], out.index], names=["window", "user_id"])
    return out


def window_events(stream: Stream, windows: TemporalWindows, w: int, max_per_user: int | None = None) -> list[tuple]:
    """The evaluation events of window ``w``: its interactions with a history (optionally the last ``max_per_user``
    per user, to bound the cost)."""
    events = [(u, p) for u, p in stream.events(int(windows.bounds[w]), int(windows.bounds[w + 1])) if p >= 1]
    return _latest_per_user(events, max_per_user)


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


# ------------------------------------------------------------------ the whole experiment
@dataclass
class ContinualResult:
    """Everything :func:`run_strategies` measured (one model seed)."""

    next_window: dict  # strategy -> per-user next-window metrics, index (window, user_id)
    retention: dict  # strategy -> {(after_update, window): per-user metrics on the window's held-out test events}
    costs: pd.DataFrame  # one row per strategy × update: cpu_s, wall_s, examples, epochs, best_epoch, valid_ndcg
    n_windows: int
    seed: int = 0
    base_cost: dict = field(default_factory=dict)

    def served_after_update(self, strategy: str, from_window: int = 2) -> pd.DataFrame:
        """Next-window metrics of ``strategy`` on windows ``from_window`` … (default 2: window 1 is served by the base
        model for every strategy, so it only dilutes their differences)."""
        values = self.next_window[strategy]
        return values[values.index.get_level_values("window") >= from_window]

    def table(self, metric: str = "NDCG@10", reference: str = "retrain", n_boot: int = 2000, seed: int = 0,
              from_window: int = 2) -> pd.DataFrame:
        """One row per strategy: next-window quality with CI (windows ``from_window`` … pooled, one unit per user and
        window), its ratio to ``reference`` (paired, CI), forgetting on held-out events with CI, CPU seconds and
        training targets (``examples``) over all updates."""
        return seeds_table([self], metric, reference, n_boot, seed, from_window)

    def forgetting(self, strategy: str, metric: str = "NDCG@10") -> pd.Series:
        """Per (window, user): quality on window ``j``'s held-out test events right after learning the window minus
        after the last update (positive = forgotten)."""
        retention = self.retention.get(strategy, {})
        last = self.n_windows
        parts = []
        for j in range(1, last):
            after, final = retention.get((j, j)), retention.get((last, j))
            if after is None or final is None:
                continue
            joined = after[metric].to_frame("after").join(final[metric].to_frame("final"), how="inner")
            parts.append(joined["after"] - joined["final"])
        return pd.concat(parts) if parts else pd.Series(dtype=float)

    def by_window(self, metric: str = "NDCG@10") -> pd.DataFrame:
        """Mean next-window quality per strategy and window (for the plot)."""
        return pd.DataFrame({name: v[metric].groupby(level="window").mean() for name, v in self.next_window.items()})


def _over_seeds(series: list[pd.Series]) -> pd.Series:
    """Per-unit means over seeds (units present in every seed): the unit of the pooled intervals."""
    return pd.concat(series, axis=1, join="inner").mean(axis=1)


def pooled_next_window(results: list[ContinualResult], strategy: str, metric: str = "NDCG@10", from_window: int = 2) -> pd.Series:
    """``strategy``'s next-window ``metric`` per unit (user × window, windows ``from_window`` …), averaged over the
    seeds: what :func:`seeds_table` and paired comparisons over seeds resample."""
    return _over_seeds([r.served_after_update(strategy, from_window)[metric] for r in results])


def pooled_forgetting(results: list[ContinualResult], strategy: str, metric: str = "NDCG@10") -> pd.Series:
    """``strategy``'s forgetting per unit (user × window, on held-out test events), averaged over the seeds."""
    return _over_seeds([r.forgetting(strategy, metric) for r in results])


def seeds_table(results: list[ContinualResult], metric: str = "NDCG@10", reference: str = "retrain", n_boot: int = 2000,
                seed: int = 0, from_window: int = 2) -> pd.DataFrame:
    """One row per strategy over one or more seeds' results: next-window ``metric`` (each unit — a user in a window —
    averaged over the seeds) with its CI, the seeds' spread (``seed_sd``, ``seed_min``, ``seed_max`` of the per-seed
    means), the paired ratio to ``reference`` with CI, forgetting on held-out events (CI and seed spread), and the
    mean CPU seconds and training targets of one seed's updates."""
    from recbook.evaluation.stats import mean_ci, ratio_ci

    if not results:
        raise ValueError("seeds_table needs at least one ContinualResult")
    rows = []
    for name in results[0].next_window:
        per_seed = [r.served_after_update(name, from_window)[metric] for r in results]
        if any(v.empty for v in per_seed):
            raise ValueError(f"no window >= from_window={from_window} was served; there are {results[0].n_windows} windows")
        values = _over_seeds(per_seed)
        est = mean_ci(values, n_boot=n_boot, seed=seed)
        means = np.array([v.mean() for v in per_seed])
        row = {"strategy": name, metric: est.mean, "ci_low": est.low, "ci_high": est.high, "units": est.n, "seeds": len(results),
               "seed_sd": float(means.std(ddof=1)) if len(means) > 1 else 0.0, "seed_min": float(means.min()),
               "seed_max": float(means.max())}
        if reference in results[0].next_window and name != reference:
            ref = pooled_next_window(results, reference, metric, from_window)
            ratio = ratio_ci(values, ref, (name, reference), n_boot=n_boot, seed=seed)
            row.update({f"÷ {reference}": ratio.mean, "ratio_low": ratio.low, "ratio_high": ratio.high})
        forgetting = [r.forgetting(name, metric) for r in results]
        if all(len(f) for f in forgetting):
            f = mean_ci(_over_seeds(forgetting), n_boot=n_boot, seed=seed)
            f_means = np.array([x.mean() for x in forgetting])
            row.update(forgetting=f.mean, forgetting_low=f.low, forgetting_high=f.high,
                       forgetting_seed_sd=float(f_means.std(ddof=1)) if len(f_means) > 1 else 0.0)
        costs = [r.costs[r.costs["strategy"] == name] for r in results]
        row.update(cpu_s=float(np.mean([c["cpu_s"].sum() for c in costs])),
                   examples=int(np.mean([c["examples"].sum() for c in costs])))
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def run_strategies(stream: Stream, windows: TemporalWindows, base: SequentialRecommender, strategies=STRATEGIES,
                   config: UpdateConfig | None = None, max_per_user: int | None = None, progress: bool = True) -> ContinualResult:
    """Run every strategy through all update windows from the same ``base`` model (trained before window 1).

    At step ``w``: evaluate on window ``w`` (next-window quality), update with window ``w``, then score the held-out
    test events of windows ``1 … w`` (retention, for forgetting). ``stream`` must hold test events
    (:meth:`Stream.hold_out`)."""
    from tqdm.auto import tqdm

    config = config or UpdateConfig()
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    if not stream.test:
        raise ValueError("the stream holds no held-out test events, so forgetting would be measured on training targets; "
                         "pass stream.hold_out(valid=..., test=...)")
    bounds = [int(b) for b in windows.bounds]
    events = {w: window_events(stream, windows, w, max_per_user) for w in range(1, windows.n_windows + 1)}
    tests = {w: stream.held_out("test", bounds[w], bounds[w + 1], max_per_user) for w in range(1, windows.n_windows + 1)}
    next_window, retention, costs = {}, {}, []
    first = per_user(next_item_metrics(base, stream, events[1]), key=1)  # window 1: the same base model for every strategy
    bar = tqdm(total=len(strategies) * windows.n_windows, desc=f"updates (seed {config.seed})", disable=not progress)
    for name in strategies:
        state = start_state(name, base, stream, bounds[1], config)
        parts, kept = [], {}
        for w in range(1, windows.n_windows + 1):
            parts.append(first if w == 1 else per_user(next_item_metrics(state.model, stream, events[w]), key=w))
            cost = update(name, state, stream, bounds[w], bounds[w + 1], config)
            costs.append({"strategy": name, "window": w, **cost})
            for j in range(1, w + 1):
                if j == w or w == windows.n_windows:
                    kept[(w, j)] = per_user(next_item_metrics(state.model, stream, tests[j]), key=j)
            bar.update()
        next_window[name] = pd.concat(parts)
        retention[name] = kept
    bar.close()
    return ContinualResult(next_window, retention, pd.DataFrame(costs), windows.n_windows, seed=config.seed)


def fit_base_for(stream: Stream, windows: TemporalWindows, n_items: int, model_config: SequentialConfig | None = None,
                 config: UpdateConfig | None = None, text_features=None) -> tuple[SequentialRecommender, dict]:
    """The base model of an experiment: :func:`fit_base` on the base period, stopped early on its validation events."""
    config = config or UpdateConfig()
    bounds = [int(b) for b in windows.bounds]
    valid = stream.held_out("valid", bounds[0], bounds[1], config.valid_per_user)
    return fit_base(stream, bounds[1], n_items, model_config, config, text_features, valid_events=valid)


def run_seeds(stream: Stream, windows: TemporalWindows, n_items: int, seeds, strategies=STRATEGIES,
              config: UpdateConfig | None = None, model_config: SequentialConfig | None = None, max_per_user: int | None = None,
              progress: bool = True, bases: dict | None = None) -> list[ContinualResult]:
    """The whole experiment once per seed: a base model of that seed (:func:`fit_base_for`; or ``bases[seed]``, a
    ``(model, cost)`` pair already fitted that way), then :func:`run_strategies` with ``config.seed`` set to it. The
    data, its windows and its held-out events are the same for every seed; only the models' initialisation, batch
    order and samples change."""
    config = config or UpdateConfig()
    seeds = list(seeds)
    if not seeds:
        raise ValueError("run_seeds needs at least one seed")
    results = []
    for s in seeds:
        cfg = dataclasses.replace(config, seed=int(s))
        if bases and int(s) in bases:
            base, base_cost = bases[int(s)]
        else:
            base, base_cost = fit_base_for(stream, windows, n_items, model_config, cfg)
        result = run_strategies(stream, windows, base, strategies, cfg, max_per_user, progress)
        result.base_cost = base_cost
        results.append(result)
    return results


# ------------------------------------------------------------------ settings chosen on validation
TUNING_GRID = {
    "finetune": ("epochs", (1, 2, 4, 8)),  # chosen first: every strategy that trains on the new window uses it
    "replay": ("replay_size", (2000, 10000, 50000)),
    "ewc": ("ewc_lambda", (1.0, 10.0, 100.0)),  # the Fisher is scaled to mean 1, so λ is chosen, not derived
    "lora": ("lora_rank", (2, 8)),
}


def tune_updates(stream: Stream, windows: TemporalWindows, base: SequentialRecommender, config: UpdateConfig | None = None,
                 grid: dict | None = None, metric: str = "NDCG@10") -> tuple[UpdateConfig, pd.DataFrame]:
    """Choose each strategy's setting on **validation** events, never on the windows a table reports.

    Every candidate updates ``base`` with window 1 and is scored on the validation events of the base period (what
    it should keep) and of window 1 (what it should learn); the score is their mean — the "average accuracy" over
    the periods seen, on held-out data. ``grid`` maps a strategy to ``(UpdateConfig field, values)``
    (default :data:`TUNING_GRID`), tuned in the grid's order, each with the values chosen before it (the default grid
    chooses the update epochs on ``finetune`` first); ``lora_continue`` shares ``lora``'s rank (its first window is
    the same update). Returns the config with every chosen value and one row per candidate."""
    config = config or UpdateConfig()
    grid = TUNING_GRID if grid is None else grid
    if not stream.valid:
        raise ValueError("the stream holds no validation events; pass stream.hold_out(valid=..., test=...)")
    if windows.n_windows < 1:
        raise ValueError("tuning needs at least one update window")
    bounds = [int(b) for b in windows.bounds]
    old = stream.held_out("valid", bounds[0], bounds[1], config.valid_per_user)
    new = stream.held_out("valid", bounds[1], bounds[2], config.valid_per_user)
    if not old or not new:
        raise ValueError("the base period or window 1 holds no validation events; raise hold_out's valid share")
    params = [param for param, _ in grid.values()]
    if len(set(params)) != len(params):
        raise ValueError(f"grid: each UpdateConfig field may be tuned by one strategy only, got {params}")
    rows, chosen = [], {}
    for strategy, (param, values) in grid.items():
        if strategy not in STRATEGIES:
            raise ValueError(f"grid: unknown strategy {strategy!r}; choose from {STRATEGIES}")
        if not hasattr(config, param):
            raise ValueError(f"grid[{strategy!r}]: UpdateConfig has no field {param!r}")
        best = None
        for value in values:
            cfg = dataclasses.replace(config, **{**chosen, param: value})
            state = start_state(strategy, base, stream, bounds[1], cfg)
            cost = update(strategy, state, stream, bounds[1], bounds[2], cfg)
            kept, learned = validation_score(state.model, stream, old, metric), validation_score(state.model, stream, new, metric)
            score = (kept + learned) / 2
            rows.append({"strategy": strategy, "setting": param, "value": value, f"{metric} base period": kept,
                         f"{metric} window 1": learned, "score": score, "cpu_s": cost["cpu_s"]})
            if best is None or score > best[0]:
                best = (score, value)
        chosen[param] = best[1]
    table = pd.DataFrame(rows)
    table["chosen"] = [chosen.get(s) == v for s, v in zip(table["setting"], table["value"])]
    return dataclasses.replace(config, **chosen), table
