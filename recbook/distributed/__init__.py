"""Distributed training with PyTorch's own engine (``torch.distributed``), launched by ``torchrun``.

Taught in notebook ``15_distributed``.

- :func:`init` / :func:`cleanup`: one process per rank, ``gloo`` on CPU, ``cpu:gloo,cuda:nccl`` on CUDA, from the
  environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``);
- :func:`wrap_ddp` / :func:`wrap_fsdp`: data parallelism with replicated weights (DDP) or sharded weights,
  gradients and optimizer state (FSDP2 ``fully_shard``); both keep the model's ``training_loss`` so the
  course's one training loop (:func:`recbook.training.loop.train_model`) trains them unchanged;
- :func:`parallelize_bert_layers`: tensor parallelism of BERT's attention and feed-forward Linears
  (column-wise in, row-wise out) with ``torch.distributed.tensor.parallel``;
- :class:`ShardedEmbedding`: a recommender's big ID-embedding table split row-wise across ranks, lookups
  answered with one all-reduce;
- :class:`CommCounter`: counts the bytes DDP all-reduces, through a communication hook;
- :mod:`recbook.distributed.embed`: distributed *inference* — each rank embeds a contiguous shard of the catalogue's
  texts, rank 0 gathers them in item order (``torchrun -m recbook.cli.distributed_embed --check`` compares with one process).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: str
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(backend: str | None = None) -> DistInfo:
    """Join the process group ``torchrun`` prepared (or a 1-process group when run without it)."""
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    # on GPUs: nccl for CUDA tensors *and* gloo for CPU ones (metrics and gathered scores are CPU tensors; nccl alone
    # refuses them)
    backend = backend or ("cpu:gloo,cuda:nccl" if cuda else "gloo")
    device = f"cuda:{local_rank}" if cuda and "nccl" in backend else "cpu"
    if device != "cpu":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, device, backend)


def cleanup() -> None:
    """Leave the process group together: a barrier first, so no rank tears gloo down while another still has work
    in flight (without it, a rank sometimes aborted at exit with "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def exit_rank(code: int) -> None:
    """End a torchrun worker with ``code`` right after :func:`cleanup`, skipping the interpreter's teardown.

    Process groups that DeviceMesh/DTensor keep in module-level caches are otherwise destroyed during interpreter
    finalisation, after ``destroy_process_group``; gloo's background threads then sometimes abort the rank with
    "terminate called without an active exception" (seen once in CI on the tensor-parallel check, exit -6) although
    the work had finished. Output is flushed first, so nothing printed is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class _LossForward(torch.nn.Module):
    """Makes ``training_loss(batch)`` the module's forward, so DDP/FSDP hooks see it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_loss(batch)


class DDPModel(torch.nn.parallel.DistributedDataParallel):
    """DDP whose ``training_loss(batch)`` runs through DDP's forward (gradient all-reduce hooks included)."""

    def training_loss(self, batch):
        return self(batch)

    @property
    def inner(self) -> torch.nn.Module:
        return self.module.model


def wrap_ddp(model: torch.nn.Module, info: DistInfo, **kwargs) -> DDPModel:
    """``DistributedDataParallel`` around ``model`` (which must have ``training_loss``)."""
    model = model.to(info.device)
    ids = [info.local_rank] if info.device.startswith("cuda") else None
    return DDPModel(_LossForward(model), device_ids=ids, **kwargs)


def wrap_fsdp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """FSDP2: shard every BERT encoder layer and then the whole model across ranks (in place).

    Each rank keeps 1/world of every parameter, gradient and optimizer moment; full weights of a layer
    are all-gathered just before it runs and freed after. Returns the model (still with ``training_loss``).
    """
    from torch.distributed.fsdp import fully_shard

    model = model.to(info.device)
    for layer in bert_layers(model):
        fully_shard(layer)
    fully_shard(model)
    return model


def bert_layers(model: torch.nn.Module):
    for module in model.modules():
        if hasattr(module, "layer") and isinstance(module.layer, torch.nn.ModuleList):
            return list(module.layer)
    raise ValueError(f"{type(model).__name__} has no encoder.layer list")


def parallelize_bert_layers(model: torch.nn.Module, mesh) -> torch.nn.Module:
    """Tensor parallelism (Megatron style) for every BERT layer, in place.

    ``query``/``key``/``value`` and ``intermediate.dense`` are split by output columns (each rank computes
    its share of heads / neurons); ``attention.output.dense`` and ``output.dense`` by input rows, and their
    partial results are summed with one all-reduce. Two all-reduces per layer; the weights per rank shrink
    by the world size. Heads must divide evenly by the world size.
    """
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    plan = {
        "attention.self.query": ColwiseParallel(), "attention.self.key": ColwiseParallel(), "attention.self.value": ColwiseParallel(),
        "attention.output.dense": RowwiseParallel(), "intermediate.dense": ColwiseParallel(), "output.dense": RowwiseParallel(),
    }
    for layer in bert_layers(model):
        heads = layer.attention.self.query.out_features // layer.attention.self.attention_head_size
        if heads % mesh.size():
            raise ValueError(f"{heads} attention heads cannot be split over {mesh.size()} ranks")
        parallelize_module(layer, mesh, plan)
    return model


class ShardedEmbedding(torch.nn.Module):
    """An ``num_embeddings × dim`` table split row-wise: rank r holds rows ``[r·n/W, (r+1)·n/W)``.

    ``forward(ids)`` (the same ids on every rank) looks up the local rows, zeros elsewhere, and one
    ``all_reduce(SUM)`` assembles the full result on every rank. Each rank stores 1/W of the table —
    what makes a 100-million-item table fit. Gradients flow to the local shard only.
    """

    def __init__(self, num_embeddings: int, dim: int, rank: int, world_size: int, weight: torch.Tensor | None = None):
        super().__init__()
        if num_embeddings < world_size:
            raise ValueError(f"cannot split {num_embeddings} rows over {world_size} ranks")
        bounds = [round(i * num_embeddings / world_size) for i in range(world_size + 1)]
        self.start, self.stop = bounds[rank], bounds[rank + 1]
        self.num_embeddings, self.dim = num_embeddings, dim
        shard = torch.randn(self.stop - self.start, dim) * 0.02 if weight is None else weight[self.start : self.stop].detach().clone()
        self.weight = torch.nn.Parameter(shard)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        local = (ids >= self.start) & (ids < self.stop)
        rows = torch.nn.functional.embedding((ids - self.start).clamp(0, self.stop - self.start - 1), self.weight)
        out = rows * local.unsqueeze(-1).to(rows.dtype)
        if dist.is_initialized() and dist.get_world_size() > 1:
            out = _AllReduceSum.apply(out)
        return out


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks forward; the gradient of a sum is passed to every rank unchanged."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class CommCounter:
    """A DDP communication hook that counts the bytes all-reduced per step, then does the all-reduce."""

    def __init__(self):
        self.bytes = 0
        self.calls = 0

    def hook(self, state, bucket):
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        buffer = bucket.buffer()
        self.bytes += buffer.numel() * buffer.element_size()
        self.calls += 1
        return allreduce_hook(state, bucket)

    def attach(self, ddp_model) -> "CommCounter":
        ddp_model.register_comm_hook(None, self.hook)
        return self


def local_state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients and optimizer state (local shards for FSDP/DTensor).

    Gradients are counted as one per trainable parameter: they exist during every step (the loop frees
    them after ``optimizer.step``). Optimizer state is AdamW's two moments as actually allocated.
    """

    def local(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    params = sum(local(p) for p in model.parameters())
    grads = sum(local(p) for p in model.parameters() if p.requires_grad)  # held during every step (same shape as the shard)
    state = 0
    if optimizer is not None:
        for s in optimizer.state.values():
            state += sum(local(v) for v in s.values() if torch.is_tensor(v) and v.ndim > 0)
    return {"parameters": params, "gradients": grads, "optimizer_state": state}


def distributed_loader(encoded, tokenizer, per_rank_batch: int, rank: int, world: int, seed: int):
    """Each rank's batches: a ``DistributedSampler`` shard of ``encoded``, dynamic padding per batch."""
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from recbook.data import PairCollator

    sampler = DistributedSampler(encoded, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    return DataLoader(encoded, batch_size=per_rank_batch, sampler=sampler, collate_fn=PairCollator(tokenizer), drop_last=True)
