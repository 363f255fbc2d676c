"""The service's state behind the app: the current bundle, the batcher, limits, metrics."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from recbook.continual.drift_export import DriftGauges
from recbook.serve.batching import MicroBatcher, QueueFull
from recbook.serve.bundle import Bundle, load_bundle
from recbook.serve.live_drift import LiveDrift, LiveDriftGauges
from recbook.serve.logs import get_logger
from recbook.serve.security import (
    IdMasker,
    RateLimiter,
)
from recbook.serve.settings import ServeSettings


# ------------------------------------------------------------------ metrics
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (two apps in one process do not collide)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector

        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes … (a custom registry lacks them)
        PlatformCollector(registry=r)  # python_info
        self.requests = Counter("recbook_requests", "HTTP requests by route and status code", ["route", "status"], registry=r)
        # status_class (2xx, 4xx, 5xx): a fast 429 or 503 must not hide a slow model in the p99 alert
        self.latency = Histogram("recbook_request_seconds", "Request latency by route and status class", ["route", "status_class"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.batch = Histogram("recbook_rerank_batch_requests", "Requests merged into one re-ranker call", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.pairs = Counter("recbook_rerank_pairs", "(history, candidate) pairs scored by the re-ranker", registry=r)
        self.model = Gauge("recbook_model_info", "The model version being served (value 1)", ["version"], registry=r)
        self.ready = Gauge("recbook_ready", "1 when a bundle is loaded and warmed up", registry=r)
        self.cache = Counter("recbook_user_vector_cache", "User-vector cache lookups", ["result"], registry=r)
        self.reloads = Counter("recbook_reloads", "Model reloads by outcome", ["outcome"], registry=r)
        for outcome in ("ok", "failed", "refused"):  # exported at 0 from the start: increase() sees the first failure
            self.reloads.labels(outcome=outcome)
        self.rate_limited = Counter("recbook_rate_limited", "Requests refused by the rate limit", ["reason"], registry=r)
        self.inflight = Gauge("recbook_inflight_requests", "Model-route requests being answered now", registry=r)
        self.waiting = Gauge("recbook_waiting_requests", "Model-route requests waiting for a slot under the in-flight cap", registry=r)
        self.shed = Counter("recbook_shed", "Requests refused with 503 because the service was at capacity", ["reason"], registry=r)
        self.model_cpu = Histogram("recbook_model_cpu_seconds", "CPU time the model spent on one request, by route", ["route"],
                                   registry=r, buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.served = Counter("recbook_responses_by_version", "Model-route responses by the model version that answered them",
                              ["version"], registry=r)
        self.store_errors = _StoreErrors()  # recbook_rate_limit_store_errors_total, read from the service's limiters
        r.register(self.store_errors)
        self.drift = DriftGauges(r)
        self.live_drift = LiveDriftGauges(r)  # recbook_live_drift_psi{signal}, recbook_live_update_due: what requests send  # recbook_drift_psi{signal}, recbook_update_due: only while the bundle has a drift.json

    def set_version(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)


class _StoreErrors:
    """``recbook_rate_limit_store_errors_total``: checks the shared store did not answer in time (the request was let
    through: the limit fails open). Read from the limiters at every scrape."""

    def __init__(self, limiters=()):
        self.limiters = tuple(limiters)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily("recbook_rate_limit_store_errors", "Rate-limit checks the shared store did not answer "
                                  "(the request was let through)", value=sum(lim.store_errors for lim in self.limiters))


# ------------------------------------------------------------------ the service's state
@dataclass
class Service:
    """The mutable state behind the app: the current bundle (swapped as one reference), the batcher, metrics, logs."""

    bundle_dir: Path
    settings: ServeSettings
    metrics: Metrics = field(default_factory=Metrics)
    bundle: Bundle | None = None
    ready: bool = False
    load_error: str | None = None
    batcher: MicroBatcher | None = None
    reload_state: dict = field(default_factory=lambda: {"state": "idle"})
    tasks: set = field(default_factory=set)

    def __post_init__(self):
        self.logger = get_logger()
        self.mask = IdMasker(self.settings.log_salt)
        self.limiter = RateLimiter(self.settings.rate_limit, self.settings.rate_burst, storage=self.settings.rate_limit_storage)
        self.auth_limiter = RateLimiter(self.settings.auth_fail_rate, self.settings.auth_fail_burst,
                                        storage=self.settings.rate_limit_storage, namespace="recbook-auth")
        self.metrics.store_errors.limiters = (self.limiter, self.auth_limiter)
        self.inflight = 0
        self._waiters: deque[asyncio.Future] = deque()  # requests waiting for a slot, first come first served
        self.reload_lock = asyncio.Lock()
        self.models_root = Path(self.settings.models_root or self.bundle_dir.resolve().parent).resolve()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def overloaded(self) -> bool:
        """The next model request would be shed: every slot is busy and the waiting room is full."""
        cap = self.settings.max_inflight
        return bool(cap) and self.inflight >= cap and len(self._waiters) >= self.settings.max_waiting

    async def acquire(self) -> bool:
        """A slot for one model request under the in-flight cap (``max_inflight``); ``False`` when it must be shed.

        Under the cap the slot is taken at once. At the cap the request waits its turn (first come, first served) while
        fewer than ``max_waiting`` are waiting; a finished request hands its slot straight to the first waiter. A
        waiting room turns the cap from "refuse whenever more than ``max_inflight`` requests overlap" — with a cap of 2 and no
        room, 4-7% of requests at a quarter of capacity were refused in three runs, about the share of Poisson arrivals
        that find two in flight — into "refuse when the backlog is longer than ``max_waiting``", which bounds the wait
        of an accepted request at about ``max_waiting / max_inflight`` service times. Release every slot with :meth:`release`."""
        cap = self.settings.max_inflight
        if not cap or (self.inflight < cap and not self._waiters):
            self._take()
            return True
        if len(self._waiters) >= self.settings.max_waiting:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self.metrics.waiting.set(len(self._waiters))
        try:
            await turn  # release() hands over its slot: ``inflight`` already counts this request
        except BaseException:  # the client left while waiting (the task was cancelled)
            if turn.done() and not turn.cancelled():
                self.release()  # the slot was handed over just now: pass it on
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise
        finally:
            self.metrics.waiting.set(len(self._waiters))
        return True

    def _take(self) -> None:
        self.inflight += 1
        self.metrics.inflight.set(self.inflight)

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`: to the first request still waiting, else to the pool."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                self.metrics.waiting.set(len(self._waiters))
                return
        self.inflight -= 1
        self.metrics.inflight.set(self.inflight)

    def charge(self, request: Request, cost: float) -> None:
        """Charge the request's key ``cost`` more units (the first one was charged at the door): 429 when it cannot pay."""
        who = getattr(request.state, "key_id", None)
        if who is None or cost <= 0 or self.settings.rate_limit is None:
            return
        if 1 + cost > self.limiter.capacity:  # the unit paid at the door counts: it could never pass, whenever retried
            self.metrics.rate_limited.labels(reason="cost").inc()
            raise HTTPException(status_code=429, detail=f"this request costs {1 + cost:g} units, more than the burst of "
                                f"{self.limiter.capacity:g} a key may spend at once; send fewer candidates or history items")
        wait = self.limiter.check(who, cost)
        if wait > 0:
            self.metrics.rate_limited.labels(reason="cost").inc()
            retry = max(1, math.ceil(wait + 1.0 / self.settings.rate_limit))  # a retry pays the door's unit again
            raise HTTPException(status_code=429, headers={"Retry-After": str(retry)},
                                detail=f"rate limit of {self.settings.rate_limit:g} units/second per key exceeded by this request's "
                                       f"cost ({1 + cost:g} units); retry after {retry} s")

    def record_cpu(self, request: Request, route: str, seconds: float) -> None:
        """The model's CPU time for this request (the calling thread's, ``time.thread_time``; a re-ranker batch's time
        shared by pairs): a histogram, an ``X-Model-CPU-Ms`` header and the log line. ONNX Runtime's own intra-op
        threads (``ort_threads`` > 1) are not included."""
        self.metrics.model_cpu.labels(route=route).observe(seconds)
        request.state.model_cpu_ms = round(seconds * 1000, 3)

    def load(self, folder: Path) -> Bundle:
        """Verify, load and warm up a bundle (runs in a worker thread)."""
        bundle = load_bundle(folder, threads=self.settings.ort_threads)  # also reads and checks drift.json
        bundle.warm_up()
        if self.settings.drift_window:
            bundle.live_drift = LiveDrift.from_bundle(bundle, window=self.settings.drift_window)
        return bundle

    def swap(self, bundle: Bundle) -> None:
        """Make ``bundle`` the current one: a single reference assignment, atomic for every request that starts after it."""
        self.bundle, self.ready, self.load_error = bundle, True, None
        self.metrics.set_version(bundle.version)
        self.metrics.drift.set(bundle.drift)  # None (no drift.json): no drift gauges
        self.metrics.live_drift.drift = bundle.live_drift  # a new version starts a new live window
        self.metrics.ready.set(1)

    # -- user vectors with a small LRU cache per bundle (user_id requests only: a stored history never changes within a
    #    bundle, and a cache that lives on the bundle goes away with it — a swapped-in version never sees an old vector)
    def user_vector(self, bundle: Bundle, user_id: int, history: np.ndarray) -> np.ndarray:
        size = self.settings.cache_size
        if size:
            with bundle.cache_lock:  # worker threads share the cache
                vector = bundle.vector_cache.get(user_id)
                if vector is not None:
                    bundle.vector_cache.move_to_end(user_id)
            self.metrics.cache.labels(result="hit" if vector is not None else "miss").inc()
            if vector is not None:
                return vector
        vector = bundle.user_vectors([history])[0]
        if size:
            with bundle.cache_lock:
                bundle.vector_cache[user_id] = vector
                while len(bundle.vector_cache) > size:
                    bundle.vector_cache.popitem(last=False)
        return vector

    def rerank_batch(self, items: list[tuple[Bundle, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """The batcher's function: requests grouped by bundle (two only during a swap), one ONNX pass per group."""
        out: list = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (bundle, _, _) in enumerate(items):
            groups.setdefault(id(bundle), []).append(i)
        for positions in groups.values():
            bundle = items[positions[0]][0]
            started = time.thread_time()
            scores = bundle.rerank_many([(items[i][1], items[i][2]) for i in positions])
            cpu = time.thread_time() - started
            pairs = sum(len(items[i][2]) for i in positions) or 1
            for i, s in zip(positions, scores):
                out[i] = (s, cpu * len(items[i][2]) / pairs)  # the batch's CPU, shared by pairs scored
        self.metrics.pairs.inc(sum(len(c) for _, _, c in items))
        return out

    async def rerank(self, bundle: Bundle, history: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, float]:
        """``(logits, CPU seconds of this request's share)``; 503 when the batcher's queue is full.

        The candidates go to the batcher ``settings.rerank_chunk`` at a time, each chunk queued after the previous one
        was answered: requests that arrived meanwhile are ahead of the next chunk, so a heavy request cannot hold a light
        one for longer than one chunk (the heavy one pays for it with more, smaller calls)."""
        chunk = self.settings.rerank_chunk or max(1, len(candidates))
        parts = [candidates[i : i + chunk] for i in range(0, len(candidates), chunk)] or [candidates]
        logits, cpu = [], 0.0
        for part in parts:
            scores, seconds = await self._rerank_part(bundle, history, part)
            logits.append(np.asarray(scores))
            cpu += seconds
        return (logits[0] if len(logits) == 1 else np.concatenate(logits)), cpu

    async def _rerank_part(self, bundle: Bundle, history: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, float]:
        if self.batcher is not None:
            try:
                return await self.batcher.submit((bundle, history, candidates))
            except QueueFull:
                self.metrics.shed.labels(reason="queue").inc()
                raise HTTPException(status_code=503, detail="the re-ranker queue is full; retry shortly",
                                    headers={"Retry-After": "1"}) from None
        self.metrics.batch.observe(1)
        return (await run_in_threadpool(self.rerank_batch, [(bundle, history, candidates)]))[0]


