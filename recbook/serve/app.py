"""The recommendation service: a FastAPI app over one verified bundle, with keys, limits, metrics and hot swap.

Taught in notebook ``12_serving``. ``create_app(bundle_dir, settings)`` returns an ASGI app that uvicorn runs
(``python -m recbook serve --model DIR``). What a request meets, outermost first (:class:`ServiceMiddleware`):

1. a request id (``X-Request-ID`` echoed when it is a short token, else generated) and a timer;
2. the API key (``X-API-Key``, 401 without or with a wrong one; ``/admin/*`` needs an *admin* key and is closed —
   403 — whenever none is set); failed authentications are rate-limited per client address (429);
3. the per-key rate limit, one unit at the door (429 with ``Retry-After``); the endpoint charges the rest of the
   request's cost — one unit per pair or pass it scores — once it knows it; limits are per process, or shared by
   every replica through Redis (``RECBOOK_RATE_LIMIT_STORAGE``);
4. the in-flight cap (``RECBOOK_MAX_INFLIGHT``): beyond it 503 with ``Retry-After`` and ``/readyz`` answers 503, so
   a load balancer sends the next requests elsewhere; the re-ranker's batch queue is bounded too;
5. the body size limit (413) — the body is read at most to the limit, never further;
6. FastAPI's validation of the JSON body against pydantic models with limits (422 naming the field);
7. the endpoint, which takes the *current* bundle once and uses it to the end — so a hot swap never mixes two
   versions within one answer, and requests in flight finish on the old model. Every answer names the version in
   ``X-Model-Version`` and the model's CPU time for it in ``X-Model-CPU-Ms`` (also ``recbook_model_cpu_seconds``).

Endpoints:

- ``POST /recommend`` ``{user_id | history, k, exclude_seen, rerank}``: the cascade — the retriever's user vector
  against the item matrix gives the top ``retrieve_n``; the int8 cross-encoder re-ranks the first ``rerank_k``
  (micro-batched with concurrent requests); the top ``k`` come back with titles, scores and the model version.
- ``POST /rerank`` ``{history, candidates}``: the cross-encoder's scores of the candidates.
- ``POST /explain`` ``{history, item_id}``: leave-one-out attribution — how much the retriever's score for the item
  drops when each history item is removed.
- ``GET /livez`` (the process answers), ``GET /readyz`` (a bundle is loaded and warmed up), ``GET /metrics``
  (Prometheus text format: requests by route and status, latency histograms, re-ranker batch sizes, model
  version, cache hits, reloads).
- ``POST /admin/reload`` ``{bundle_dir}`` (admin key): verify and load a new bundle in the background, warm it up,
  swap it in atomically; ``GET /admin/reload`` tells how the last reload went. ``bundle_dir`` is a folder under the
  models root (``RECBOOK_MODELS_ROOT``, default: the first bundle's parent), verified exactly as at start (422 naming
  the bad file); one reload at a time (409 while one runs, and with several worker processes); without
  ``RECBOOK_ADMIN_KEYS`` the endpoint answers 403.

The probes and ``/metrics`` need no key (orchestrators and Prometheus call them; keep the port on a private network,
as ``--host 127.0.0.1`` does); every other path, unknown ones included, answers 401 without a valid key.

Settings (:class:`ServeSettings`) come from the environment (``RECBOOK_API_KEYS``, ``RECBOOK_ADMIN_KEYS``,
``RECBOOK_RATE_LIMIT``, ``RECBOOK_LOG_SALT``) and keyword overrides. Without API keys the app refuses to start
unless ``insecure_dev=True`` — and then says so loudly in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from starlette.concurrency import run_in_threadpool

from ..drift import DriftGauges
from .batching import MicroBatcher, QueueFull
from .bundle import Bundle, BundleError, UnknownItems, load_bundle, verify_bundle
from .logs import get_logger, log
from .security import (
    ADMIN_KEYS_ENV,
    API_KEY_HEADER,
    API_KEYS_ENV,
    LOG_SALT_ENV,
    RATE_LIMIT_ENV,
    RATE_LIMIT_STORAGE_ENV,
    IdMasker,
    RateLimiter,
    SecurityConfigError,
    match_key,
    parse_keys,
    parse_rate_limit,
)

MAX_K = 100
MAX_HISTORY = 200
MAX_CANDIDATES = 200
PUBLIC_PATHS = ("/livez", "/readyz", "/metrics")
MODEL_ROUTES = ("/recommend", "/rerank", "/explain")  # what the in-flight cap, cost and version counts are about
ROUTES = ("/recommend", "/rerank", "/explain", "/livez", "/readyz", "/metrics", "/admin/reload")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
BUNDLE_ENV = "RECBOOK_SERVE_BUNDLE"
INSECURE_ENV = "RECBOOK_INSECURE_DEV"
OPTIONS_ENV = "RECBOOK_SERVE_OPTIONS"  # JSON of ServeSettings overrides, set by ``recbook serve`` for its workers
MAX_INFLIGHT_ENV = "RECBOOK_MAX_INFLIGHT"
MODELS_ROOT_ENV = "RECBOOK_MODELS_ROOT"
VERSION_HEADER = "x-model-version"
CPU_HEADER = "x-model-cpu-ms"


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class ServeSettings:
    """Everything the service can be tuned with. :meth:`from_env` reads the secrets from the environment."""

    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    insecure_dev: bool = False  # serve without keys (local experiments only; logged as a warning)
    rate_limit: float | None = None  # cost units (model passes / pairs scored) per second per key; None = no limit
    rate_burst: float | None = None  # bucket size; default max(1, rate_limit)
    rate_limit_storage: str | None = None  # None: per-process buckets; redis://127.0.0.1:6379/0: shared by every replica
    auth_fail_rate: float = 2.0  # failed authentications per second allowed per client address (then 429)
    auth_fail_burst: float = 20.0
    max_inflight: int = 64  # requests being answered at once (model routes); beyond: 503 + Retry-After, /readyz 503; 0 = no cap
    max_queue: int = 256  # re-ranker requests waiting for a batch; beyond: 503 + Retry-After
    models_root: str | None = None  # /admin/reload only loads bundles under this folder (default: the first bundle's parent)
    workers: int = 1  # uvicorn worker processes: with more than one, /admin/reload would reach one of them, so it is refused
    max_body_bytes: int = 64 * 1024
    retrieve_n: int = 100  # candidates the retriever hands to the re-ranker stage
    rerank_k: int = 20  # how many of them the cross-encoder re-scores
    batching: bool = True  # merge concurrent re-ranker calls (MicroBatcher)
    max_batch_size: int = 32  # requests per re-ranker batch
    max_wait_ms: float = 5.0
    cache_size: int = 10_000  # user vectors cached for user_id requests (0 = no cache)
    ort_threads: int | None = None  # ONNX Runtime intra-op threads (None: its default)
    # torch threads of the whole process (None: unchanged). 1 by default: a server's parallelism comes from concurrent
    # requests, and a small transformer split over threads pays their synchronisation on every call (measured on the
    # 2-core machine: 9.9 ms per retrieval with 2 threads, 0.38 ms with 1)
    torch_threads: int | None = 1
    log_salt: str | None = None  # salt of the user-id hash in logs (None: $RECBOOK_LOG_SALT, else random per process)
    load_in_background: bool = True  # listen at once (livez) and load the bundle in a thread (readyz waits for it)

    def __post_init__(self):
        zero_ok = ("rerank_k", "cache_size", "max_inflight")
        for name in ("retrieve_n", "rerank_k", "max_batch_size", "max_body_bytes", "cache_size", "max_inflight", "max_queue", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name in zero_ok else 1):
                raise ValueError(f"ServeSettings.{name} must be a {'non-negative' if name in zero_ok else 'positive'} "
                                 f"integer, got {value!r}")
        if self.max_wait_ms < 0:
            raise ValueError(f"ServeSettings.max_wait_ms must be >= 0, got {self.max_wait_ms}")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "ServeSettings":
        """Settings from ``RECBOOK_API_KEYS``, ``RECBOOK_ADMIN_KEYS``, ``RECBOOK_RATE_LIMIT``, ``RECBOOK_RATE_LIMIT_STORAGE``,
        ``RECBOOK_MAX_INFLIGHT``, ``RECBOOK_MODELS_ROOT``, ``RECBOOK_LOG_SALT`` (and ``RECBOOK_INSECURE_DEV=1``), then
        ``overrides`` (any field)."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown ServeSettings field(s): {sorted(unknown)}")
        values = dict(api_keys=parse_keys(env.get(API_KEYS_ENV), API_KEYS_ENV), admin_keys=parse_keys(env.get(ADMIN_KEYS_ENV), ADMIN_KEYS_ENV),
                      rate_limit=parse_rate_limit(env.get(RATE_LIMIT_ENV)), log_salt=env.get(LOG_SALT_ENV) or None,
                      insecure_dev=env.get(INSECURE_ENV, "") in ("1", "true", "yes"),
                      rate_limit_storage=env.get(RATE_LIMIT_STORAGE_ENV) or None, models_root=env.get(MODELS_ROOT_ENV) or None)
        if env.get(MAX_INFLIGHT_ENV, "").strip():
            try:
                values["max_inflight"] = int(env[MAX_INFLIGHT_ENV])
            except ValueError:
                raise SecurityConfigError(f"{MAX_INFLIGHT_ENV}={env[MAX_INFLIGHT_ENV]!r} is not an integer; give the most requests "
                                          "answered at once, e.g. 64 (0: no cap)") from None
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        """Refuse to serve without API keys unless ``insecure_dev`` (:class:`SecurityConfigError`, naming the variable)."""
        if not self.api_keys and not self.insecure_dev:
            raise SecurityConfigError(f"no API keys: set {API_KEYS_ENV} (comma-separated keys of at least 16 characters, e.g. "
                                      "python -c \"import secrets; print(secrets.token_urlsafe(32))\"), or pass --insecure-dev for a "
                                      "local experiment without keys")


# ------------------------------------------------------------------ request and response bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


ItemIds = list[StrictInt]


class RecommendRequest(_Body):
    """Either a known ``user_id`` (its stored history) or an explicit ``history`` (item ids, oldest first)."""

    user_id: StrictInt | None = None
    history: ItemIds | None = Field(None, max_length=MAX_HISTORY)
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    exclude_seen: StrictBool = True
    rerank: StrictBool = True  # False: retrieval only (the first stage alone)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.user_id is None) == (self.history is None):
            raise ValueError("give exactly one of user_id (a known user) or history (item ids, oldest first)")
        return self


class RerankRequest(_Body):
    history: ItemIds = Field(..., max_length=MAX_HISTORY)
    candidates: ItemIds = Field(..., min_length=1, max_length=MAX_CANDIDATES)


class ExplainRequest(_Body):
    history: ItemIds = Field(..., min_length=1, max_length=MAX_HISTORY)
    item_id: StrictInt


class ReloadRequest(_Body):
    bundle_dir: str = Field(..., min_length=1, max_length=4096)


# ------------------------------------------------------------------ metrics
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (two apps in one process do not collide)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("recbook_requests", "HTTP requests by route and status code", ["route", "status"], registry=r)
        self.latency = Histogram("recbook_request_seconds", "Request latency by route", ["route"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.batch = Histogram("recbook_rerank_batch_requests", "Requests merged into one re-ranker call", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.pairs = Counter("recbook_rerank_pairs", "(history, candidate) pairs scored by the re-ranker", registry=r)
        self.model = Gauge("recbook_model_info", "The model version being served (value 1)", ["version"], registry=r)
        self.ready = Gauge("recbook_ready", "1 when a bundle is loaded and warmed up", registry=r)
        self.cache = Counter("recbook_user_vector_cache", "User-vector cache lookups", ["result"], registry=r)
        self.reloads = Counter("recbook_reloads", "Model reloads by outcome", ["outcome"], registry=r)
        self.rate_limited = Counter("recbook_rate_limited", "Requests refused by the rate limit", ["reason"], registry=r)
        self.inflight = Gauge("recbook_inflight_requests", "Model-route requests being answered now", registry=r)
        self.shed = Counter("recbook_shed", "Requests refused with 503 because the service was at capacity", ["reason"], registry=r)
        self.model_cpu = Histogram("recbook_model_cpu_seconds", "CPU time the model spent on one request, by route", ["route"],
                                   registry=r, buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.served = Counter("recbook_responses_by_version", "Model-route responses by the model version that answered them",
                              ["version"], registry=r)
        self.drift = DriftGauges(r)  # recbook_drift_psi{signal}, recbook_update_due: only while the bundle has a drift.json

    def set_version(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)


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
        self.inflight = 0
        self.reload_lock = asyncio.Lock()
        self.models_root = Path(self.settings.models_root or self.bundle_dir.resolve().parent).resolve()

    @property
    def overloaded(self) -> bool:
        return bool(self.settings.max_inflight) and self.inflight >= self.settings.max_inflight

    def charge(self, request: Request, cost: float) -> None:
        """Charge the request's key ``cost`` more units (the first one was charged at the door): 429 when it cannot pay."""
        who = getattr(request.state, "key_id", None)
        if who is None or cost <= 0 or self.settings.rate_limit is None:
            return
        wait = self.limiter.check(who, cost)
        if wait > 0:
            self.metrics.rate_limited.labels(reason="cost").inc()
            if math.isinf(wait):
                raise HTTPException(status_code=429, detail=f"this request costs {1 + cost:g} units, more than the burst of "
                                    f"{self.limiter.burst:g} a key may spend at once; send fewer candidates or history items")
            retry = max(1, math.ceil(wait))
            raise HTTPException(status_code=429, headers={"Retry-After": str(retry)},
                                detail=f"rate limit of {self.settings.rate_limit:g} units/second per key exceeded by this request's "
                                       f"cost ({1 + cost:g} units); retry after {retry} s")

    def record_cpu(self, request: Request, route: str, seconds: float) -> None:
        """The model's CPU time for this request: a histogram, an ``X-Model-CPU-Ms`` header and the log line."""
        self.metrics.model_cpu.labels(route=route).observe(seconds)
        request.state.model_cpu_ms = round(seconds * 1000, 3)

    def load(self, folder: Path) -> Bundle:
        """Verify, load and warm up a bundle (runs in a worker thread)."""
        bundle = load_bundle(folder, threads=self.settings.ort_threads)  # also reads and checks drift.json
        bundle.warm_up()
        return bundle

    def swap(self, bundle: Bundle) -> None:
        """Make ``bundle`` the current one: a single reference assignment, atomic for every request that starts after it."""
        self.bundle, self.ready, self.load_error = bundle, True, None
        self.metrics.set_version(bundle.version)
        self.metrics.drift.set(bundle.drift)  # None (no drift.json): no drift gauges
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
        """``(logits, CPU seconds of this request's share)``; 503 when the batcher's queue is full."""
        if self.batcher is not None:
            try:
                return await self.batcher.submit((bundle, history, candidates))
            except QueueFull:
                self.metrics.shed.labels(reason="queue").inc()
                raise HTTPException(status_code=503, detail="the re-ranker queue is full; retry shortly",
                                    headers={"Retry-After": "1"}) from None
        self.metrics.batch.observe(1)
        return (await run_in_threadpool(self.rerank_batch, [(bundle, history, candidates)]))[0]


# ------------------------------------------------------------------ the middleware
def _json_bytes(payload: dict) -> bytes:
    return json.dumps(payload).encode("utf-8")


class ServiceMiddleware:
    """Request id, timing, metrics and the JSON log line; keys, rate limit and body size, before FastAPI sees the request.

    A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``): it can refuse a request before its body is read
    and it counts the bytes of a body sent without ``Content-Length`` (chunked), stopping at the limit.
    """

    def __init__(self, app, service: Service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        service, start = self.service, time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        status = {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if state.get("model_version"):  # the version that answered (set once per request by current())
                    extra.append((VERSION_HEADER.encode(), str(state["model_version"]).encode("latin-1", "replace")))
                    if route in MODEL_ROUTES and 200 <= message["status"] < 300:
                        service.metrics.served.labels(version=str(state["model_version"])).inc()
                if state.get("model_cpu_ms") is not None:
                    extra.append((CPU_HEADER.encode(), str(state["model_cpu_ms"]).encode()))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        counted = False
        try:
            refusal = self._gate(path, headers, state, scope)
            if refusal is None and route in MODEL_ROUTES:
                if service.overloaded:
                    service.metrics.shed.labels(reason="inflight").inc()
                    refusal = (503, {"detail": f"the service is answering {service.inflight} requests, its cap "
                                               f"({MAX_INFLIGHT_ENV}={service.settings.max_inflight}); retry shortly"},
                               [(b"retry-after", b"1")])
                else:
                    service.inflight += 1
                    service.metrics.inflight.set(service.inflight)
                    counted = True
            body = b""
            if refusal is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(headers, receive)
            if refusal is not None:
                code, payload, extra = refusal
                payload["request_id"] = request_id
                await send_with_id({"type": "http.response.start", "status": code,
                                    "headers": [(b"content-type", b"application/json"), *extra]})
                await send_with_id({"type": "http.response.body", "body": _json_bytes(payload)})
                return
            replayed = {"done": False}

            async def replay():
                if not replayed["done"]:
                    replayed["done"] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_id)
        finally:
            if counted:
                service.inflight -= 1
                service.metrics.inflight.set(service.inflight)
            elapsed = time.perf_counter() - start
            service.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            service.metrics.latency.labels(route=route).observe(elapsed)
            if route not in ("/metrics", "/livez", "/readyz") or status["code"] >= 400:
                fields_ = {"request_id": request_id, "method": scope.get("method"), "route": route, "status": status["code"],
                           "ms": round(elapsed * 1000, 2), "key": state.get("key_id")}
                for extra_field in ("user", "model_version", "model_cpu_ms", "error"):
                    if extra_field in state:
                        fields_[extra_field] = state[extra_field]
                log(service.logger, logging.WARNING if status["code"] >= 500 else logging.INFO, "request", **fields_)

    def _gate(self, path: str, headers: dict, state: dict, scope: dict | None = None):
        """``None`` when the request may go on, else ``(status, json payload, extra headers)``."""
        settings = self.service.settings
        admin = path.startswith("/admin/")
        if path in PUBLIC_PATHS or (settings.insecure_dev and not admin):
            state["key_id"] = None if path in PUBLIC_PATHS else "insecure-dev"
            who = "insecure-dev"
        else:
            keys = settings.admin_keys if admin else settings.api_keys
            if admin and not keys:  # closed whenever no admin key is set, --insecure-dev included
                return 403, {"detail": f"admin endpoints are off: set {ADMIN_KEYS_ENV} to enable /admin/reload"}, []
            given = headers.get(API_KEY_HEADER)
            who = match_key(given, keys)
            if who is None:
                client = (scope or {}).get("client") or ("unknown", 0)
                wait = self.service.auth_limiter.check(f"addr:{client[0]}")  # failed authentication: charged to the address
                if wait > 0:
                    self.service.metrics.rate_limited.labels(reason="auth").inc()
                    retry = max(1, math.ceil(wait))
                    return 429, {"detail": f"too many failed authentications from this address; retry after {retry} s"}, [
                        (b"retry-after", str(retry).encode())]
                what = "an admin key" if admin else "an API key"
                reason = "missing" if not given else "wrong"
                return 401, {"detail": f"{reason} {API_KEY_HEADER.title()} header: this endpoint needs {what}"}, [(b"www-authenticate", b"ApiKey")]
            state["key_id"] = who
        if path not in PUBLIC_PATHS:
            wait = self.service.limiter.check(who)
            if wait > 0:
                self.service.metrics.rate_limited.labels(reason="rate").inc()
                retry = max(1, math.ceil(wait))
                return 429, {"detail": f"rate limit of {settings.rate_limit:g} units/second per key exceeded; retry after {retry} s"}, [
                    (b"retry-after", str(retry).encode())]
        return None

    async def _read_body(self, headers: dict, receive):
        """``(body, None)`` or ``(b"", refusal)``: at most ``max_body_bytes`` are read."""
        limit = self.service.settings.max_body_bytes
        too_big = (413, {"detail": f"request body larger than {limit} bytes; send fewer history items or candidates"}, [])
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return b"", (400, {"detail": "Content-Length header is not a non-negative integer"}, [])
            if int(declared) > limit:
                return b"", too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None


# ------------------------------------------------------------------ the app
class FieldError(Exception):
    """A request body that parses but names something the model does not know: a 422 in FastAPI's error format."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors)
        self.errors = errors


def _field_error(field_name: str, msg: str, bad: list | None = None) -> FieldError:
    locs = [["body", field_name, p] for p, _ in bad] if bad else [["body", field_name]]
    return FieldError([{"loc": loc, "msg": msg, "type": "value_error"} for loc in locs[:10]])


def _unprocessable(request: Request, errors: list[dict]) -> JSONResponse:
    """422 with every error's location, the fields named (``"history"``, ``"k"``, or ``"body"``) and the request id."""
    fields_ = sorted({".".join(str(p) for p in e["loc"][1:2]) or "body" for e in errors})
    return JSONResponse(status_code=422, content={"detail": errors, "fields": fields_, "request_id": request.state.request_id})


def _rows(bundle: Bundle, ids: list[int], field_name: str) -> np.ndarray:
    try:
        return bundle.rows_of(ids, field_name)
    except UnknownItems as exc:
        raise _field_error(field_name, str(exc), bad=exc.bad) from None


def create_app(bundle_dir: str | os.PathLike, settings: ServeSettings | None = None) -> FastAPI:
    """The service for the bundle in ``bundle_dir``. Checks the settings and verifies the bundle's files *now*
    (so a bad key setup or a tampered file stops the process before it listens); loads and warms up the bundle
    when the app starts (in the background with ``settings.load_in_background``: ``/readyz`` answers 503 until then).
    """
    settings = settings or ServeSettings.from_env()
    settings.check()
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    service = Service(bundle_dir, settings)
    if settings.insecure_dev:
        log(service.logger, logging.WARNING, "INSECURE DEV MODE: no API key is checked; never expose this server",
            api_keys_configured=bool(settings.api_keys))

    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        if settings.batching:
            service.batcher = MicroBatcher(service.rerank_batch, settings.max_batch_size, settings.max_wait_ms,
                                           on_batch=service.metrics.batch.observe, max_queue=settings.max_queue)

        async def initial_load():
            try:
                service.swap(await loop.run_in_executor(None, service.load, bundle_dir))
                log(service.logger, logging.INFO, "ready", model_version=service.bundle.version, bundle_dir=str(bundle_dir))
            except Exception as exc:
                service.load_error = f"{type(exc).__name__}: {exc}"
                log(service.logger, logging.ERROR, "bundle load failed", error=service.load_error)

        if settings.load_in_background:
            task = loop.create_task(initial_load())
            service.tasks.add(task)
            task.add_done_callback(service.tasks.discard)
        else:
            await initial_load()
        log(service.logger, logging.INFO, "starting", model_version=manifest["version"], rate_limit=settings.rate_limit,
            batching=settings.batching, retrieve_n=settings.retrieve_n, rerank_k=settings.rerank_k)
        try:
            yield
        finally:
            if service.batcher is not None:
                await service.batcher.close()  # finish every re-ranker batch already queued
            log(service.logger, logging.INFO, "stopped")

    app = FastAPI(title="recbook recommendation service", lifespan=lifespan, docs_url="/docs" if settings.insecure_dev else None,
                  redoc_url=None, openapi_url="/openapi.json" if settings.insecure_dev else None)
    app.state.service = service
    app.add_middleware(ServiceMiddleware, service=service)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _unprocessable(request, [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                                        for e in exc.errors()])

    @app.exception_handler(FieldError)
    async def _unknown(request: Request, exc: FieldError):
        return _unprocessable(request, exc.errors)

    def current(request: Request) -> Bundle:
        bundle = service.bundle  # one read: this request uses this version to the end
        if bundle is None:
            detail = "model not loaded: the load failed (see the service log)" if service.load_error else "model still loading; retry shortly"
            raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "1"})
        request.state.model_version = bundle.version
        return bundle

    @app.post("/recommend")
    async def recommend(body: RecommendRequest, request: Request):
        bundle = current(request)
        if body.user_id is not None:
            request.state.user = service.mask(body.user_id)
            history = bundle.histories.get(body.user_id)
            if history is None:
                raise HTTPException(status_code=404, detail="user_id is not among the model's known users; send 'history' (item ids) instead")
        else:
            history = _rows(bundle, body.history, "history")
        n = max(settings.retrieve_n, body.k)
        will_rerank = bool(body.rerank and bundle.reranker is not None and settings.rerank_k > 0)
        service.charge(request, settings.rerank_k if will_rerank else 0)  # one unit was charged at the door

        def first_stage():  # one trip to a worker thread: user vector (cached for known users) and top-n search
            started = time.thread_time()
            vector = service.user_vector(bundle, body.user_id, history) if body.user_id is not None else None
            return bundle.retrieve(history, n, body.exclude_seen, vector), time.thread_time() - started

        (scores, rows), cpu = await run_in_threadpool(first_stage)
        rerank_scores: dict[int, float] = {}
        reranked = bool(will_rerank and len(rows))
        if reranked:
            top = rows[: settings.rerank_k]
            logits, rerank_cpu = await service.rerank(bundle, history, top)
            cpu += rerank_cpu
            order = np.argsort(-logits, kind="stable")
            rerank_scores = {int(top[i]): float(logits[i]) for i in range(len(top))}
            scores_by_row = dict(zip(rows.tolist(), scores.tolist()))
            rows = np.r_[top[order], rows[settings.rerank_k:]]
            scores = np.array([scores_by_row[r] for r in rows.tolist()])
        items = [{"item_id": int(bundle.item_ids[r]), "title": bundle.titles[r], "retrieval_score": round(float(s), 6),
                  "rerank_score": round(rerank_scores[r], 6) if r in rerank_scores else None}
                 for r, s in zip(rows[: body.k].tolist(), scores[: body.k].tolist())]
        service.record_cpu(request, "/recommend", cpu)
        return {"model_version": bundle.version, "reranked": reranked, "items": items, "request_id": request.state.request_id}

    @app.post("/rerank")
    async def rerank(body: RerankRequest, request: Request):
        bundle = current(request)
        if bundle.reranker is None:
            raise HTTPException(status_code=409, detail="this model version has no re-ranker; export the bundle with --reranker")
        history, candidates = _rows(bundle, body.history, "history"), _rows(bundle, body.candidates, "candidates")
        service.charge(request, len(candidates) - 1)  # one unit per pair scored
        logits, cpu = await service.rerank(bundle, history, candidates)
        service.record_cpu(request, "/rerank", cpu)
        return {"model_version": bundle.version, "scores": [{"item_id": i, "score": round(float(s), 6)} for i, s in zip(body.candidates, logits)],
                "request_id": request.state.request_id}

    @app.post("/explain")
    async def explain(body: ExplainRequest, request: Request):
        bundle = current(request)
        history = _rows(bundle, body.history, "history")
        row = int(_rows(bundle, [body.item_id], "item_id")[0])
        service.charge(request, len(history))  # len(history) + 1 retriever passes

        def explain():
            started = time.thread_time()
            return bundle.explain(history, row), time.thread_time() - started

        (score, drops), cpu = await run_in_threadpool(explain)
        service.record_cpu(request, "/explain", cpu)
        order = np.argsort(-drops, kind="stable")
        window = bundle.retriever.config.max_len
        return {"model_version": bundle.version, "item_id": body.item_id, "title": bundle.titles[row], "score": round(score, 6),
                "method": "leave-one-out: drop of the retriever's score for item_id when each history item is removed",
                "read_window": window,
                "contributions": [{"item_id": body.history[j], "title": bundle.titles[history[j]], "position": int(j),
                                   "drop": round(float(drops[j]), 6)} for j in order.tolist()],
                "request_id": request.state.request_id}

    @app.get("/livez")
    async def livez():
        if service.bundle is None and service.load_error:  # it will never serve: let the orchestrator restart it (and show why)
            return JSONResponse(status_code=503, content={"status": "dead", "detail": "the model failed to load; the service log says why"})
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if not service.ready:
            detail = "not ready: the model failed to load" if service.load_error else "not ready: loading and warming up the model"
            return JSONResponse(status_code=503, content={"status": "not ready", "detail": detail})  # the error text stays in the log
        if service.overloaded:  # take this replica out of the load balancer until it drains
            return JSONResponse(status_code=503, content={"status": "overloaded", "detail": f"{service.inflight} requests in flight"},
                                headers={"Retry-After": "1"})
        return {"status": "ready", "model_version": service.bundle.version}

    @app.get("/metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", status_code=202)
    async def reload(body: ReloadRequest, request: Request):
        # One reload at a time: the lock is taken without waiting (a second reload is refused, not queued) and held
        # until the swap is done or failed, so no check and set straddle an await.
        if settings.workers > 1:
            raise HTTPException(status_code=409, detail=f"this service runs {settings.workers} worker processes and a reload would reach "
                                "only one of them (a mixed fleet); roll out the new bundle by restarting with it instead")
        if service.reload_lock.locked():
            raise HTTPException(status_code=409, detail="a reload is already in progress; GET /admin/reload for its state")
        folder = Path(body.bundle_dir).expanduser().resolve()
        if not folder.is_relative_to(service.models_root):  # never a probe of the server's file system
            service.metrics.reloads.labels(outcome="refused").inc()
            raise _field_error("bundle_dir", f"bundle_dir must be a folder under the models root ({MODELS_ROOT_ENV}); "
                                             "this one is not")
        await service.reload_lock.acquire()
        try:
            manifest = await run_in_threadpool(verify_bundle, folder)
        except BundleError as exc:
            service.reload_lock.release()
            service.metrics.reloads.labels(outcome="refused").inc()
            raise _field_error("bundle_dir", str(exc).replace(str(folder), body.bundle_dir)) from None
        except BaseException:
            service.reload_lock.release()
            raise
        old = service.bundle.version if service.bundle is not None else None
        service.reload_state = {"state": "loading", "bundle_dir": str(folder), "from_version": old, "to_version": manifest["version"],
                                "started": time.time()}
        loop = asyncio.get_running_loop()

        async def background():
            started = time.perf_counter()
            try:
                try:
                    bundle = await loop.run_in_executor(None, service.load, folder)
                except Exception as exc:
                    service.reload_state.update(state="failed", error=f"{type(exc).__name__}: {exc}")
                    service.metrics.reloads.labels(outcome="failed").inc()
                    log(service.logger, logging.ERROR, "reload failed", error=service.reload_state["error"], bundle_dir=str(folder))
                    return
                service.swap(bundle)
                service.bundle_dir = folder
                service.reload_state.update(state="done", seconds=round(time.perf_counter() - started, 3))
                service.metrics.reloads.labels(outcome="ok").inc()
                log(service.logger, logging.INFO, "model swapped", from_version=old, model_version=bundle.version, bundle_dir=str(folder))
            finally:
                service.reload_lock.release()

        task = loop.create_task(background())
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)
        return {"status": "loading", "from_version": old, "to_version": manifest["version"], "request_id": request.state.request_id}

    @app.get("/admin/reload")
    async def reload_status():
        return {**service.reload_state, "current_version": service.bundle.version if service.bundle is not None else None}

    return app


def app_from_env() -> FastAPI:
    """The app uvicorn's workers build (``recbook.serve.app:app_from_env``, a factory): the bundle from
    ``RECBOOK_SERVE_BUNDLE``, settings from the environment — what ``python -m recbook serve`` sets up."""
    folder = os.environ.get(BUNDLE_ENV)
    if not folder:
        raise SecurityConfigError(f"{BUNDLE_ENV} is not set; start the service with python -m recbook serve --model DIR")
    options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    return create_app(folder, ServeSettings.from_env(**options))


__all__ = ["ServeSettings", "create_app", "app_from_env", "Service", "ServiceMiddleware", "Metrics", "RecommendRequest", "RerankRequest",
           "ExplainRequest", "ReloadRequest", "MAX_K", "MAX_HISTORY", "MAX_CANDIDATES"]
