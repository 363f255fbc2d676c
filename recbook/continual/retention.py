"""What an update keeps of the past (notebook ``18_continual``): a replay **reservoir** — a uniform sample of every
interaction seen, in bounded memory (Vitter's Algorithm R) — and Elastic Weight Consolidation's penalty
``λ/2 · Σ F_i (θ_i − θ*_i)²`` with its diagonal Fisher ``F`` (Kirkpatrick et al. 2017)."""

from __future__ import annotations

import numpy as np
import torch


class ReservoirBuffer:
    """A uniform sample of at most ``capacity`` items of a stream of unknown length (Vitter's Algorithm R).

    After ``n`` items were offered, each is in the buffer with probability ``min(1, capacity / n)``, whatever its
    position in the stream — old windows are not crowded out by the newest one.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative integer, got {capacity!r}")
        self.capacity, self.items, self.seen = int(capacity), [], 0
        self.rng = np.random.default_rng(seed)

    def add(self, items) -> None:
        for item in items:
            self.seen += 1
            if len(self.items) < self.capacity:
                self.items.append(item)
            else:
                j = int(self.rng.integers(self.seen))
                if j < self.capacity:
                    self.items[j] = item

    def sample(self, n: int) -> list:
        """``n`` items drawn without replacement from the buffer (all of them when it holds fewer)."""
        if n >= len(self.items):
            return list(self.items)
        return [self.items[i] for i in self.rng.choice(len(self.items), size=n, replace=False)]

    def __len__(self) -> int:
        return len(self.items)


def fisher_diagonal(model, windows: dict, batches: int, batch_size: int, seed: int = 0) -> dict:
    """Diagonal (empirical) Fisher information of ``model``'s loss on up to ``batches`` batches of ``windows``:
    the mean squared gradient per parameter, scaled so that its mean over all parameters is 1."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(windows["input"]), generator=generator)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    model.train()
    used = 0
    for b in range(batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        if len(idx) == 0:
            break
        model.zero_grad()
        model.training_loss({k: v[idx] for k, v in windows.items()}).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        used += 1
    model.zero_grad()
    model.eval()
    total = sum(f.sum() for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    scale = (total / count).clamp_min(1e-30) if used else torch.tensor(1.0)
    return {n: f / scale for n, f in fisher.items()}


def ewc_penalty(anchor: dict, fisher: dict, strength: float):
    """``λ/2 · Σ F_i (θ_i − θ*_i)²`` as a function of the model (``anchor`` = θ*, the weights after the last update)."""

    def penalty(model):
        total = 0.0
        for n, p in model.named_parameters():
            if n in fisher:
                total = total + (fisher[n] * (p - anchor[n]) ** 2).sum()
        return 0.5 * strength * total

    return penalty
