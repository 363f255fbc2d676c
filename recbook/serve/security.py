"""Securing the service: API keys, per-key rate limits, and masking user ids in logs.

Taught in notebook ``12_serving``. Each piece answers one line of a deployment checklist:

- **Access**: every call carries a key in the ``X-API-Key`` header; the keys come from the environment
  (``RECBOOK_API_KEYS``, comma-separated — never from the code or the repository). Keys are compared with
  :func:`hmac.compare_digest`, whose time does not depend on where two strings first differ, so an attacker
  cannot guess a key character by character from response times. The admin endpoint (model reload) takes
  separate keys (``RECBOOK_ADMIN_KEYS``), so a client key cannot swap the model.
- **Abuse**: a token bucket per key (:class:`TokenBucket`) allows ``RECBOOK_RATE_LIMIT`` requests per second
  on average with bursts up to ``burst``; beyond it the service answers 429 with ``Retry-After``.
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

API_KEYS_ENV = "RECBOOK_API_KEYS"
ADMIN_KEYS_ENV = "RECBOOK_ADMIN_KEYS"
RATE_LIMIT_ENV = "RECBOOK_RATE_LIMIT"
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
    short = [i for i, k in enumerate(keys) if len(k) < MIN_KEY_LENGTH]
    if short:
        raise SecurityConfigError(f"{variable}: key number {short[0] + 1} is shorter than {MIN_KEY_LENGTH} characters; generate keys with "
                                  "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return keys


def parse_rate_limit(value: str | None, variable: str = RATE_LIMIT_ENV) -> float | None:
    """Requests per second per key from the environment; ``None`` (unset, empty or 0) means no limit."""
    if value is None or not str(value).strip():
        return None
    try:
        rate = float(value)
    except ValueError:
        raise SecurityConfigError(f"{variable}={value!r} is not a number; give requests per second per key, e.g. 50") from None
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

    def take(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per key id (created on first use). ``check(key_id)`` → seconds to wait, 0.0 = pass."""

    def __init__(self, rate: float | None, burst: float | None = None, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, TokenBucket] = {}

    def check(self, who: str) -> float:
        if self.rate is None:
            return 0.0
        bucket = self.buckets.get(who)
        if bucket is None:
            bucket = self.buckets[who] = TokenBucket(self.rate, self.burst, self.clock)
        return bucket.take()


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
