"""Distributed inference: embed a whole catalogue's texts with N processes, gathered in item order.

Taught in notebooks ``15_distributed`` and ``17_serving``.

Serving needs every item's vector, computed offline: a sentence encoder over each item's text. With millions of
items that is the one big inference job, and it is embarrassingly parallel. Each of N ranks (``torchrun``, gloo on
CPU) takes a **contiguous shard** of the items — rank r gets rows ``[r·n/N, (r+1)·n/N)`` (:func:`shard_bounds`) —
embeds it with the same encoder (:func:`recbook.models.item_text.embed_texts` over a
:class:`recbook.compress.catalogue.SentenceEncoder`), and rank 0 **gathers** the shards. ``gather`` needs tensors
of one shape, so each shard is padded to the largest shard's rows and rank 0 cuts the padding off again; shards
follow each other in item order, so concatenating them gives the catalogue in order (:func:`gather_in_order`).

Checked against one process (:func:`check_against_one_process`): the same texts embedded by rank 0 alone must give
the same matrix, max |difference| ≤ 1e-5 (batches differ in padding, which the attention mask hides; only
floating-point summation order changes). The command that runs it on ``torchrun`` is
:mod:`recbook.cli.distributed_embed`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist

TOLERANCE = 1e-5


def shard_bounds(n: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` row ranges, one per rank, sizes differing by at most one (some may be empty when
    there are fewer items than ranks)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cuts = [round(i * n / world_size) for i in range(world_size + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def gather_in_order(local: np.ndarray, n: int, rank: int, world_size: int) -> np.ndarray | None:
    """Rank 0 receives every rank's shard (padded to the largest one for ``dist.gather``) and returns the ``(n, dim)``
    matrix in row order; other ranks return None. Ranks with an empty shard may pass a ``(0, 0)`` array."""
    bounds = shard_bounds(n, world_size)
    start, stop = bounds[rank]
    if len(local) != stop - start:
        raise ValueError(f"rank {rank} holds {len(local)} rows; its shard is rows [{start}, {stop})")
    dim = torch.tensor([local.shape[1] if len(local) else 0])
    dist.all_reduce(dim, op=dist.ReduceOp.MAX)  # a rank with no items does not know the dimension
    rows = max(b - a for a, b in bounds)
    padded = torch.zeros(rows, int(dim))
    if len(local):
        padded[: len(local)] = torch.from_numpy(np.asarray(local, dtype=np.float32))
    received = [torch.empty_like(padded) for _ in range(world_size)] if rank == 0 else None
    dist.gather(padded, received, dst=0)
    if rank != 0:
        return None
    return np.concatenate([part[: b - a].numpy() for part, (a, b) in zip(received, bounds)], axis=0)


def embed_shard(model, tokenizer, texts: list[str], rank: int, world_size: int, max_length: int = 64,
                batch_size: int = 128) -> np.ndarray:
    """This rank's rows of the catalogue: its contiguous shard of ``texts``, embedded."""
    from recbook.models.item_text import embed_texts

    start, stop = shard_bounds(len(texts), world_size)[rank]
    if stop == start:
        return np.zeros((0, 0), dtype=np.float32)
    return embed_texts(model, tokenizer, texts[start:stop], max_length, batch_size)


def distributed_embed(model, tokenizer, texts: list[str], rank: int, world_size: int, max_length: int = 64,
                      batch_size: int = 128) -> np.ndarray | None:
    """Embed ``texts`` (the same list on every rank) with every rank doing its shard; the ``(len(texts), dim)``
    matrix in the order given on rank 0, None on the others. Call it on every rank of an initialised process group."""
    if not texts:
        raise ValueError("distributed_embed got no texts")
    local = embed_shard(model, tokenizer, texts, rank, world_size, max_length, batch_size)
    return gather_in_order(local, len(texts), rank, world_size)


def check_against_one_process(model, tokenizer, texts: list[str], rank: int, world_size: int, max_length: int = 64,
                              batch_size: int = 128, threads_single: int | None = None) -> tuple[dict | None, np.ndarray | None]:
    """Embed ``texts`` sharded over the ranks, then (rank 0) once more in this one process, and compare. Returns on
    rank 0 ``(result, matrix)``: a dict with ``max_abs_diff``, ``ok`` (≤ :data:`TOLERANCE`), the rows per rank and both
    times, and the gathered matrix; ``(None, None)`` elsewhere.
    ``threads_single``: threads for the one-process run (default: this rank's threads × the world size, the cores
    the N ranks used together)."""
    from recbook.models.item_text import embed_texts

    dist.barrier()
    start = time.perf_counter()
    gathered = distributed_embed(model, tokenizer, texts, rank, world_size, max_length, batch_size)
    seconds = time.perf_counter() - start  # rank 0 returns after the gather, i.e. after the slowest rank
    result = None
    if rank == 0:
        threads = torch.get_num_threads()
        torch.set_num_threads(threads_single or threads * world_size)
        start = time.perf_counter()
        single = embed_texts(model, tokenizer, texts, max_length, batch_size)
        single_seconds = time.perf_counter() - start
        torch.set_num_threads(threads)
        diff = float(np.abs(gathered - single).max())
        result = {"check": "distributed-embed", "world_size": world_size, "items": len(texts), "dim": int(single.shape[1]),
                  "rows_per_rank": [b - a for a, b in shard_bounds(len(texts), world_size)], "seconds": seconds,
                  "single_process_seconds": single_seconds, "max_abs_diff": diff, "ok": diff <= TOLERANCE}
    dist.barrier()  # the other ranks wait here while rank 0 runs the reference
    return result, gathered
