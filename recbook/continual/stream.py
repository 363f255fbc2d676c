"""The stream of interactions an update strategy learns from (notebook ``18_continual``): users' histories in time
order, held-out validation and test events, training targets per window, and next-item quality on a window's
events — what :mod:`recbook.continual.strategies` trains on and :mod:`recbook.continual.experiment` measures."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recbook.data.splits import TemporalWindows
from recbook.data.windows import _left_pad, user_sequences
from recbook.models.sequential import SequentialRecommender


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
