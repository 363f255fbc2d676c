"""Users as item sequences, and the training windows a sequential model learns from (notebook ``04_sequential``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def user_sequences(interactions: pd.DataFrame, item_index: pd.Series, with_times: bool = False) -> dict:
    """Each user's items, oldest first, as 1-based catalogue indices (0 is padding).

    Equal timestamps keep the order of the table (a stable sort) — never an order by item id.
    ``with_times=True`` returns ``(sequences, times)``: the same dict and each user's timestamps beside it.
    """
    df = interactions.sort_values(["user_id", "timestamp"], kind="stable")
    idx = item_index.reindex(df["item_id"]).to_numpy()
    if np.isnan(idx).any():
        bad = df["item_id"].to_numpy()[np.isnan(idx)][0]
        raise ValueError(f"interactions refer to item_id {bad}, which is not in the catalogue")
    users = df["user_id"].to_numpy()
    idx = idx.astype(np.int64) + 1
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    sequences = {users[a]: idx[a:b] for a, b in zip(bounds[:-1], bounds[1:])}
    if not with_times:
        return sequences
    t = df["timestamp"].to_numpy()
    return sequences, {users[a]: t[a:b] for a, b in zip(bounds[:-1], bounds[1:])}


def _left_pad(seq: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.int64)
    seq = seq[-length:]
    if len(seq):
        out[-len(seq):] = seq
    return out


def training_windows(sequences: dict, max_len: int, objective: str) -> dict[str, torch.Tensor]:
    """Cut every sequence into windows the model trains on, newest first, so each item is a target once.

    causal: ``input`` = items t−L…t−1, ``target`` = items t−L+1…t (the next item at every position);
    cloze: ``input`` = items t−L+1…t (the model masks them itself, differently at each step).
    Windows are left-padded with 0 to ``max_len``.
    """
    span = max_len + 1 if objective == "causal" else max_len
    inputs, targets = [], []
    for seq in sequences.values():
        for end in range(len(seq), 1, -max_len):
            chunk = seq[max(0, end - span) : end]
            if len(chunk) < 2:
                continue
            if objective == "causal":
                inputs.append(_left_pad(chunk[:-1], max_len))
                targets.append(_left_pad(chunk[1:], max_len))
            else:
                inputs.append(_left_pad(chunk, max_len))
    if not inputs:
        raise ValueError("no user has two or more training interactions: nothing to learn a sequence from")
    out = {"input": torch.from_numpy(np.stack(inputs))}
    if targets:
        out["target"] = torch.from_numpy(np.stack(targets))
    return out


class WindowDataset(torch.utils.data.Dataset):
    """The windows of :func:`training_windows` as a map-style dataset of dicts (default collate stacks them)."""

    def __init__(self, windows: dict[str, torch.Tensor]):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows["input"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.windows.items()}


# ------------------------------------------------------------------------- model
