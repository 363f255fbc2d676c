"""The ASGI middleware in front of every route: request id, keys, limits, in-flight cap, body size, metrics, logs."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid

from recbook.serve.logs import log
from recbook.serve.security import (
    ADMIN_KEYS_ENV,
    API_KEY_HEADER,
    match_key,
)
from recbook.serve.service import Service
from recbook.serve.settings import (
    CPU_HEADER,
    MAX_INFLIGHT_ENV,
    MAX_WAITING_ENV,
    MODEL_ROUTES,
    PUBLIC_PATHS,
    REQUEST_ID_PATTERN,
    ROUTES,
    VERSION_HEADER,
)


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
            body = b""
            if refusal is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(headers, receive)
            # the in-flight cap counts requests the model works on, from a complete body on: slow uploads hold no slot
            if refusal is None and route in MODEL_ROUTES:
                if await service.acquire():
                    counted = True
                else:
                    service.metrics.shed.labels(reason="inflight").inc()
                    refusal = (503, {"detail": f"the service is answering {service.inflight} requests, its cap "
                                               f"({MAX_INFLIGHT_ENV}={service.settings.max_inflight}), and "
                                               f"{service.waiting} more are waiting ({MAX_WAITING_ENV}="
                                               f"{service.settings.max_waiting}); retry shortly"},
                               [(b"retry-after", b"1")])
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
                service.release()
            elapsed = time.perf_counter() - start
            service.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            service.metrics.latency.labels(route=route, status_class=f"{status['code'] // 100}xx").observe(elapsed)
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


