"""Micro-batching: merge concurrent requests into one model call — the knob of Triton, Ray Serve and BentoML.

A cross-encoder scoring 20 pairs costs little more than one scoring 5, because the matrix products are
wider, not more numerous; on a CPU, one call of 640 pairs is much cheaper than 32 calls of 20. A server
answering requests one by one pays the fixed cost of every call; a **micro-batcher** holds each request
a few milliseconds so that requests arriving together share one call:

- the first request of a batch opens it; the batch closes when it holds ``max_batch_size`` requests or
  ``max_wait_ms`` have passed since it opened, whichever comes first;
- ``fn(list_of_items) -> list_of_results`` runs once per batch, in a worker thread (the event loop keeps
  accepting requests meanwhile — and they form the next batch);
- each caller awaits its own result; an exception in ``fn`` reaches every caller of that batch.

The trade: at low load a request waits up to ``max_wait_ms`` for company that does not come; at high load
throughput rises because the per-call cost is shared. Notebook 17 measures both sides.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class BatcherClosed(RuntimeError):
    """``submit`` was called after ``close``: the service is shutting down."""


class QueueFull(RuntimeError):
    """``submit`` found ``max_queue`` items already waiting: shed this one (the service answers 503) rather than let
    the queue — and every caller's wait — grow without bound."""


class MicroBatcher:
    """Merge concurrent ``await submit(item)`` calls into one ``fn(items)`` call per batch.

    ``fn`` must return one result per item, in the same order. ``on_batch(size)`` (optional) is called with
    each batch's size, e.g. to feed a Prometheus histogram. Create and use it inside one running event loop.
    """

    def __init__(self, fn: Callable[[list], list], max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int], Any] | None = None, max_queue: int | None = None):
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        if max_queue is not None and (not isinstance(max_queue, int) or max_queue < 1):
            raise ValueError(f"max_queue must be a positive integer (or None: unbounded), got {max_queue!r}")
        self.fn, self.max_batch_size, self.max_wait = fn, max_batch_size, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._pending: deque = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        self.batches = 0  # how many calls of fn were made
        self.items = 0  # how many items they held

    @property
    def closed(self) -> bool:
        return self._closed

    async def submit(self, item):
        """Queue ``item``, wait for its batch to run, return its result (or raise the batch's exception)."""
        if self._closed:
            raise BatcherClosed("the micro-batcher is closed (the service is shutting down)")
        if self.max_queue is not None and len(self._pending) >= self.max_queue:
            raise QueueFull(f"{len(self._pending)} items are already waiting (max_queue={self.max_queue})")
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="micro-batcher")
        future = loop.create_future()
        self._pending.append((item, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Stop accepting items, run every batch already queued, then return (a graceful shutdown's drain)."""
        self._closed = True
        if self._worker is None:
            return
        self._wake.set()
        await self._worker

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
            deadline = loop.time() + self.max_wait  # the batch opened when the worker saw its first item
            while len(self._pending) < self.max_batch_size and not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch_size, len(self._pending)))]
            await self._run_batch(batch)

    async def _run_batch(self, batch: list) -> None:
        items = [item for item, _ in batch]
        self.batches += 1
        self.items += len(items)
        if self.on_batch is not None:
            self.on_batch(len(items))
        try:
            results = await asyncio.to_thread(self.fn, items)
            results = list(results)
            if len(results) != len(items):
                raise RuntimeError(f"the batch function returned {len(results)} results for {len(items)} items; it must return one per item")
        except Exception as exc:  # every caller of this batch gets the error; the batcher keeps serving
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():  # a caller that gave up (cancelled) is skipped
                future.set_result(result)


# ------------------------------------------------------------------ how much can merging buy?
def call_cost_fit(items_per_call, seconds, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Fit ``seconds ≈ fixed + per_item × items`` to timed model calls (least squares) with bootstrap intervals.

    ``fixed`` is what a call costs whatever its size (Python, tokenizer set-up, ONNX Runtime's dispatch); ``per_item``
    is the cost of one more pair. Merging ``m`` requests of ``k`` items each into one call saves ``(m − 1) × fixed``
    and nothing of ``per_item``, so the fit bounds what micro-batching can gain (:func:`merge_gain_bound`).
    Returns ``{"fixed": Estimate, "per_item": Estimate}`` in seconds (``Estimate.n`` = number of timed calls);
    intervals resample the calls (percentile bootstrap).
    """
    from recbook.evaluation.stats import Estimate

    x = np.asarray(items_per_call, dtype=float)
    y = np.asarray(seconds, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"items_per_call and seconds must be 1-D and of the same length, got shapes {x.shape} and {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError("items_per_call needs at least two different call sizes to separate the fixed from the per-item cost")
    if not (np.isfinite(y).all() and (y >= 0).all()):
        raise ValueError("seconds must be finite and non-negative")

    def fit(xs, ys):
        slope, intercept = np.polyfit(xs, ys, 1)
        return intercept, slope

    fixed, per_item = fit(x, y)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if len(np.unique(x[idx])) >= 2:  # a resample with one call size cannot be fitted; draw again next round
            draws.append(fit(x[idx], y[idx]))
    draws = np.asarray(draws)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha], axis=0)
    return {"fixed": Estimate(float(fixed), float(lo[0]), float(hi[0]), len(x), level),
            "per_item": Estimate(float(per_item), float(lo[1]), float(hi[1]), len(x), level)}


def merge_gain_bound(fixed: float, per_item: float, items_per_request: float) -> float:
    """The most micro-batching can multiply throughput by when each request carries ``items_per_request`` items:
    alone a request costs ``fixed + per_item × k``; merged with arbitrarily many others it costs ``per_item × k``
    (the fixed cost shared away). Padding, waiting and HTTP handling only lower the real gain."""
    if per_item <= 0 or items_per_request <= 0:
        raise ValueError(f"per_item and items_per_request must be positive, got {per_item} and {items_per_request}")
    return (max(fixed, 0.0) + per_item * items_per_request) / (per_item * items_per_request)
