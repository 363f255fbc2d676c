"""The recommendation service over real HTTP (issue 12): a uvicorn server on 127.0.0.1 in a thread, always stopped.

Every security case is a request to the running server, with the status it must get and the server still answering
afterwards: no key, wrong key, malformed JSON, wrong types, oversized input (413 and 422), rate limit; plus readiness,
metrics, request ids, masked user ids in logs, micro-batching, and a hot swap under load with no failed request.
"""

import contextlib
import json
import logging
import threading
import time

import httpx
import pytest

from serve_helpers import ADMIN_KEY, API_KEY, HEADERS, OTHER_KEY, USER_OFFSET, copy_of, running, serve_bundles, settings


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, tiny_backbone):
    return serve_bundles(tmp_path_factory.mktemp("bundles"), tiny_backbone)


def _metric_value(text: str, sample: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample + " "))



@pytest.fixture(scope="module")
def service(bundles):
    from recbook.serve.app import create_app

    app = create_app(bundles["v1"], settings())
    with running(app) as client:
        yield client, app


@pytest.fixture(scope="module")
def catalogue(bundles):
    items = json.loads((bundles["v1"] / "items.json").read_text())
    return items["item_ids"]


class Records(logging.Handler):
    """Collects the service's JSON log lines as the formatter writes them."""

    def __init__(self):
        from recbook.serve.logs import JsonFormatter

        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@contextlib.contextmanager
def captured_logs():
    handler = Records()
    logger = logging.getLogger("recbook.serve")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------ the endpoints
def test_recommend_by_history_and_by_user(service, catalogue):
    client, _ = service
    history = catalogue[:5]
    r = client.post("/recommend", json={"history": history, "k": 7}, headers=HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "v1" and body["reranked"] is True and len(body["items"]) == 7
    assert not {i["item_id"] for i in body["items"]} & set(history)  # exclude_seen defaults to true
    assert all(i["title"] and isinstance(i["retrieval_score"], float) for i in body["items"])
    reranked = [i["rerank_score"] for i in body["items"]]
    assert all(s is not None for s in reranked) and reranked == sorted(reranked, reverse=True)  # k ≤ rerank_k: all re-ranked

    r = client.post("/recommend", json={"history": history, "k": 30, "rerank": False, "exclude_seen": False}, headers=HEADERS)
    items = r.json()["items"]
    assert r.json()["reranked"] is False and len(items) == 30 and all(i["rerank_score"] is None for i in items)
    assert [i["retrieval_score"] for i in items] == sorted((i["retrieval_score"] for i in items), reverse=True)

    r = client.post("/recommend", json={"user_id": USER_OFFSET + 1, "k": 3}, headers=HEADERS)
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    r = client.post("/recommend", json={"user_id": 5, "k": 3}, headers=HEADERS)
    assert r.status_code == 404 and "send 'history'" in r.json()["detail"]
    r = client.post("/recommend", json={"history": [], "k": 3}, headers=HEADERS)  # a brand-new user: the empty history's vector
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_rerank_and_explain(service, catalogue):
    client, _ = service
    r = client.post("/rerank", json={"history": catalogue[:4], "candidates": catalogue[10:15]}, headers=HEADERS)
    assert r.status_code == 200, r.text
    assert [s["item_id"] for s in r.json()["scores"]] == catalogue[10:15]
    r = client.post("/explain", json={"history": catalogue[:6], "item_id": catalogue[20]}, headers=HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    drops = [c["drop"] for c in body["contributions"]]
    assert sorted(c["item_id"] for c in body["contributions"]) == sorted(catalogue[:6]) and drops == sorted(drops, reverse=True)
    assert body["model_version"] == "v1" and "leave-one-out" in body["method"]


def test_livez_readyz_metrics_need_no_key_everything_else_does(service):
    client, _ = service
    assert client.get("/livez").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "v1"}
    assert client.get("/metrics").status_code == 200
    for method, path in (("POST", "/recommend"), ("POST", "/rerank"), ("POST", "/explain"), ("POST", "/admin/reload"), ("GET", "/nowhere")):
        r = client.request(method, path, json={})
        assert r.status_code == 401 and "missing X-Api-Key" in r.json()["detail"], (path, r.text)
        r = client.request(method, path, json={}, headers={"X-API-Key": API_KEY[:-1] + "X"})
        assert r.status_code == 401 and "wrong" in r.json()["detail"], (path, r.text)
    r = client.post("/admin/reload", json={"bundle_dir": "/tmp"}, headers=HEADERS)  # a client key is not an admin key
    assert r.status_code == 401 and "admin key" in r.json()["detail"]
    assert client.get("/readyz").status_code == 200  # still serving


@pytest.mark.parametrize("body, field", [
    ({"history": [1, 2], "k": "ten"}, "k"),
    ({"history": "1,2,3", "k": 5}, "history"),
    ({"history": [1, 2.5], "k": 5}, "history"),
    ({"history": [1, 2], "k": 101}, "k"),
    ({"history": [1, 2], "k": 0}, "k"),
    ({"history": list(range(201))}, "history"),
    ({"history": [1], "user_id": 3}, "body"),
    ({}, "body"),
    ({"history": [1], "colour": "red"}, "colour"),
    ({"history": [1], "exclude_seen": "yes"}, "exclude_seen"),
])
def test_wrong_types_and_limits_are_422_naming_the_field(service, body, field):
    client, _ = service
    r = client.post("/recommend", json=body, headers=HEADERS)
    assert r.status_code == 422, r.text
    assert field in r.json()["fields"], r.json()


def test_unknown_ids_malformed_json_and_oversized_input(service, catalogue):
    client, app = service
    r = client.post("/recommend", json={"history": [catalogue[0], 987654321], "k": 3}, headers=HEADERS)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "history", 1]
    assert "987654321" in r.json()["detail"][0]["msg"]
    r = client.post("/rerank", json={"history": [], "candidates": [catalogue[0], -4]}, headers=HEADERS)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "candidates", 1]
    r = client.post("/rerank", json={"history": [], "candidates": catalogue[:1] * 201}, headers=HEADERS)
    assert r.status_code == 422 and "candidates" in r.json()["fields"]
    r = client.post("/explain", json={"history": catalogue[:2], "item_id": 123456789}, headers=HEADERS)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "item_id", 0]

    r = client.post("/recommend", content=b'{"history": [1, 2', headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/recommend", content=b"\xff\xfe not json", headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 400 and "parsing the body" in r.json()["detail"]  # not even text: FastAPI's 400

    limit = app.state.service.settings.max_body_bytes
    big = json.dumps({"history": [1] * (limit // 2), "k": 3}).encode()
    r = client.post("/recommend", content=big, headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["detail"]

    def chunks():  # no Content-Length: the server counts while reading and stops at the limit
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    r = client.post("/recommend", content=chunks(), headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.post("/recommend", json={"history": catalogue[:2], "k": 2}, headers=HEADERS).status_code == 200  # no crash


def test_request_id_is_echoed_or_generated_and_logged_user_ids_are_masked(service, catalogue):
    client, app = service
    user = USER_OFFSET + 3
    with captured_logs() as lines:
        r = client.post("/recommend", json={"user_id": user, "k": 2}, headers={**HEADERS, "X-Request-ID": "trace-42.a"})
        generated = client.post("/recommend", json={"history": catalogue[:2], "k": 2}, headers={**HEADERS, "X-Request-ID": "bad id <script>" * 3})
        client.post("/recommend", json={"user_id": user + 1000, "k": 2}, headers=HEADERS)  # unknown user: 404, still masked
    assert r.headers["x-request-id"] == "trace-42.a" and r.json()["request_id"] == "trace-42.a"
    rid = generated.headers["x-request-id"]
    assert len(rid) == 32 and "script" not in rid  # not a short token: replaced, never echoed
    records = [json.loads(line) for line in lines if '"event": "request"' in line]
    mine = next(rec for rec in records if rec["request_id"] == "trace-42.a")
    assert mine["route"] == "/recommend" and mine["status"] == 200 and mine["model_version"] == "v1" and len(mine["user"]) == 16
    assert mine["user"] == app.state.service.mask(user) and mine["key"] and API_KEY not in "".join(lines)
    assert any(rec["request_id"] == rid for rec in records)
    assert not any(str(u) in "".join(lines) for u in (user, user + 1000))  # the user id never appears in clear


def test_metrics_in_prometheus_format(service, catalogue):
    client, _ = service
    client.post("/recommend", json={"user_id": USER_OFFSET + 2, "k": 2}, headers=HEADERS)
    client.post("/recommend", json={"user_id": USER_OFFSET + 2, "k": 2}, headers=HEADERS)  # the second is a cache hit
    client.post("/recommend", json={"history": [1], "k": "x"}, headers=HEADERS)
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in ('recbook_requests_total{route="/recommend",status="200"}', 'recbook_requests_total{route="/recommend",status="422"}',
                 'recbook_request_seconds_bucket{le="0.1",route="/recommend",status_class="2xx"}', "recbook_rerank_batch_requests_count",
                 'recbook_model_info{version="v1"} 1.0', "recbook_ready 1.0", 'recbook_user_vector_cache_total{result="hit"}',
                 "recbook_rerank_pairs_total"):
        assert line in text, line


def test_micro_batching_merges_concurrent_rerank_calls(bundles, catalogue):
    from concurrent.futures import ThreadPoolExecutor

    from recbook.serve.app import create_app

    app = create_app(bundles["v1"], settings(max_wait_ms=100, max_batch_size=64))
    with running(app) as client:
        def call(i):
            return client.post("/rerank", json={"history": catalogue[:3], "candidates": catalogue[i:i + 5]}, headers=HEADERS).status_code

        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(call, range(12)))
        batcher = app.state.service.batcher
        assert codes == [200] * 12 and batcher.items >= 12 and batcher.batches < batcher.items  # some calls were shared
    off = create_app(bundles["v1"], settings(batching=False))
    with running(off) as client:
        assert off.state.service.batcher is None
        assert client.post("/rerank", json={"history": [], "candidates": catalogue[:3]}, headers=HEADERS).status_code == 200


def test_rate_limit_per_key_is_429_with_retry_after(bundles, catalogue):
    from recbook.serve.app import create_app

    app = create_app(bundles["plain"], settings(rate_limit=0.5, rate_burst=2, admin_keys=()))
    with running(app) as client:
        r = client.post("/admin/reload", json={"bundle_dir": str(bundles["v2"])}, headers=HEADERS)
        assert r.status_code == 403 and "RECBOOK_ADMIN_KEYS" in r.json()["detail"]  # no admin keys: no reload at all
        body = {"history": catalogue[:2], "k": 2}
        codes = [client.post("/recommend", json=body, headers=HEADERS).status_code for _ in range(2)]
        r = client.post("/recommend", json=body, headers=HEADERS)
        assert codes == [200, 200] and r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1 and "0.5 units/second" in r.json()["detail"]
        assert client.get("/readyz").status_code == 200  # probes are never limited
        r = client.post("/recommend", json={"history": catalogue[:2], "k": 2, "rerank": True}, headers={"X-API-Key": OTHER_KEY})
        assert r.status_code == 200 and r.json()["reranked"] is False  # another key has its own bucket; no re-ranker here
        assert client.post("/rerank", json={"history": [], "candidates": catalogue[:1]}, headers={"X-API-Key": OTHER_KEY}).status_code == 409


def test_insecure_dev_serves_without_keys(bundles, catalogue):
    from recbook.serve.app import create_app

    app = create_app(bundles["plain"], settings(api_keys=(), admin_keys=(), insecure_dev=True))
    with running(app) as client:
        assert client.post("/recommend", json={"history": catalogue[:2], "k": 2}).status_code == 200
        assert client.get("/docs").status_code == 200  # the interactive docs exist only in dev mode


def test_readyz_is_503_until_the_bundle_is_loaded_and_warmed_up(bundles, catalogue, monkeypatch):
    from recbook.serve import app as app_mod

    gate = threading.Event()
    real_load = app_mod.Service.load

    def slow_load(self, folder):
        assert gate.wait(30)
        return real_load(self, folder)

    monkeypatch.setattr(app_mod.Service, "load", slow_load)
    app = app_mod.create_app(bundles["v1"], settings())
    with running(app, wait_ready=False) as client:
        assert client.get("/livez").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "loading" in r.json()["detail"]
        r = client.post("/recommend", json={"history": catalogue[:2]}, headers=HEADERS)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "recbook_ready 0.0" in client.get("/metrics").text
        gate.set()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.post("/recommend", json={"history": catalogue[:2]}, headers=HEADERS).status_code == 200


def test_a_bundle_that_fails_to_load_makes_livez_fail(bundles, monkeypatch):
    from recbook.serve import app as app_mod

    def broken(self, folder):
        raise RuntimeError("out of memory while loading")

    monkeypatch.setattr(app_mod.Service, "load", broken)
    app = app_mod.create_app(bundles["v1"], settings())
    with captured_logs() as lines, running(app, wait_ready=False) as client:
        deadline = time.monotonic() + 20
        while client.get("/livez").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # the probes say that it failed, the log says why: the error text is not shown to whoever calls a probe
        assert "failed to load" in client.get("/livez").json()["detail"] and "memory" not in client.get("/livez").text
        assert "failed to load" in client.get("/readyz").json()["detail"] and "memory" not in client.get("/readyz").text
        r = client.post("/recommend", json={"history": [1]}, headers=HEADERS)
        assert r.status_code == 503 and "not loaded" in r.json()["detail"] and "memory" not in r.text
    assert any("out of memory while loading" in line and "bundle load failed" in line for line in lines)


def test_shutdown_finishes_requests_in_flight(bundles, catalogue, monkeypatch):
    from recbook.serve import app as app_mod
    from recbook.serve.bundle import Bundle

    real = Bundle.rerank_many

    def slow(self, requests):
        time.sleep(1.0)  # a long re-ranker call, in flight when the shutdown begins
        return real(self, requests)

    monkeypatch.setattr(Bundle, "rerank_many", slow)
    app = app_mod.create_app(bundles["v1"], settings())
    holder, answers = {}, []
    with running(app, holder=holder) as client:
        def call():
            answers.append(client.post("/rerank", json={"history": [], "candidates": catalogue[:3]}, headers=HEADERS))

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)
        holder["server"].should_exit = True  # what SIGINT/SIGTERM do: stop accepting, finish what is running
        caller.join(30)
        holder["thread"].join(30)
        assert not holder["thread"].is_alive()
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    assert app.state.service.batcher.closed  # the lifespan's shutdown drained and closed the batcher


def test_refuses_to_start_without_keys_or_with_a_tampered_bundle(bundles, tmp_path):
    from recbook.serve.app import ServeSettings, create_app
    from recbook.serve.bundle import BundleError
    from recbook.serve.security import SecurityConfigError

    with pytest.raises(SecurityConfigError, match="RECBOOK_API_KEYS"):
        create_app(bundles["v1"], ServeSettings())
    with pytest.raises(SecurityConfigError, match="RECBOOK_API_KEYS"):
        create_app(bundles["v1"], ServeSettings.from_env({}))
    folder = copy_of(bundles["v1"], tmp_path)
    (folder / "reranker" / "reranker.json").write_text('{"max_length": 4096}')
    with pytest.raises(BundleError, match=r"reranker/reranker\.json has 20 bytes, the manifest says"):
        create_app(folder, settings())
    with captured_logs() as lines:
        create_app(bundles["v1"], ServeSettings(insecure_dev=True, torch_threads=None))
    assert any("INSECURE DEV MODE" in line and '"warning"' in line for line in lines)


def test_hot_swap_under_load_fails_no_request(bundles, catalogue, tmp_path):
    from recbook.serve.app import create_app

    app = create_app(bundles["v1"], settings(models_root=str(tmp_path.parent)))  # the bundles and tmp_path lie under it
    with running(app) as client:
        admin = {"X-API-Key": ADMIN_KEY}
        tampered = copy_of(bundles["v2"], tmp_path, "v2-tampered")
        (tampered / "items.json").write_text((tampered / "items.json").read_text().replace("[", "[ ", 1))
        r = client.post("/admin/reload", json={"bundle_dir": str(tampered)}, headers=admin)
        assert r.status_code == 422 and "items.json has" in r.json()["detail"][0]["msg"] and r.json()["fields"] == ["bundle_dir"]

        stop, results, headers_seen = threading.Event(), [], []

        def hammer():
            with httpx.Client(base_url=str(client.base_url), timeout=20) as c:
                i = 0
                while not stop.is_set():
                    path, body = [("/recommend", {"history": catalogue[i % 7: i % 7 + 4], "k": 5}),
                                  ("/recommend", {"user_id": USER_OFFSET + 1 + i % 5, "k": 5}),
                                  ("/rerank", {"history": catalogue[:3], "candidates": catalogue[5:9]})][i % 3]
                    try:
                        r = c.post(path, json=body, headers=HEADERS)
                        results.append((r.status_code, r.json().get("model_version")))
                        headers_seen.append((r.headers.get("x-model-version"), r.json().get("model_version")))
                    except httpx.HTTPError as exc:
                        results.append((type(exc).__name__, None))
                    i += 1

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            r = client.post("/admin/reload", json={"bundle_dir": str(bundles["v2"])}, headers=admin)
            assert r.status_code == 202 and r.json()["from_version"] == "v1" and r.json()["to_version"] == "v2"
            deadline = time.monotonic() + 30
            while client.get("/admin/reload", headers=admin).json()["state"] == "loading":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        state = client.get("/admin/reload", headers=admin).json()
        assert state["state"] == "done" and state["current_version"] == "v2", state
        failures = [r for r in results if r[0] != 200]
        versions = [v for _, v in results]
        assert failures == [] and len(results) > 20
        assert versions[0] == "v1" and versions[-1] == "v2" and set(versions) == {"v1", "v2"}
        assert versions.index("v2") > max(i for i, v in enumerate(versions) if v == "v1") - 3 * len(threads)  # no flapping back
        assert client.get("/readyz").json()["model_version"] == "v2"
        text = client.get("/metrics").text
        assert 'recbook_model_info{version="v2"} 1.0' in text and 'recbook_model_info{version="v1"}' not in text
        # every response names the version that answered it, in the header as in the body, and is counted by it
        assert headers_seen and all(h == b for h, b in headers_seen), [x for x in headers_seen if x[0] != x[1]][:3]
        served = {v: _metric_value(text, f'recbook_responses_by_version_total{{version="{v}"}}') for v in ("v1", "v2")}
        assert served["v1"] > 0 and served["v2"] > 0
        assert 'recbook_reloads_total{outcome="ok"} 1.0' in text and 'recbook_reloads_total{outcome="refused"} 1.0' in text


@pytest.mark.parametrize("chunk", [4, 0])
def test_a_heavy_rerank_cannot_hold_a_light_one_for_longer_than_one_chunk(bundles, catalogue, chunk):
    """Issue 22, F1: a request of many pairs goes to the batcher a chunk at a time, so a request that arrives while it
    is being scored is answered before the heavy one's later chunks. With ``rerank_chunk=0`` (whole requests, the old
    behaviour) the light request waits for all of the heavy one."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from recbook.serve.app import create_app

    app = create_app(bundles["v1"], settings(rerank_chunk=chunk, max_batch_size=1, max_wait_ms=0))
    calls = []
    with running(app) as client:
        batcher = app.state.service.batcher
        real = batcher.fn

        def slow(items):  # each model call takes 50 ms: the heavy request's 10 chunks take half a second
            calls.append([len(c) for _, _, c in items])
            time.sleep(0.05)
            return real(items)

        batcher.fn = slow
        heavy = {"history": catalogue[:5], "candidates": catalogue[:40]}
        light = {"history": catalogue[:2], "candidates": catalogue[10:12]}
        done = {}

        def send(name, body, delay):
            time.sleep(delay)
            response = client.post("/rerank", json=body, headers=HEADERS)
            done[name] = time.perf_counter()
            return response

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.submit(send, "heavy", heavy, 0.0), pool.submit(send, "light", light, 0.12)
            heavy_response, light_response = first.result(), second.result()
        assert heavy_response.status_code == light_response.status_code == 200
        scores = [s["score"] for s in heavy_response.json()["scores"]]
        assert len(scores) == 40
    if chunk:
        assert calls.count([4]) == 10 and sorted(map(tuple, calls)) == [(2,)] + [(4,)] * 10  # 10 chunks of 4, and the light one
        assert calls.index([2]) < len(calls) - 1  # the light request went in between the heavy one's chunks
        assert done["light"] < done["heavy"]
        bundle = app.state.service.bundle  # the chunks' scores are those of the same pairs scored chunk by chunk
        history, rows = bundle.rows_of(heavy["history"]), bundle.rows_of(heavy["candidates"], "candidates")
        expected = np.concatenate([bundle.rerank_many([(history, rows[i:i + 4])])[0] for i in range(0, 40, 4)])
        np.testing.assert_allclose(scores, expected, atol=1e-5)
    else:
        assert calls[0] == [40] and done["light"] > done["heavy"]


def test_noisy_neighbour_reports_one_keys_latency_alone_and_beside_a_heavy_key(bundles, catalogue):
    from recbook.serve.app import create_app
    from recbook.serve.loadtest import noisy_neighbour

    app = create_app(bundles["v1"], settings(rate_limit=1000.0))
    with running(app) as client:
        url = str(client.base_url)
        report = noisy_neighbour(url, [{"history": catalogue[:3], "k": 5}], {"history": catalogue[:5], "candidates": catalogue[:30]},
                                 API_KEY, OTHER_KEY, light_rps=10, heavy_interval=0.3, duration=1.5)
    assert report["quiet"]["status_counts"] == {"200": report["quiet"]["scheduled"]}
    assert report["loaded"]["status_counts"] == {"200": report["loaded"]["scheduled"]}
    assert report["heavy_status_counts"]["200"] >= 3 and report["heavy_p50_ms"] > 0
    assert report["p99_ratio"] == pytest.approx(report["loaded"]["accepted_p99_ms"] / report["quiet"]["accepted_p99_ms"])
    with pytest.raises(ValueError, match="heavy_interval"):
        noisy_neighbour(url, [{}], {}, API_KEY, OTHER_KEY, heavy_interval=0)
    with pytest.raises(ValueError, match="only targets this machine"):
        noisy_neighbour("http://example.com:8000", [{}], {}, API_KEY, OTHER_KEY)


def test_start_up_objects_are_frozen_out_of_the_collectors_reach(bundles):
    """Regression (the burst test, flaky on this VM): under a burst the service's allocations triggered full garbage
    collections that walked every object torch, transformers and the bundle had created (about 64 ms each with the
    imports alone), and accepted requests waited 0.4-1.2 s behind them. After loading, the service freezes them."""
    import gc

    from recbook.serve.app import create_app

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with running(create_app(bundles["v1"], settings())):
        assert gc.get_freeze_count() > 100_000  # everything alive at start-up, the model included
    assert gc.get_freeze_count() == 0  # unfrozen at shutdown: the process is left as it was found
