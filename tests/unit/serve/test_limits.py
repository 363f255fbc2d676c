"""The service past one request at a time: cost-weighted and shared rate limits, back-pressure, closed admin
endpoints, serialised reloads, the version and the model's CPU time on every answer. Each test fails on the service
as it was before these limits (issue 22: F1–F7)."""

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from recbook.serve.batching import MicroBatcher, QueueFull
from recbook.serve.process import free_port
from recbook.serve.security import RateLimiter, SecurityConfigError, parse_keys
from serve_helpers import ADMIN_KEY, API_KEY, HEADERS, OTHER_KEY, running, serve_bundles, settings


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, tiny_backbone):
    return serve_bundles(tmp_path_factory.mktemp("bundles"), tiny_backbone)


@pytest.fixture(scope="module")
def catalogue(bundles):
    return json.loads((bundles["v1"] / "items.json").read_text())["item_ids"]


# ------------------------------------------------------------------ keys and limits, unit level
def test_keys_must_be_printable_ascii():
    with pytest.raises(SecurityConfigError, match="key number 2 has characters other than printable ASCII"):
        parse_keys("a" * 20 + ",ключ-0123456789abcdef")
    with pytest.raises(SecurityConfigError, match="printable ASCII"):
        parse_keys("tab\tinside-0123456789abcdef")


def test_the_in_memory_limiter_charges_by_cost():
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=10, clock=lambda: now[0])
    assert limiter.check("k", 8) == 0.0
    wait = limiter.check("k", 8)  # 2 left: 6 more units take 0.6 s at 10 units/s
    assert wait == pytest.approx(0.6)
    assert limiter.check("k", 11) == float("inf")  # more than the bucket ever holds
    now[0] += 0.6
    assert limiter.check("k", 8) == 0.0


def test_the_in_memory_limiter_keeps_a_bounded_number_of_names():
    limiter = RateLimiter(rate=1, burst=1, max_names=3)
    for i in range(5):
        limiter.check(f"addr:10.0.0.{i}")
    assert list(limiter.buckets) == ["addr:10.0.0.2", "addr:10.0.0.3", "addr:10.0.0.4"]  # least recently used dropped


def test_limiter_storage_errors_name_the_variable():
    with pytest.raises(SecurityConfigError, match="RECBOOK_RATE_LIMIT_STORAGE='nonsense://x'"):
        RateLimiter(rate=5, storage="nonsense://x")
    with pytest.raises(SecurityConfigError, match="does not answer"):
        RateLimiter(rate=5, storage=f"redis://127.0.0.1:{free_port()}/0")


def test_the_batcher_queue_is_bounded():
    async def main():
        batcher = MicroBatcher(lambda items: [i * 2 for i in items], max_batch_size=1, max_wait_ms=50, max_queue=2)
        first = asyncio.ensure_future(batcher.submit(1))
        second = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="max_queue=2"):
            await batcher.submit(3)
        assert await first == 2 and await second == 4
        await batcher.close()

    asyncio.run(main())
    with pytest.raises(ValueError, match="max_queue"):
        MicroBatcher(lambda x: x, max_queue=0)


# ------------------------------------------------------------------ the app
def test_every_model_answer_names_its_version_and_cpu_time(bundles, catalogue):
    from recbook.serve.app import create_app

    with running(create_app(bundles["v1"], settings())) as client:
        r = client.post("/recommend", json={"history": catalogue[:3], "k": 5}, headers=HEADERS)
        assert r.status_code == 200 and r.headers["x-model-version"] == r.json()["model_version"] == "v1"
        assert float(r.headers["x-model-cpu-ms"]) > 0
        r = client.post("/rerank", json={"history": catalogue[:3], "candidates": catalogue[5:9]}, headers=HEADERS)
        assert r.status_code == 200 and r.headers["x-model-version"] == "v1" and float(r.headers["x-model-cpu-ms"]) > 0
        text = client.get("/metrics").text
        assert 'recbook_model_cpu_seconds_count{route="/recommend"} 1.0' in text
        assert 'recbook_model_cpu_seconds_count{route="/rerank"} 1.0' in text
        assert 'recbook_responses_by_version_total{version="v1"} 2.0' in text and "recbook_inflight_requests 0.0" in text


def test_admin_is_closed_without_admin_keys_even_in_insecure_dev(bundles):
    from recbook.serve.app import ServeSettings, create_app

    app = create_app(bundles["v1"], ServeSettings(insecure_dev=True, torch_threads=None, log_salt="s"))
    with running(app) as client:
        r = client.post("/admin/reload", json={"bundle_dir": "/etc"})
        assert r.status_code == 403 and "RECBOOK_ADMIN_KEYS" in r.json()["detail"]
        assert client.get("/admin/reload").status_code == 403
        assert client.post("/recommend", json={"history": [], "k": 1}).status_code in (200, 422)  # the rest stays open


def test_reload_is_confined_to_the_models_root_and_serialised(bundles, tmp_path):
    from recbook.serve.app import create_app

    admin = {"X-API-Key": ADMIN_KEY}
    with running(create_app(bundles["v1"], settings())) as client:  # models root: the bundles' parent folder
        for outside in ("/etc", str(tmp_path), str(bundles["v1"]) + "/../../..", "bad\x00name", "../" * 10 + "etc"):
            r = client.post("/admin/reload", json={"bundle_dir": outside}, headers=admin)
            assert r.status_code == 422 and r.json()["fields"] == ["bundle_dir"], r.text
            assert "models root" in r.text and "manifest" not in r.text  # says nothing about what lies there
        # two reloads at once: the first is accepted, the second refused while the first loads
        first = client.post("/admin/reload", json={"bundle_dir": str(bundles["v2"])}, headers=admin)
        second = client.post("/admin/reload", json={"bundle_dir": str(bundles["v1"])}, headers=admin)
        assert first.status_code == 202 and second.status_code == 409, (first.text, second.text)
        deadline = time.monotonic() + 30
        while client.get("/admin/reload", headers=admin).json()["state"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/readyz").json()["model_version"] == "v2"
        # a relative bundle_dir is a folder of the models root, wherever the server was started
        assert client.post("/admin/reload", json={"bundle_dir": "v1"}, headers=admin).status_code == 202


def test_requests_are_charged_by_cost(bundles, catalogue):
    from recbook.serve.app import create_app

    app = create_app(bundles["v1"], settings(rate_limit=0.5, rate_burst=12))
    with running(app) as client:
        body = {"history": catalogue[:3], "candidates": catalogue[5:15]}  # 10 pairs: 10 units
        assert client.post("/rerank", json=body, headers=HEADERS).status_code == 200
        r = client.post("/rerank", json=body, headers=HEADERS)  # 2 units left: refused by cost, not by count
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "cost" in r.json()["detail"]
        r = client.post("/rerank", json={"history": [], "candidates": catalogue[:20]}, headers={"X-API-Key": OTHER_KEY})
        assert r.status_code == 429 and "more than the burst" in r.json()["detail"]  # 20 units never fit in 12
        # 13 pairs: 1 unit at the door + 12 = 13 > 12, refused at once and for good (no Retry-After to loop on)
        r = client.post("/rerank", json={"history": [], "candidates": catalogue[:13]}, headers={"X-API-Key": OTHER_KEY})
        assert r.status_code == 429 and "more than the burst" in r.json()["detail"] and "retry-after" not in r.headers
        assert client.post("/recommend", json={"history": catalogue[:2], "k": 3, "rerank": False},
                           headers={"X-API-Key": OTHER_KEY}).status_code == 200  # another key is not charged for it
        assert 'recbook_rate_limited_total{reason="cost"} 3.0' in client.get("/metrics").text


def test_failed_authentication_is_throttled_per_address(bundles):
    from recbook.serve.app import create_app

    with running(create_app(bundles["v1"], settings(auth_fail_rate=0.1, auth_fail_burst=3))) as client:
        codes = [client.post("/recommend", json={"history": [1]}, headers={"X-API-Key": f"guess-{i:020d}"}).status_code for i in range(6)]
        assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}
        assert client.post("/recommend", json={"history": [], "k": 1}, headers=HEADERS).status_code in (200, 422)  # a valid key still passes


def test_in_flight_cap_sheds_with_503_and_flips_readiness(bundles, catalogue, monkeypatch):
    from recbook.serve import app as app_mod
    from recbook.serve.bundle import Bundle

    real, entered = Bundle.rerank_many, threading.Event()

    def slow(self, requests):
        entered.set()
        time.sleep(1.0)
        return real(self, requests)

    monkeypatch.setattr(Bundle, "rerank_many", slow)
    with running(app_mod.create_app(bundles["v1"], settings(max_inflight=1, max_waiting=0))) as client:
        entered.clear()  # the warm-up at load called it too
        answers = []
        caller = threading.Thread(target=lambda: answers.append(client.post(
            "/rerank", json={"history": [], "candidates": catalogue[:3]}, headers=HEADERS)))
        caller.start()
        assert entered.wait(10)
        r = client.post("/recommend", json={"history": catalogue[:2], "k": 2}, headers=HEADERS)
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "RECBOOK_MAX_INFLIGHT=1" in r.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "overloaded"
        assert client.get("/livez").status_code == 200  # alive: only out of the balancer
        caller.join(30)
        assert answers[0].status_code == 200
        assert client.get("/readyz").status_code == 200
        assert 'recbook_shed_total{reason="inflight"} 1.0' in client.get("/metrics").text


def test_a_request_at_the_cap_waits_its_turn_while_the_waiting_room_has_space(bundles, catalogue, monkeypatch):
    """Cap 1, one place to wait: the second request waits for the first and is answered; a third, arriving while the
    room is full, is shed (503) and /readyz says so; once both are answered the service is ready again."""
    from recbook.serve import app as app_mod
    from recbook.serve.bundle import Bundle

    real, calls = Bundle.rerank_many, []

    def slow(self, requests):
        calls.append(time.monotonic())
        time.sleep(0.8)
        return real(self, requests)

    monkeypatch.setattr(Bundle, "rerank_many", slow)
    body = {"history": [], "candidates": catalogue[:3]}
    with running(app_mod.create_app(bundles["v1"], settings(max_inflight=1, max_waiting=1, batching=False))) as client:
        calls.clear()  # the warm-up at load called it too
        answers = {}
        callers = [threading.Thread(target=lambda i=i: answers.__setitem__(i, client.post("/rerank", json=body, headers=HEADERS)))
                   for i in range(2)]
        for c in callers:
            c.start()
            time.sleep(0.2)  # the first is in the model, then the second waits
        assert client.get("/readyz").json() == {"status": "overloaded", "detail": "1 requests in flight, 1 waiting"}
        shed = client.post("/rerank", json=body, headers=HEADERS)
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1" and "RECBOOK_MAX_WAITING=1" in shed.json()["detail"]
        for c in callers:
            c.join(30)
        assert [answers[i].status_code for i in range(2)] == [200, 200]
        assert len(calls) == 2 and calls[1] - calls[0] >= 0.75  # one at a time: the second ran after the first
        assert client.get("/readyz").status_code == 200
        text = client.get("/metrics").text
        assert 'recbook_shed_total{reason="inflight"} 1.0' in text and "recbook_waiting_requests 0.0" in text


def test_the_waiting_room_is_first_come_first_served_and_survives_clients_that_leave(bundles):
    """``Service.acquire`` / ``release`` directly: slots are handed over in arrival order, a waiter cancelled before its
    turn leaves the room, one cancelled just after it was handed a slot passes the slot on, and the counts return to 0."""
    from recbook.serve.service import Service

    async def scenario():
        service = Service(bundles["v1"], settings(max_inflight=1, max_waiting=3))
        order = []

        async def request(name):
            assert await service.acquire()
            order.append(name)
            await asyncio.sleep(0)
            service.release()

        assert await service.acquire()  # the one in flight
        a, b, c = (asyncio.ensure_future(request(n)) for n in "abc")
        await asyncio.sleep(0)
        assert (service.inflight, service.waiting) == (1, 3) and service.overloaded and not await service.acquire()
        b.cancel()  # leaves before its turn
        await asyncio.sleep(0)
        assert service.waiting == 2
        service.release()  # to a
        await asyncio.wait_for(asyncio.gather(a, c), timeout=5)
        assert order == ["a", "c"] and (service.inflight, service.waiting) == (0, 0)

        assert await service.acquire()
        d, e = asyncio.ensure_future(request("d")), asyncio.ensure_future(request("e"))
        await asyncio.sleep(0)
        service.release()  # handed to d ...
        d.cancel()  # ... which is cancelled before it runs: the slot goes on to e
        await asyncio.wait_for(asyncio.gather(d, e, return_exceptions=True), timeout=5)  # a lost slot would hang e
        assert order == ["a", "c", "e"] and (service.inflight, service.waiting) == (0, 0)

        unlimited = Service(bundles["v1"], settings(max_inflight=0))
        assert all([await unlimited.acquire() for _ in range(100)]) and not unlimited.overloaded

    asyncio.run(scenario())


def test_settings_from_env_read_the_new_variables():
    from recbook.serve.app import ServeSettings

    s = ServeSettings.from_env({"RECBOOK_API_KEYS": API_KEY, "RECBOOK_MAX_INFLIGHT": "7", "RECBOOK_MODELS_ROOT": "/srv/models",
                                "RECBOOK_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379/0"})
    assert (s.max_inflight, s.models_root, s.rate_limit_storage) == (7, "/srv/models", "redis://127.0.0.1:6379/0")
    with pytest.raises(SecurityConfigError, match="RECBOOK_MAX_INFLIGHT='many'"):
        ServeSettings.from_env({"RECBOOK_MAX_INFLIGHT": "many"})
    assert s.max_waiting == 14  # the waiting room defaults to twice the cap
    assert ServeSettings.from_env({"RECBOOK_MAX_INFLIGHT": "4", "RECBOOK_MAX_WAITING": "0"}).max_waiting == 0
    with pytest.raises(SecurityConfigError, match="RECBOOK_MAX_WAITING='x'"):
        ServeSettings.from_env({"RECBOOK_MAX_WAITING": "x"})
    with pytest.raises(ValueError, match="max_waiting"):
        ServeSettings(api_keys=(API_KEY,), max_waiting=-1)
    with pytest.raises(ValueError, match="drift_window"):
        ServeSettings(api_keys=(API_KEY,), drift_window=5)
    with pytest.raises(ValueError, match="max_inflight"):
        ServeSettings(api_keys=(API_KEY,), max_inflight=-1)


# ------------------------------------------------------------------ shared limits in a real Redis
# the redis_url fixture (a redis-server of the tests' own on a free loopback port) is in conftest.py


def test_two_service_processes_share_one_limit_through_redis(bundles, catalogue, redis_url):
    """Two apps (as two replicas) pointed at one Redis: a key's accepted requests over both stay within its limit."""
    from recbook.serve.app import create_app

    limit = dict(rate_limit=2.0, rate_burst=10, rate_limit_storage=redis_url)
    body = {"history": catalogue[:2], "k": 3, "rerank": False}  # 1 unit each
    with running(create_app(bundles["v1"], settings(**limit))) as a, running(create_app(bundles["v1"], settings(**limit))) as b:
        start, codes = time.monotonic(), []
        while time.monotonic() - start < 3.0:
            for client in (a, b):
                codes.append(client.post("/recommend", json=body, headers=HEADERS).status_code)
        elapsed = time.monotonic() - start
        accepted = codes.count(200)
        # burst 10 over a moving window of 10 / 2 = 5 s: within 3 s at most 10 pass, whichever replica they hit
        assert accepted == 10 and set(codes) == {200, 429}, (accepted, elapsed)
        per_process = [a.get("/metrics").text, b.get("/metrics").text]
        assert all('recbook_requests_total{route="/recommend",status="200"}' in t for t in per_process)  # both served some
        # the other key has its own allowance in the shared store
        assert b.post("/recommend", json=body, headers={"X-API-Key": OTHER_KEY}).status_code == 200


def test_the_redis_window_keeps_the_rate_and_fails_open(redis_url, monkeypatch):
    item = RateLimiter(rate=7.5, storage=redis_url)._item  # burst 7.5: one second of 8 units (not 8 over 2 s = 4/s)
    assert (item.amount, item.multiples) == (8, 1)
    item = RateLimiter(rate=100, burst=150, storage=redis_url)._item
    assert item.amount / item.multiples == 100  # the long-run rate is kept; the burst rounds up to whole seconds
    limiter = RateLimiter(rate=1, burst=2, storage=redis_url, namespace="recbook-test-open")

    def down(*args, **kwargs):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(limiter._limiter, "hit", down)
    assert limiter.check("k") == 0.0 and limiter.store_errors == 1  # a store outage is not a service outage
    from prometheus_client import CollectorRegistry, generate_latest

    from recbook.serve.service import _StoreErrors

    registry = CollectorRegistry()
    registry.register(_StoreErrors((limiter,)))
    assert "recbook_rate_limit_store_errors_total 1.0" in generate_latest(registry).decode()  # visible to Prometheus


def test_redis_limits_survive_a_new_process_reading_the_environment(redis_url):
    limiter = RateLimiter(rate=1, burst=3, storage=redis_url, namespace="recbook-test-env")
    assert [limiter.check("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    other = RateLimiter(rate=1, burst=3, storage=redis_url, namespace="recbook-test-env")  # a second replica
    assert other.check("k") > 0  # it sees the first one's spending
    assert json.dumps({"uri": limiter.storage_uri}).startswith('{"uri": "redis://')



# ------------------------------------------------------------------ live drift: what requests send vs what the bundle learned
def _reference(seed=0, n_items=200, users=300):
    rng = np.random.default_rng(seed)
    popularity = rng.zipf(1.6, n_items).astype(float)
    popularity /= popularity.sum()
    histories = [rng.choice(n_items, size=rng.integers(3, 60), p=popularity) for _ in range(users)]
    return histories, popularity


def test_live_drift_stays_quiet_on_reference_traffic_and_fires_on_drifted_traffic():
    from recbook.serve.live_drift import LiveDrift

    histories, popularity = _reference()
    rows = np.concatenate(histories)
    false_alarms, detections = 0, 0
    for seed in range(20):  # 20 seeded streams of each kind
        rng = np.random.default_rng(100 + seed)
        quiet = LiveDrift(rows, [len(h) for h in histories], n_items=200, window=1000, seed=seed)
        assert quiet.measure()["update_due"] == 0  # an empty window never alarms
        for i in rng.integers(0, len(histories), size=200):
            quiet.observe(histories[i])  # the traffic it was trained on, replayed
        false_alarms += quiet.measure()["update_due"]
        drifted = LiveDrift(rows, [len(h) for h in histories], n_items=200, window=1000, seed=seed)
        shifted = np.roll(popularity, 100)  # the popular items are now others
        for _ in range(200):
            drifted.observe(rng.choice(200, size=rng.integers(3, 60), p=shifted))
        detections += drifted.measure()["update_due"]
    assert false_alarms == 0 and detections == 20, (false_alarms, detections)


def test_live_drift_windows_roll_and_need_to_be_full():
    from recbook.serve.live_drift import LiveDrift, length_bin

    live = LiveDrift(np.arange(100) % 20, np.full(10, 10), n_items=20, window=50, request_window=5)
    for _ in range(3):
        live.observe(np.array([1, 2, 3]))
    m = live.measure()
    assert (m["window_items"], m["window_requests"], m["update_due"]) == (9, 3, 0)  # not full: no alarm however far off
    for _ in range(40):
        live.observe(np.array([1, 2, 3]))
    m = live.measure()
    assert 50 <= m["window_items"] < 53 and m["window_requests"] == 5 and m["update_due"] == 1
    assert [length_bin(x) for x in (0, 1, 3, 7, 300)] == [0, 1, 2, 3, 8]
    with pytest.raises(ValueError, match="window"):
        LiveDrift(np.arange(5), [5], n_items=5, window=3)


def test_the_service_exports_live_drift_of_request_histories(bundles):
    from recbook.serve.app import create_app
    from recbook.serve.bundle import load_bundle

    stored = load_bundle(bundles["plain"])
    ids, histories = stored.item_ids, [h for h in stored.histories.values() if len(h)]
    rng = np.random.default_rng(0)
    with running(create_app(bundles["plain"], settings(drift_window=300))) as client:
        def due():
            text = client.get("/metrics").text
            return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("recbook_live_update_due "))

        for i in rng.integers(0, len(histories), size=120):  # the histories it learned from, sent as requests
            body = {"history": ids[histories[i]][-50:].tolist(), "k": 3, "rerank": False}
            assert client.post("/recommend", json=body, headers=HEADERS).status_code == 200
        assert due() == 0.0
        rare = np.argsort(np.bincount(np.concatenate(histories), minlength=len(ids)))[:5]  # the five least seen items
        for _ in range(120):
            body = {"history": ids[rng.choice(rare, size=10)].tolist(), "k": 3, "rerank": False}
            assert client.post("/recommend", json=body, headers=HEADERS).status_code == 200
        assert due() == 1.0
        assert 'recbook_live_drift_threshold{signal="item_popularity"}' in client.get("/metrics").text


@pytest.mark.slow
def test_two_service_processes_hold_one_keys_rate_within_5_percent_over_10_seconds(bundles, catalogue, redis_url, tmp_path):
    """issue 22's target: two `python -m recbook serve` processes sharing one Redis; a key hammering both for 10 s gets
    its limit (RECBOOK_RATE_LIMIT units per second) ±5%, whichever process answers, and nothing but 200 or 429."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from recbook.serve.process import ServiceProcess

    rate, seconds = 20, 10.0
    env = {**os.environ, "RECBOOK_API_KEYS": API_KEY, "RECBOOK_RATE_LIMIT": str(rate), "RECBOOK_RATE_LIMIT_STORAGE": redis_url}
    body = {"history": catalogue[:2], "k": 3, "rerank": False}  # 1 unit each
    with ServiceProcess(bundles["v1"], log_path=tmp_path / "a.log", env=env, name="a") as a, \
            ServiceProcess(bundles["v1"], log_path=tmp_path / "b.log", env=env, name="b") as b:
        a.wait_ready()
        b.wait_ready()

        def hammer(url):
            codes = []
            with httpx.Client(base_url=url, timeout=10, headers=HEADERS) as client:
                while time.monotonic() < stop:
                    codes.append(client.post("/recommend", json=body).status_code)
            return codes

        stop = time.monotonic() + seconds
        with ThreadPoolExecutor(4) as pool:
            per_client = list(pool.map(hammer, [a.url, b.url, a.url, b.url]))
        # a check the store did not answer in time lets the request through (fails open): none may have, or the count lies
        assert all("recbook_rate_limit_store_errors_total 0.0" in httpx.get(s.url + "/metrics").text for s in (a, b))
    codes = [c for part in per_client for c in part]
    accepted = [part.count(200) for part in per_client]
    print(f"{sum(accepted)} of {len(codes)} requests accepted in {seconds:.0f} s at {rate} units/s; per client {accepted}")
    assert set(codes) <= {200, 429} and len(codes) > 2 * rate * seconds, (len(codes), set(codes))  # well over the limit
    assert abs(sum(accepted) - rate * seconds) <= 0.05 * rate * seconds, accepted
    assert accepted[0] + accepted[2] > 0 and accepted[1] + accepted[3] > 0  # both processes served the key
