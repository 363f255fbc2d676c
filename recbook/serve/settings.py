"""The service's settings: :class:`ServeSettings` (every knob) and the environment variables it reads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from recbook.serve.security import (
    ADMIN_KEYS_ENV,
    API_KEYS_ENV,
    LOG_SALT_ENV,
    RATE_LIMIT_ENV,
    RATE_LIMIT_STORAGE_ENV,
    SecurityConfigError,
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
MAX_WAITING_ENV = "RECBOOK_MAX_WAITING"
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
    max_inflight: int = 64  # requests being answered at once (model routes); 0 = no cap.
    # Size it to the cores for CPU-bound models (the burst test: 2 on 2 cores held the p99, 4 did not)
    max_waiting: int | None = None  # requests that may wait for a slot at the cap (first come, first served); beyond:
    # 503 + Retry-After and /readyz 503. None: twice max_inflight (an accepted request waits about two service times at
    # most); 0: refuse whenever the cap is reached (with a cap of 2, 4-7% of requests at a quarter of capacity were)
    max_queue: int = 256  # re-ranker requests waiting for a batch; beyond: 503 + Retry-After
    models_root: str | None = None  # /admin/reload only loads bundles under this folder (default: the first bundle's parent)
    drift_window: int = 5000  # items of live request histories compared with the bundle's (0: no live drift gauges)
    workers: int = 1  # uvicorn worker processes: with more than one, /admin/reload would reach one of them, so it is refused
    max_body_bytes: int = 64 * 1024
    retrieve_n: int = 100  # candidates the retriever hands to the re-ranker stage
    rerank_k: int = 20  # how many of them the cross-encoder re-scores
    batching: bool = True  # merge concurrent re-ranker calls (MicroBatcher)
    max_batch_size: int = 32  # requests per re-ranker batch
    # pairs one request hands the batcher at a time: a larger request waits for each chunk's answer before it queues the
    # next, so requests that arrived meanwhile go first and a light request waits for at most one chunk of a heavy one
    # (issue 22, F1: a 200 × 200 /rerank no longer stalls every other key). 0 = the whole request at once
    rerank_chunk: int = 20  # the default rerank_k, so a default /recommend stays one call (raise both together); the
    # fairness needs batching on; measured by tools/f1_replay.py
    max_wait_ms: float = 5.0
    cache_size: int = 10_000  # user vectors cached for user_id requests (0 = no cache)
    # ONNX Runtime intra-op threads (None: its default, one per core: the re-ranker is the heavy call, and one process per
    # machine should use every core for it — measured on a 2-core Intel machine, one thread took notebook 17's cascade p99
    # at 10 requests/s from 1.3–2.2 s to 3.6 s in single runs). The model CPU the service reports is the calling thread's: with a pool of
    # several ORT threads the pool's share is not in it; set 1 (``--threads 1``) where exact accounting matters
    ort_threads: int | None = None
    # torch threads of the whole process (None: unchanged). 1 by default: a server's parallelism comes from concurrent
    # requests, and a small transformer split over threads pays their synchronisation on every call (measured on the
    # 2-core machine: 9.9 ms per retrieval with 2 threads, 0.38 ms with 1)
    torch_threads: int | None = 1
    log_salt: str | None = None  # salt of the user-id hash in logs (None: $RECBOOK_LOG_SALT, else random per process)
    load_in_background: bool = True  # listen at once (livez) and load the bundle in a thread (readyz waits for it)

    def __post_init__(self):
        zero_ok = ("rerank_k", "cache_size", "max_inflight", "rerank_chunk")
        for name in ("retrieve_n", "rerank_k", "max_batch_size", "max_body_bytes", "cache_size", "max_inflight", "max_queue", "workers",
                     "rerank_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name in zero_ok else 1):
                raise ValueError(f"ServeSettings.{name} must be a {'non-negative' if name in zero_ok else 'positive'} "
                                 f"integer, got {value!r}")
        if not isinstance(self.drift_window, int) or isinstance(self.drift_window, bool) or not (self.drift_window == 0 or self.drift_window >= 10):
            raise ValueError(f"ServeSettings.drift_window must be 0 (no live drift) or at least 10 items, got {self.drift_window!r}")
        if self.max_waiting is None:
            object.__setattr__(self, "max_waiting", 2 * self.max_inflight)
        elif not isinstance(self.max_waiting, int) or isinstance(self.max_waiting, bool) or self.max_waiting < 0:
            raise ValueError(f"ServeSettings.max_waiting must be a non-negative integer (or None: twice max_inflight), "
                             f"got {self.max_waiting!r}")
        if self.max_wait_ms < 0:
            raise ValueError(f"ServeSettings.max_wait_ms must be >= 0, got {self.max_wait_ms}")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "ServeSettings":
        """Settings from ``RECBOOK_API_KEYS``, ``RECBOOK_ADMIN_KEYS``, ``RECBOOK_RATE_LIMIT``, ``RECBOOK_RATE_LIMIT_STORAGE``,
        ``RECBOOK_MAX_INFLIGHT``, ``RECBOOK_MAX_WAITING``, ``RECBOOK_MODELS_ROOT``, ``RECBOOK_LOG_SALT`` (and ``RECBOOK_INSECURE_DEV=1``), then
        ``overrides`` (any field)."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown ServeSettings field(s): {sorted(unknown)}")
        values = dict(api_keys=parse_keys(env.get(API_KEYS_ENV), API_KEYS_ENV), admin_keys=parse_keys(env.get(ADMIN_KEYS_ENV), ADMIN_KEYS_ENV),
                      rate_limit=parse_rate_limit(env.get(RATE_LIMIT_ENV)), log_salt=env.get(LOG_SALT_ENV) or None,
                      insecure_dev=env.get(INSECURE_ENV, "") in ("1", "true", "yes"),
                      rate_limit_storage=env.get(RATE_LIMIT_STORAGE_ENV) or None, models_root=env.get(MODELS_ROOT_ENV) or None)
        for name, field_, example in ((MAX_INFLIGHT_ENV, "max_inflight", "give the most requests answered at once, e.g. 64 (0: no cap)"),
                                      (MAX_WAITING_ENV, "max_waiting", "give the most requests waiting at the cap, e.g. 2 (0: none)")):
            if env.get(name, "").strip():
                try:
                    values[field_] = int(env[name])
                except ValueError:
                    raise SecurityConfigError(f"{name}={env[name]!r} is not an integer; {example}") from None
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        """Refuse to serve without API keys unless ``insecure_dev`` (:class:`SecurityConfigError`, naming the variable)."""
        if not self.api_keys and not self.insecure_dev:
            raise SecurityConfigError(f"no API keys: set {API_KEYS_ENV} (comma-separated keys of at least 16 characters, e.g. "
                                      "python -c \"import secrets; print(secrets.token_urlsafe(32))\"), or pass --insecure-dev for a "
                                      "local experiment without keys")


