"""Checkpoints of the training loop: what a run must save to continue *exactly* where it stopped.

Used by :func:`recbook.training.loop.train_model` (notebook ``06_finetune_bert``); read ``train.py`` first.

A checkpoint is a folder of safetensors + JSON (no pickle: safe to load from anywhere):

- ``model.safetensors``: the weights; ``best.safetensors``: the best-evaluated weights so far (``keep_best``);
- ``optimizer.safetensors`` + ``trainer_state.json``: AdamW's moments and parameter groups, the learning-rate
  schedule, the GradScaler (fp16), and the loop's state — step, position in the epoch, history, best metric,
  evaluations without improvement (patience), why it stopped;
- ``rng.safetensors``: every random number generator — PyTorch's (CPU and each CUDA device), NumPy's, Python's
  ``random``, and the batches' own ``torch.Generator`` (``DataLoader(generator=...)``) — of every rank.

Exact resumption mid-epoch needs the RNG twice: as it was when the epoch's batch iterator was created (a shuffling
DataLoader draws its order from it) and as it was at the save. :meth:`RunState.batches` restores the first, creates
the iterator, skips the micro-batches already trained on, and restores the second before drawing the next one.

Replacing a checkpoint is a swap (the old folder renamed aside, the new one renamed in, the old one deleted), and
:func:`load_checkpoint` falls back to the aside copy, so a crash at any moment leaves one whole checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch


# ------------------------------------------------------------------ random number generators
def rng_state(generators: Iterable[torch.Generator] = ()) -> dict[str, torch.Tensor]:
    """Every random number generator of this process as tensors (safetensors-ready, no pickle).

    PyTorch CPU, each CUDA device (once CUDA is in use), NumPy's global ``np.random``, Python's ``random``, and
    ``generators`` (e.g. a DataLoader's own) in order.
    """
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda.{i}"] = s
    _, keys, pos, has_gauss, gauss = np.random.get_state()  # ("MT19937", 624 uint32 words, position, cached Gaussian)
    state["numpy.keys"] = torch.from_numpy(keys.astype(np.int64))
    state["numpy.pos"] = torch.tensor([pos, has_gauss], dtype=torch.int64)
    state["numpy.gauss"] = torch.tensor([gauss], dtype=torch.float64)
    _, words, gauss_next = random.getstate()  # (3, 625 ints below 2**32, cached Gaussian or None)
    state["python.words"] = torch.tensor(words, dtype=torch.int64)
    state["python.gauss"] = torch.tensor([math.nan if gauss_next is None else gauss_next], dtype=torch.float64)
    for i, g in enumerate(generators):
        state[f"generator.{i}"] = g.get_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor], generators: Iterable[torch.Generator] = ()) -> None:
    """Restore what :func:`rng_state` returned (the parts it holds; ``generators`` in the same order)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    cuda = sorted((k for k in state if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state[k] for k in cuda][: torch.cuda.device_count()])
    if "numpy.keys" in state:
        pos, has_gauss = state["numpy.pos"].tolist()
        np.random.set_state(("MT19937", state["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss,
                             float(state["numpy.gauss"][0])))
    if "python.words" in state:
        gauss = float(state["python.gauss"][0])
        random.setstate((3, tuple(state["python.words"].tolist()), None if math.isnan(gauss) else gauss))
    for i, g in enumerate(generators):
        if f"generator.{i}" in state:
            g.set_state(state[f"generator.{i}"])


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _gather(state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]] | None:
    """Every rank's ``state`` on rank 0 (``None`` on the others); just this process's without distributed.

    Dropout differs per rank, so exact resumption needs every rank's RNG. Every rank must call it."""
    if not _distributed():
        return [state]
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    ranks: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.get_world_size())]
    for key, value in sorted(state.items()):
        parts = [torch.empty_like(value, device=device) for _ in ranks]
        dist.all_gather(parts, value.to(device))
        for mine, part in zip(ranks, parts):
            mine[key] = part.cpu()
    return ranks if dist.get_rank() == 0 else None


# ------------------------------------------------------------------ save / load
def save_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None, state: dict | None = None, *,
                    scaler=None, best_weights: dict | None = None, rng: dict[str, dict] | None = None) -> Path:
    """Write model (and optimizer, scheduler, GradScaler, best weights, RNG, loop ``state``) to ``folder``, atomically.

    ``rng``: named RNG snapshots from :func:`rng_state` (default: ``{"now": rng_state()}``). Under
    ``torch.distributed`` every rank must call it: each rank's RNG snapshots are gathered and rank 0 writes.
    """
    from safetensors.torch import save_file

    rng = {"now": rng_state()} if rng is None else rng
    gathered = {name: _gather(snapshot) for name, snapshot in rng.items() if snapshot is not None}
    if _rank() != 0:
        return Path(folder)
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a crash during an earlier save
    tmp.mkdir(parents=True)
    save_file(_cpu(model.state_dict()), str(tmp / "model.safetensors"))
    if best_weights is not None:
        save_file(_cpu(best_weights), str(tmp / "best.safetensors"))
    save_file({f"{name}.{rank}.{key}": value.contiguous() for name, ranks in gathered.items()
               for rank, snapshot in enumerate(ranks) for key, value in snapshot.items()}, str(tmp / "rng.safetensors"))
    meta: dict = {"state": state or {}}
    if optimizer is not None:
        opt = optimizer.state_dict()
        save_file({f"{idx}.{key}": value.detach().contiguous().cpu() if torch.is_tensor(value) else torch.tensor(value)
                   for idx, st in opt["state"].items() for key, value in st.items()}, str(tmp / "optimizer.safetensors"))
        meta["param_groups"] = opt["param_groups"]
    if scheduler is not None:
        meta["scheduler"] = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    if scaler is not None and scaler.is_enabled():
        meta["scaler"] = scaler.state_dict()  # scale, growth factors, growth tracker: numbers
    (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=1, default=float))
    _swap_in(tmp, folder)
    return folder


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None, restore_rng: bool = True, *,
                    scaler=None) -> dict:
    """Load what :func:`save_checkpoint` wrote; return the loop state dict.

    ``restore_rng=False`` leaves the RNG alone and returns this rank's saved snapshots under ``"rng_state"`` (the
    loop restores them at the exact points of the run where they were taken). Saved best weights come back under
    ``"best_weights"``.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.exists() and (_previous(folder) / "model.safetensors").is_file():
        folder = _previous(folder)  # a save was interrupted between its two renames: the previous checkpoint is whole
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} holds no model.safetensors; pass a folder written by save_checkpoint")
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    meta = json.loads((folder / "trainer_state.json").read_text()) if (folder / "trainer_state.json").is_file() else {"state": {}}
    state = meta["state"]
    if optimizer is not None and (folder / "optimizer.safetensors").is_file():
        opt: dict = {}
        for key, value in load_file(str(folder / "optimizer.safetensors")).items():
            if key.startswith("rng."):
                continue  # checkpoints written before rng.safetensors kept the torch RNG here
            idx, name = key.split(".", 1)
            opt.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": opt, "param_groups": meta["param_groups"]})
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})
    if scaler is not None and "scaler" in meta:
        scaler.load_state_dict(meta["scaler"])
    if (folder / "best.safetensors").is_file():
        state["best_weights"] = load_file(str(folder / "best.safetensors"))
    if (folder / "rng.safetensors").is_file():
        snapshots = _this_rank(load_file(str(folder / "rng.safetensors")))
        if restore_rng:
            set_rng_state(snapshots.get("now", {}))
        else:
            state["rng_state"] = snapshots
    return state


def _this_rank(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{snapshot: {key: tensor}}`` of this rank (rank 0's when the checkpoint has fewer ranks)."""
    by_rank: dict[int, dict] = {}
    for key, value in tensors.items():
        name, rank, rest = key.split(".", 2)
        by_rank.setdefault(int(rank), {}).setdefault(name, {})[rest] = value
    return by_rank.get(_rank(), by_rank.get(0, {}))


def _cpu(weights: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in weights.items()}


def _previous(folder: Path) -> Path:
    return folder.with_name(folder.name + ".previous")


def _swap_in(tmp: Path, folder: Path) -> None:
    """Replace ``folder`` by the complete ``tmp`` so that a crash at any point leaves one whole checkpoint: the old one
    is renamed aside first (``NAME.previous``, which :func:`load_checkpoint` falls back to) and deleted only after the
    new one is in place."""
    previous = _previous(folder)
    if folder.exists():
        if previous.exists():
            shutil.rmtree(previous)
        folder.rename(previous)
    tmp.rename(folder)
    if previous.exists():
        shutil.rmtree(previous)


# ------------------------------------------------------------------ the loop's state
class RunState:
    """What :func:`recbook.training.loop.train_model` keeps besides the model, optimizer, scheduler and GradScaler — all
    of it saved by :meth:`save` and restored by :meth:`resume`, so that a resumed run is the run that never stopped.

    ``result`` (a :class:`recbook.training.loop.TrainResult`) holds the step, history, best metric and stop reason; this
    object adds the position — ``epoch`` whole epochs done, ``micro`` micro-batches done of the next — early
    stopping's memory — ``bad_evals`` (evaluations in a row without a new best) and ``best_weights`` — and the
    training loss accumulated towards the next logged step.
    """

    def __init__(self, model, optimizer, scheduler, scaler, result, config):
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.result, self.config = result, config
        self.epoch, self.micro = 0, 0
        self.bad_evals, self.best_weights = 0, None
        self.loss_sum, self.loss_n = 0.0, 0  # training loss summed over the micro-batches since the last logged step
        self._generators: list[torch.Generator] = []  # the batches' own generators
        self._epoch_rng: dict | None = None  # every RNG when this epoch's batch iterator was created
        self._resume_rng: dict | None = None  # resuming: the saved snapshots, until the first epoch uses them

    def save(self, folder: str | Path) -> Path:
        r = self.result
        state = {"step": r.steps, "epoch": self.epoch, "micro_in_epoch": self.micro, "history": r.history,
                 "best_metric": r.best_metric, "best_step": r.best_step, "bad_evals": self.bad_evals,
                 "stop_reason": r.stop_reason, "loss_sum": self.loss_sum, "loss_n": self.loss_n, "config": asdict(self.config)}
        return save_checkpoint(folder, self.model, self.optimizer, self.scheduler, state, scaler=self.scaler,
                               best_weights=self.best_weights,
                               rng={"now": rng_state(self._generators), "epoch_start": self._epoch_rng})

    def resume(self, folder: str | Path) -> None:
        state = load_checkpoint(folder, self.model, self.optimizer, self.scheduler, restore_rng=False, scaler=self.scaler)
        r = self.result
        r.steps, r.history = state.get("step", 0), state.get("history", [])
        r.best_metric, r.best_step, r.stop_reason = state.get("best_metric"), state.get("best_step"), state.get("stop_reason")
        r.stopped_early = r.stop_reason is not None
        self.epoch, self.micro = state.get("epoch", 0), state.get("micro_in_epoch", 0)
        self.bad_evals, self.best_weights = state.get("bad_evals", 0), state.get("best_weights")
        self.loss_sum, self.loss_n = state.get("loss_sum", 0.0), state.get("loss_n", 0)
        self._resume_rng = state.get("rng_state", {})

    def batches(self, batches, epoch: int) -> Iterator[tuple[int, object]]:
        """The epoch's ``(micro, batch)`` pairs, numbered from 1 — after a resume, without those already trained on.

        Resuming at an epoch boundary restores the RNG as saved before creating the batch iterator; mid-epoch it
        restores the RNG of the epoch's start, creates the iterator, draws the trained micro-batches, and restores
        the RNG as saved before drawing the next one.
        """
        self._generators = _generators(batches)
        resume, self._resume_rng = self._resume_rng, None
        skip = self.micro if resume is not None and epoch == self.epoch else 0
        if skip >= len(batches):
            raise ValueError(f"the checkpoint was saved after micro-batch {skip} of an epoch, but these batches hold "
                             f"{len(batches)}: resume with the batches it was trained on")
        if resume is not None:
            set_rng_state(resume.get("epoch_start" if skip else "now", {}), self._generators)
        self._epoch_rng = rng_state(self._generators)
        for micro, batch in enumerate(batches, 1):
            if micro > skip:
                yield micro, batch
            elif micro == skip:
                set_rng_state(resume.get("now", {}), self._generators)


def _generators(batches) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a DataLoader (or its samplers) draws its order from, each once."""
    found: dict[int, torch.Generator] = {}
    for holder in (batches, getattr(batches, "sampler", None), getattr(batches, "batch_sampler", None),
                   getattr(getattr(batches, "batch_sampler", None), "sampler", None)):
        g = getattr(holder, "generator", None)
        if isinstance(g, torch.Generator):
            found.setdefault(id(g), g)
    return list(found.values())
