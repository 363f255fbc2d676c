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
- ``retrain`` — a fresh model on everything known, with the base model's recipe: the reference.

Quality is measured on **every interaction of the next window** whose user has any history: the model (frozen at
the window's start) reads the user's live history up to that moment and ranks the whole catalogue (seen items
excluded); per-user means give confidence intervals. **Forgetting** on window ``j``: its quality right after the
model learned it minus its quality after the last update, paired per user. Cost: process CPU seconds of the update
(``time.process_time``, every thread) and the training targets processed.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .data.splits import TemporalWindows
from .models.sequential import SequentialConfig, SequentialRecommender
from .models.windows import WindowDataset, _left_pad, training_windows, user_sequences
from .retention import ReservoirBuffer, ewc_penalty, fisher_diagonal

STRATEGIES = ("frozen", "finetune", "replay", "ewc", "lora", "retrain")


@dataclass
class UpdateConfig:
    """The knobs of every strategy (defaults: MovieLens-100k's quick profile on a 2-core CPU)."""

    epochs: int = 3  # epochs over the new window (finetune, replay, ewc, lora)
    retrain_epochs: int = 10  # epochs of a fresh model on everything known (retrain, and the base model)
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
        for name in ("epochs", "retrain_epochs", "batch_size", "ewc_batches", "lora_rank"):
            value = getattr(self, name)
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
    """Every user's interactions as 1-based catalogue rows and their times, oldest first (one global sort)."""

    item_ids: np.ndarray
    rows: dict = field(default_factory=dict)  # user -> np.ndarray of 1-based rows
    times: dict = field(default_factory=dict)  # user -> np.ndarray of timestamps

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


def train_on(model: SequentialRecommender, windows: dict, epochs: int, config: UpdateConfig, penalty=None, lr: float | None = None) -> dict:
    """Train ``model`` in place on ``windows`` for ``epochs`` with the course's loop; returns CPU seconds, wall seconds
    and the number of training targets processed."""
    from .train import TrainConfig, train_model

    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), batch_size=config.batch_size, shuffle=True, generator=generator)
    train_config = TrainConfig(epochs=epochs, lr=lr or config.lr, weight_decay=0.01, warmup_ratio=0.0, grad_clip=1.0, amp="off",
                               keep_best=False, progress=False, seed=config.seed, device="cpu")
    module = model if penalty is None else _WithPenalty(model, penalty)
    cpu, wall = time.process_time(), time.perf_counter()
    train_model(module, loader, train_config)
    model.eval()
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "examples": int((windows["target"] > 0).sum()) * epochs}


def _mark_known(model: SequentialRecommender, rows: dict) -> None:
    known = model.known_items.clone()
    for r in rows.values():
        known[torch.as_tensor(r)] = True
    known[0] = False
    model.known_items.copy_(known)


def fit_base(stream: Stream, end: int, n_items: int, model_config: SequentialConfig | None = None,
             config: UpdateConfig | None = None, text_features=None) -> tuple[SequentialRecommender, dict]:
    """A fresh causal model trained on every interaction before ``end`` for ``config.retrain_epochs`` — the base
    model, and what ``retrain`` does at every update."""
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
    cost = train_on(model, training_windows(known, model_config.max_len, "causal"), config.retrain_epochs, config)
    return model, cost


def _lora_update(base: SequentialRecommender, windows: dict, config: UpdateConfig) -> tuple[SequentialRecommender, dict]:
    from peft import LoraConfig, get_peft_model

    targets = ["qkv", "proj", "mlp.0", "mlp.2"]
    lora = get_peft_model(copy.deepcopy(base), LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank,
                                                          target_modules=targets, lora_dropout=0.0))
    cost = train_on(lora, windows, config.epochs, config, lr=config.lora_lr)
    return lora.merge_and_unload().eval(), cost


# ------------------------------------------------------------------ evaluation
def next_item_metrics(model: SequentialRecommender, stream: Stream, events, k: int = 10, batch_size: int = 512) -> pd.DataFrame:
    """NDCG@k and HR@k of every event (``(user, position)``) given the user's history before it, ranked against
    the whole catalogue minus the items in that history; one row per event with ``user_id``."""
    events = [(u, p) for u, p in events if p >= 1]
    if not events:
        return pd.DataFrame(columns=["user_id", "NDCG@10", "HR@10"])
    from .metrics import per_user_metrics

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
    if max_per_user is None:
        return events
    by_user: dict = {}
    for u, p in events:
        by_user.setdefault(u, []).append(p)
    return [(u, p) for u, ps in by_user.items() for p in sorted(ps)[-max_per_user:]]


# ------------------------------------------------------------------ one strategy, one update
@dataclass
class UpdateState:
    """What a strategy carries from one update to the next."""

    model: SequentialRecommender
    base: SequentialRecommender
    buffer: ReservoirBuffer | None = None
    fisher: dict | None = None


def start_state(strategy: str, base: SequentialRecommender, stream: Stream, base_end: int, config: UpdateConfig) -> UpdateState:
    """The state a strategy starts from: the base model (copied), a reservoir filled with the base period's
    interactions for ``replay``, the Fisher of the base period for ``ewc``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    state = UpdateState(copy.deepcopy(base), base)
    known = stream.upto(base_end)
    if strategy == "replay":
        state.buffer = ReservoirBuffer(config.replay_size, config.seed)
        state.buffer.add([(u, p) for u, r in known.items() for p in range(1, len(r))])
    if strategy == "ewc":
        windows = training_windows(known, base.config.max_len, "causal")  # every base-period interaction a target
        state.fisher = fisher_diagonal(state.model, windows, config.ewc_batches, config.batch_size, config.seed)
    return state


def update(strategy: str, state: UpdateState, stream: Stream, start: int, end: int, config: UpdateConfig) -> dict:
    """Update ``state.model`` with the interactions in ``[start, end)`` by ``strategy``; returns the cost
    (``cpu_s``, ``wall_s``, ``examples``). ``frozen`` does nothing."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    none = {"cpu_s": 0.0, "wall_s": 0.0, "examples": 0}
    if strategy == "frozen":
        return none
    max_len = state.model.config.max_len
    new = [(u, p) for u, p in stream.events(start, end) if p >= 1]
    if strategy == "retrain":
        text = state.model.text_features[1:-1].numpy() if hasattr(state.model, "text_features") else None
        state.model, cost = fit_base(stream, end, state.model.n_items, state.model.config, config, text)
        return cost
    if not new:
        return none
    if strategy != "lora":
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
    # lora: a fresh adapter on the frozen base, trained on the new window, merged for serving
    state.model, cost = _lora_update(state.base, target_windows(stream, new, max_len), config)
    return cost


# ------------------------------------------------------------------ the whole experiment
@dataclass
class ContinualResult:
    """Everything :func:`run_strategies` measured."""

    next_window: dict  # strategy -> per-user next-window metrics, index (window, user_id)
    retention: dict  # strategy -> {(after_update, window): per-user metrics}
    costs: pd.DataFrame  # one row per strategy × update: cpu_s, wall_s, examples
    n_windows: int

    def served_after_update(self, strategy: str, from_window: int = 2) -> pd.DataFrame:
        """Next-window metrics of ``strategy`` on windows ``from_window`` … (default 2: window 1 is served by the base
        model for every strategy, so it only dilutes their differences)."""
        values = self.next_window[strategy]
        return values[values.index.get_level_values("window") >= from_window]

    def table(self, metric: str = "NDCG@10", reference: str = "retrain", n_boot: int = 2000, seed: int = 0,
              from_window: int = 2) -> pd.DataFrame:
        """One row per strategy: next-window quality with CI (windows ``from_window`` … pooled, one unit per user and
        window), its ratio to ``reference`` (paired, CI), forgetting with CI, CPU seconds and training targets
        (``examples``) over all updates."""
        from .stats import mean_ci, ratio_ci

        rows = []
        for name in self.next_window:
            values = self.served_after_update(name, from_window)
            if values.empty:
                raise ValueError(f"no window >= from_window={from_window} was served; there are {self.n_windows} windows")
            est = mean_ci(values[metric], n_boot=n_boot, seed=seed)
            row = {"strategy": name, metric: est.mean, "ci_low": est.low, "ci_high": est.high, "units": est.n}
            if reference in self.next_window and name != reference:
                ref = self.served_after_update(reference, from_window)[metric]
                ratio = ratio_ci(values[metric], ref, (name, reference), n_boot=n_boot, seed=seed)
                row.update({f"÷ {reference}": ratio.mean, "ratio_low": ratio.low, "ratio_high": ratio.high})
            forgetting = self.forgetting(name, metric)
            if len(forgetting):
                f = mean_ci(forgetting, n_boot=n_boot, seed=seed)
                row.update(forgetting=f.mean, forgetting_low=f.low, forgetting_high=f.high)
            cost = self.costs[self.costs["strategy"] == name]
            row.update(cpu_s=cost["cpu_s"].sum(), examples=int(cost["examples"].sum()))
            rows.append(row)
        return pd.DataFrame(rows).set_index("strategy")

    def forgetting(self, strategy: str, metric: str = "NDCG@10") -> pd.Series:
        """Per (window, user): quality on window ``j`` right after learning it minus after the last update."""
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


def run_strategies(stream: Stream, windows: TemporalWindows, base: SequentialRecommender, strategies=STRATEGIES,
                   config: UpdateConfig | None = None, max_per_user: int | None = None, progress: bool = True) -> ContinualResult:
    """Run every strategy through all update windows from the same ``base`` model (trained before window 1).

    At step ``w``: evaluate on window ``w`` (next-window quality), update with window ``w``, then re-evaluate
    windows ``1 … w`` (retention, for forgetting)."""
    from tqdm.auto import tqdm

    config = config or UpdateConfig()
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    events = {w: window_events(stream, windows, w, max_per_user) for w in range(1, windows.n_windows + 1)}
    next_window, retention, costs = {}, {}, []
    first = per_user(next_item_metrics(base, stream, events[1]), key=1)  # window 1: the same base model for every strategy
    bar = tqdm(total=len(strategies) * windows.n_windows, desc="updates", disable=not progress)
    for name in strategies:
        state = start_state(name, base, stream, int(windows.bounds[1]), config)
        parts, kept = [], {}
        for w in range(1, windows.n_windows + 1):
            parts.append(first if w == 1 else per_user(next_item_metrics(state.model, stream, events[w]), key=w))
            cost = update(name, state, stream, int(windows.bounds[w]), int(windows.bounds[w + 1]), config)
            costs.append({"strategy": name, "window": w, **cost})
            for j in range(1, w + 1):
                if j == w or w == windows.n_windows:
                    kept[(w, j)] = per_user(next_item_metrics(state.model, stream, events[j]), key=j)
            bar.update()
        next_window[name] = pd.concat(parts)
        retention[name] = kept
    bar.close()
    return ContinualResult(next_window, retention, pd.DataFrame(costs), windows.n_windows)
