"""The recommendation service: a FastAPI app over one verified bundle, with keys, limits, metrics and hot swap.

Taught in notebook ``17_serving``. ``create_app(bundle_dir, settings)`` returns an ASGI app that uvicorn runs
(``python -m recbook serve --model DIR``). What a request meets, outermost first (:class:`ServiceMiddleware`):

1. a request id (``X-Request-ID`` echoed when it is a short token, else generated) and a timer;
2. the API key (``X-API-Key``, 401 without or with a wrong one; ``/admin/*`` needs an *admin* key and is closed —
   403 — whenever none is set); failed authentications are rate-limited per client address (429);
3. the per-key rate limit, one unit at the door (429 with ``Retry-After``); the endpoint charges the rest of the
   request's cost — one unit per pair or pass it scores — once it knows it; limits are per process, or shared by
   every replica through Redis (``RECBOOK_RATE_LIMIT_STORAGE``);
4. the in-flight cap (``RECBOOK_MAX_INFLIGHT``) with a waiting room (``RECBOOK_MAX_WAITING``, first come first
   served): beyond both, 503 with ``Retry-After`` and ``/readyz`` answers 503, so a load balancer sends the next
   requests elsewhere; the re-ranker's batch queue is bounded too;
5. the body size limit (413) — the body is read at most to the limit, never further;
6. FastAPI's validation of the JSON body against pydantic models with limits (422 naming the field);
7. the endpoint, which takes the *current* bundle once and uses it to the end — so a hot swap never mixes two
   versions within one answer, and requests in flight finish on the old model. Every answer names the version in
   ``X-Model-Version`` and the model's CPU time for it in ``X-Model-CPU-Ms`` (also ``recbook_model_cpu_seconds``).

Endpoints:

- ``POST /recommend`` ``{user_id | history, k, exclude_seen, rerank}``: the cascade — the retriever's user vector
  against the item matrix gives the top ``retrieve_n``; the int8 cross-encoder re-ranks the first ``rerank_k``
  (micro-batched with concurrent requests, ``rerank_chunk`` pairs at a time so a heavy request cannot hold a light
  one for longer than one chunk); the top ``k`` come back with titles, scores and the model version.
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
import gc
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from recbook.serve.batching import MicroBatcher
from recbook.serve.bundle import Bundle, BundleError, UnknownItems, bundle_key, verify_bundle
from recbook.serve.logs import log
from recbook.serve.middleware import ServiceMiddleware
from recbook.serve.schemas import ExplainRequest, FieldError, RecommendRequest, ReloadRequest, RerankRequest, _field_error, _unprocessable
from recbook.serve.security import (
    SecurityConfigError,
)
from recbook.serve.service import Service
from recbook.serve.settings import BUNDLE_ENV, MODELS_ROOT_ENV, OPTIONS_ENV, ServeSettings


# ------------------------------------------------------------------ the app
def _rows(bundle: Bundle, ids: list[int], field_name: str) -> np.ndarray:
    try:
        return bundle.rows_of(ids, field_name)
    except UnknownItems as exc:
        raise _field_error(field_name, str(exc), bad=exc.bad) from None


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now (torch, transformers, the loaded bundle: hundreds of thousands)
    out of the garbage collector's reach (:func:`gc.freeze`), as long-running Python services do after start-up:
    otherwise an allocation-heavy burst triggers full collections that walk all of them (about 64 ms each with the
    imports alone on the course's machine), and every request in flight waits for the pause.

    Frozen objects are still freed by reference counting, but a frozen reference *cycle* never is; so after a hot swap
    everything is unfrozen, collected (the old bundle's cycles go) and frozen again — one pause of that size per swap —
    and the app unfreezes at shutdown (an in-process server, as in the tests, leaves its process as it found it)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


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
                freeze_startup_objects()
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
            batching=settings.batching, retrieve_n=settings.retrieve_n, rerank_k=settings.rerank_k,
            signed_bundles_only=bundle_key() is not None)
        try:
            yield
        finally:
            if service.batcher is not None:
                await service.batcher.close()  # finish every re-ranker batch already queued
            gc.unfreeze()
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

    def observe(bundle: Bundle, history: np.ndarray) -> None:  # live drift: only histories a request sends count
        if bundle.live_drift is not None:
            bundle.live_drift.observe(history)

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
            observe(bundle, history)
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
        observe(bundle, history)
        service.charge(request, len(candidates) - 1)  # one unit per pair scored
        logits, cpu = await service.rerank(bundle, history, candidates)
        service.record_cpu(request, "/rerank", cpu)
        return {"model_version": bundle.version, "scores": [{"item_id": i, "score": round(float(s), 6)} for i, s in zip(body.candidates, logits)],
                "request_id": request.state.request_id}

    @app.post("/explain")
    async def explain(body: ExplainRequest, request: Request):
        bundle = current(request)
        history = _rows(bundle, body.history, "history")
        observe(bundle, history)
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
            detail = f"{service.inflight} requests in flight, {service.waiting} waiting"
            return JSONResponse(status_code=503, content={"status": "overloaded", "detail": detail}, headers={"Retry-After": "1"})
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
        try:  # a relative bundle_dir is a folder of the models root
            folder = (service.models_root / Path(body.bundle_dir).expanduser()).resolve()
        except (ValueError, RuntimeError, OSError):  # a NUL byte, ~unknown-user, a symlink loop
            folder = None
        if folder is None or not folder.is_relative_to(service.models_root):  # never a probe of the server's file system
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
                try:
                    service.swap(bundle)
                except Exception as exc:  # noqa: BLE001 — e.g. a drift.json the gauges refuse: the old version keeps serving
                    service.reload_state.update(state="failed", error=f"{type(exc).__name__}: {exc}")
                    service.metrics.reloads.labels(outcome="failed").inc()
                    log(service.logger, logging.ERROR, "reload failed", error=service.reload_state["error"], bundle_dir=str(folder))
                    return
                service.bundle_dir = folder
                freeze_startup_objects()
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


__all__ = ["create_app", "app_from_env"]
