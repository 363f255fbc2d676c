"""Securing the service: API keys, per-key rate limits, and masking user ids in logs.

Taught in notebook ``17_serving``. Each piece answers one line of a deployment checklist:

- **Access**: every call carries a key in the ``X-API-Key`` header; the keys come from the environment
  (``RECBOOK_API_KEYS``, comma-separated — never from the code or the repository). Keys are compared with
  :func:`hmac.compare_digest`, whose time does not depend on where two strings first differ, so an attacker
  cannot guess a key character by character from response times. The admin endpoint (model reload) takes
  separate keys (``RECBOOK_ADMIN_KEYS``), so a client key cannot swap the model.
- **Abuse**: a token bucket per key (:class:`TokenBucket`) allows ``RECBOOK_RATE_LIMIT`` *cost units* per second
  on average with bursts up to ``burst``; beyond it the service answers 429 with ``Retry-After``. A request is charged
  what it costs (one unit per model pass or (history, candidate) pair scored), so a key cannot buy 200 re-ranker
  pairs for the price of one retrieval; failed authentication is charged to the client's address. The buckets
  written here live in one process: behind several replicas "50 per key" would mean 50 per key *per replica*, so
  with ``RECBOOK_RATE_LIMIT_STORAGE=redis://127.0.0.1:6379/0`` the same limits are kept in Redis through the
  maintained ``limits`` library (a moving window of ``burst`` units over ``burst / rate`` seconds), shared by every
  process that points at it.
- **Data masking**: user ids are written to logs only as a salted hash (:class:`IdMasker`) — the same user gets
  the same token within a process (logs can still be joined), but the token cannot be turned back into the
  id without the salt (``RECBOOK_LOG_SALT``, or random per process).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from collections import OrderedDict

API_KEYS_ENV = "RECBOOK_API_KEYS"
ADMIN_KEYS_ENV = "RECBOOK_ADMIN_KEYS"
RATE_LIMIT_ENV = "RECBOOK_RATE_LIMIT"
RATE_LIMIT_STORAGE_ENV = "RECBOOK_RATE_LIMIT_STORAGE"
LOG_SALT_ENV = "RECBOOK_LOG_SALT"
API_KEY_HEADER = "x-api-key"
MIN_KEY_LENGTH = 16


class SecurityConfigError(ValueError):
    """The service's security settings are missing or unsafe; the message says which variable to set."""


def parse_keys(value: str | None, variable: str = API_KEYS_ENV) -> tuple[str, ...]:
    """Keys from a comma-separated string (spaces around commas ignored, empty entries dropped).

    Keys shorter than 16 characters are refused: a short key can be guessed. Generate one with
    ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
    """
    keys = tuple(k.strip() for k in (value or "").split(",") if k.strip())
    odd = [i for i, k in enumerate(keys) if not (k.isascii() and k.isprintable())]
    if odd:  # an HTTP header carries latin-1 bytes: a non-ASCII key could never be sent, so it could never authenticate
        raise SecurityConfigError(f"{variable}: key number {odd[0] + 1} has characters other than printable ASCII; an HTTP header "
                                  "cannot carry them, so the key could never authenticate — use secrets.token_urlsafe(32)")
    short = [i for i, k in enumerate(keys) if len(k) < MIN_KEY_LENGTH]
    if short:
        raise SecurityConfigError(f"{variable}: key number {short[0] + 1} is shorter than {MIN_KEY_LENGTH} characters; generate keys with "
                                  "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return keys


def parse_rate_limit(value: str | None, variable: str = RATE_LIMIT_ENV) -> float | None:
    """Cost units per second per key from the environment; ``None`` (unset, empty or 0) means no limit."""
    if value is None or not str(value).strip():
        return None
    try:
        rate = float(value)
    except ValueError:
        raise SecurityConfigError(f"{variable}={value!r} is not a number; give cost units per second per key (1 per request plus 1 per pair or model pass it scores), e.g. 50") from None
    if not math.isfinite(rate) or rate < 0:
        raise SecurityConfigError(f"{variable}={value!r} must be a finite number >= 0 (0 turns the limit off)")
    return rate or None


def key_id(key: str) -> str:
    """A short, non-reversible name for a key, for logs and rate-limit buckets (never log the key itself)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def match_key(given: str | None, keys: tuple[str, ...]) -> str | None:
    """The key id of ``given`` if it is one of ``keys``, else ``None`` — in time independent of the keys' contents.

    Every key is compared (no early exit), each with :func:`hmac.compare_digest`.
    """
    if not given:
        return None
    given_bytes = given.encode("utf-8", "surrogateescape")
    found = None
    for key in keys:
        if hmac.compare_digest(given_bytes, key.encode("utf-8")):
            found = key
    return key_id(found) if found is not None else None


class TokenBucket:
    """``rate`` tokens per second flow into a bucket holding at most ``burst``; each request takes one.

    ``take()`` returns 0.0 when the request may pass, else the seconds until a token will be there (what
    ``Retry-After`` tells the client). ``clock`` is injectable for tests.
    """

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        if rate <= 0:
            raise ValueError(f"rate must be positive requests per second, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1 request, got {burst}")
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()

    def take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 when they are there, else the seconds until they will be (``inf`` when ``cost``
        is more than the bucket can ever hold)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return math.inf if cost > self.burst else (cost - self.tokens) / self.rate


class RateLimiter:
    """Rate limits by name (a key id, or ``addr:<ip>``): ``check(who, cost)`` → seconds to wait, 0.0 = pass (charged).

    ``storage=None`` (or ``"memory"``): one :class:`TokenBucket` per name in this process — the single-process default,
    and what the course writes by hand. ``storage="redis://host:port/db"`` (or any URI the ``limits`` library accepts):
    the limit lives in that store, shared by every replica, as a moving window of ``rate × W`` units over ``W`` whole
    seconds, ``W = ceil(burst / rate)`` (the bucket's long-run rate; the largest burst rounded up to a whole window).
    A store that does not answer within ``STORE_TIMEOUT_S`` lets the request through (counted in ``store_errors``):
    a rate limit that fails closed would turn a Redis outage into a full outage.

    In memory, at most ``max_names`` buckets are kept (least recently used dropped: a flood from many addresses cannot
    grow the process without bound).
    """

    STORE_TIMEOUT_S = 0.25


    def __init__(self, rate: float | None, burst: float | None = None, clock=time.monotonic, storage: str | None = None,
                 namespace: str = "recbook", max_names: int = 100_000):
        self.rate, self.clock, self.namespace, self.max_names = rate, clock, namespace, max_names
        self.burst = float(burst if burst is not None else max(1.0, rate or 1.0))
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.store_errors = 0
        self.storage_uri = None if storage in (None, "", "memory", "memory://") else storage
        self._limiter = self._item = None
        if self.rate is not None and self.storage_uri is not None:
            self._connect()

    def _connect(self) -> None:
        try:
            from limits import RateLimitItemPerSecond
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter
        except ImportError:
            raise SecurityConfigError(f"{RATE_LIMIT_STORAGE_ENV}={self.storage_uri!r} needs the limits library: pip install "
                                      "'limits[redis]' (or 'recbook[serve]')") from None
        try:
            options = {"socket_timeout": self.STORE_TIMEOUT_S, "socket_connect_timeout": self.STORE_TIMEOUT_S} \
                if self.storage_uri.startswith(("redis://", "rediss://")) else {}
            store = storage_from_string(self.storage_uri, **options)
        except Exception as exc:  # noqa: BLE001 — a bad URI or a missing driver: say which variable to fix
            raise SecurityConfigError(f"{RATE_LIMIT_STORAGE_ENV}={self.storage_uri!r}: {exc}; use e.g. redis://127.0.0.1:6379/0") from None
        if not store.check():
            raise SecurityConfigError(f"{RATE_LIMIT_STORAGE_ENV}={self.storage_uri!r}: the store does not answer; start it (redis-server "
                                      "--bind 127.0.0.1) or unset the variable for per-process limits")
        seconds = max(1, math.ceil(self.burst / self.rate))
        self._item = RateLimitItemPerSecond(max(1, round(self.rate * seconds)), seconds, namespace=self.namespace)
        self._limiter = MovingWindowRateLimiter(store)

    @property
    def capacity(self) -> float:
        """The most units one name can spend at once (a request costing more can never pass)."""
        return float(self._item.amount) if self._item is not None else self.burst

    def check(self, who: str, cost: float = 1.0) -> float:
        if self.rate is None:
            return 0.0
        if self._limiter is None:
            bucket = self.buckets.get(who)
            if bucket is None:
                bucket = self.buckets[who] = TokenBucket(self.rate, self.burst, self.clock)
                while len(self.buckets) > self.max_names:
                    self.buckets.popitem(last=False)
            else:
                self.buckets.move_to_end(who)
            return bucket.take(cost)
        cost = max(1, math.ceil(cost))
        if cost > self._item.amount:
            return math.inf
        try:
            if self._limiter.hit(self._item, who, cost=cost):
                return 0.0
            reset = self._limiter.get_window_stats(self._item, who).reset_time
        except Exception:  # noqa: BLE001 — the store is down or slow: fail open, counted
            self.store_errors += 1
            return 0.0
        # the oldest entry's expiry frees only its own units; a request of ``cost`` needs about cost / rate seconds of them
        return max(0.001, reset - time.time(), cost / self.rate)


class IdMasker:
    """Salted HMAC-SHA256 of an id, 16 hex characters: the same id → the same token under one salt.

    Without the salt a token cannot be checked against guessed ids (user ids are small integers: an unsalted
    hash would be reversed by hashing 0, 1, 2, …). The salt comes from ``RECBOOK_LOG_SALT`` (to join logs across
    restarts and replicas) or is random per process.
    """

    def __init__(self, salt: str | bytes | None = None):
        if salt is None:
            salt = os.environ.get(LOG_SALT_ENV) or secrets.token_bytes(32)
        self.salt = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)

    def __call__(self, value) -> str:
        return hmac.new(self.salt, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
