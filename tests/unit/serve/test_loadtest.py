"""The open-loop load generator against a tiny local FastAPI app with known latencies and failures.

The app runs in a subprocess (uvicorn on 127.0.0.1, a free port) so that its event loop does not share the GIL
with the load generator's; it is stopped in the fixture's teardown whatever the tests do.
"""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from recbook.serve.loadtest import (  # noqa: E402
    check_loopback,
    format_report,
    load_timeline,
    poisson_schedule,
    run_loadtest,
    run_steps,
)
from recbook.serve.process import free_port  # noqa: E402

APP = textwrap.dedent(
    """
    import asyncio, sys
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()
    lock = asyncio.Lock()

    @app.get("/livez")
    async def livez():
        return {"ok": True}

    @app.post("/sleep")
    async def sleep(request: Request):
        body = await request.json()
        await asyncio.sleep(body.get("ms", 20) / 1000)
        return {"ok": True}

    @app.post("/serial")          # one request at a time, 50 ms each: capacity 20 requests/s
    async def serial(request: Request):
        async with lock:
            await asyncio.sleep(0.05)
        return {"ok": True}

    @app.post("/flaky")           # 500 when the body asks for it: the error count is known exactly
    async def flaky(request: Request):
        body = await request.json()
        if body.get("fail"):
            return JSONResponse({"error": "boom"}, status_code=500)
        return {"ok": True}

    @app.post("/keyed")
    async def keyed(request: Request):
        if request.headers.get("x-api-key") != "secret":
            return JSONResponse({"error": "no key"}, status_code=401)
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import httpx

    script = tmp_path_factory.mktemp("loadtest_app") / "app.py"
    script.write_text(APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"test app exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(base + "/livez", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("test app did not answer /livez within 30 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_poisson_gaps_have_mean_one_over_rps_and_are_seeded():
    times = poisson_schedule(rps=50, duration=200, seed=3)
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert len(times) == pytest.approx(50 * 200, rel=0.05)
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 50, rel=0.07)  # exponential: std = mean
    assert (gaps > 0).all() and times.max() < 200
    np.testing.assert_array_equal(times, poisson_schedule(rps=50, duration=200, seed=3))
    assert not np.array_equal(times[:100], poisson_schedule(rps=50, duration=200, seed=4)[:100])
    assert len(poisson_schedule(rps=50, duration=200, max_requests=7)) == 7


@pytest.mark.parametrize(
    "url", ["http://example.com:8000", "http://10.0.0.5", "http://0.0.0.0:8000", "http://127.0.0.1.evil.com", "ftp://127.0.0.1", "127.0.0.1:8000"]
)
def test_non_loopback_hosts_are_refused(url):
    with pytest.raises(ValueError, match="loadtest"):
        run_loadtest(url, rps=1, duration=0.1)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1/x", "http://[::1]:8000"])
def test_loopback_hosts_are_accepted(url):
    check_loopback(url)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rps"):
        run_loadtest("http://127.0.0.1:1", rps=0, duration=1)
    with pytest.raises(ValueError, match="concurrency"):
        run_loadtest("http://127.0.0.1:1", rps=1, duration=1, concurrency=0)
    with pytest.raises(ValueError, match="payloads"):
        run_loadtest("http://127.0.0.1:1", rps=1, duration=1, payloads=[])


def test_achieved_rate_close_to_offered_and_percentiles_sane(server):
    result = run_loadtest(server, rps=60, duration=2.0, path="/sleep", payloads=[{"ms": 20}], seed=1)
    expected = len(poisson_schedule(60, 2.0, seed=1))
    assert result["scheduled"] == result["sent"] == result["completed"] == expected
    assert result["errors"] == 0 and result["status_counts"] == {"200": expected}
    assert result["achieved_rps"] == pytest.approx(expected / 2.0, rel=0.2)
    assert 20 <= result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["p50_ms"] < 150  # 20 ms of sleep plus a few ms of HTTP on localhost, with room for a busy CI
    assert min(result["service_ms"]) >= 20 and len(result["latencies_ms"]) == expected
    assert result["queued"] == 0 and 0 <= result["lag_p50_ms"] < 50  # sent on time: the generator keeps up
    table = format_report(result)
    assert "p99 ms" in table and "200: " in table


def test_errors_are_counted_by_status(server):
    payloads = [{}, {}, {"fail": True}]
    result = run_loadtest(server, rps=100, duration=5.0, path="/flaky", payloads=payloads, max_requests=30, seed=2)
    assert result["scheduled"] == 30  # max_requests caps the run (100 rps × 5 s would be ~500)
    assert result["errors"] == 10 and result["status_counts"] == {"200": 20, "500": 10}
    assert result["elapsed_s"] < 2.0


def test_connection_failures_are_errors_not_crashes():
    port = free_port()  # nothing listens there
    result = run_loadtest(f"http://127.0.0.1:{port}", rps=50, duration=0.3, max_requests=5, request_timeout=2)
    assert result["scheduled"] == 5 and result["errors"] == 5 and result["completed"] == 0
    assert result["status_counts"] == {"ConnectError": 5}
    assert np.isnan(result["p99_ms"])
    assert "-" in format_report(result)


def test_api_key_is_sent(server):
    ok = run_loadtest(server, rps=50, duration=1, path="/keyed", api_key="secret", max_requests=5)
    bad = run_loadtest(server, rps=50, duration=1, path="/keyed", max_requests=5)
    assert ok["status_counts"] == {"200": 5} and bad["status_counts"] == {"401": 5}


def test_queueing_in_the_server_is_visible(server):
    """The server handles 20 requests/s; offered 40/s, latency from schedule grows along the run while the service
    time seen from the send stays ~50 ms × the queue ahead — a closed-loop tester would report ~50 ms."""
    result = run_loadtest(server, rps=40, duration=1.0, path="/serial", payloads=[{}], seed=0)
    lat = np.asarray(result["latencies_ms"])
    n = len(lat)
    assert result["errors"] == 0 and n > 25
    assert result["achieved_rps"] < 25  # the server's capacity, not the offered rate
    assert lat[-n // 4 :].mean() > 3 * lat[: n // 4].mean()  # the queue builds up
    assert result["p99_ms"] > 500


def test_client_concurrency_limit_queues_but_times_from_schedule(server):
    result = run_loadtest(server, rps=40, duration=0.5, concurrency=2, path="/sleep", payloads=[{"ms": 100}], seed=5)
    assert result["max_in_flight"] <= 2
    assert result["queued"] > 0
    assert result["errors"] == 0
    assert result["p99_ms"] > 2.5 * result["service_p99_ms"]  # waiting for a slot counts for the user
    assert result["service_p50_ms"] < 300
    assert result["lag_p99_ms"] > 100  # the wait for a free slot


def test_hard_timeout_bounds_the_run(server):
    t = time.monotonic()
    result = run_loadtest(server, rps=20, duration=0.5, path="/sleep", payloads=[{"ms": 2000}], hard_timeout=1.0, max_requests=5)
    assert time.monotonic() - t < 3
    assert result["errors"] == 5 and result["status_counts"] == {"Deadline": 5}


def test_load_steps_run_in_turn(server):
    results = run_steps(server, [(20, 0.3), (100, 0.3), (20, 0.3)], path="/sleep", payloads=[{"ms": 1}], seed=7)
    assert [r["offered_rps"] for r in results] == [20, 100, 20]
    assert results[0]["t_start_s"] == 0 and 0.3 <= results[1]["t_start_s"] < results[2]["t_start_s"] < 3
    assert results[1]["scheduled"] > results[0]["scheduled"] and all(r["errors"] == 0 for r in results)
    timeline = load_timeline(results)
    assert [rate for _, rate in timeline] == [20, 100, 20, 0.0] and timeline[-1][0] > timeline[-2][0]
    with pytest.raises(ValueError):
        run_steps(server, [])
    with pytest.raises(ValueError, match="loadtest"):
        run_steps("http://example.com", [(1, 1)])
    print(format_report(results))




def test_the_generator_runs_with_the_callers_objects_frozen(monkeypatch):
    """Regression (the burst test in the full slow suite): a test session holds millions of objects, and the generator's
    own full garbage collections put it 0.5 s behind schedule. The run freezes them, and gives them back after."""
    import gc

    from recbook.serve import loadtest

    seen = []

    def fake_run(coro):
        coro.close()
        seen.append(gc.get_freeze_count())
        return {"records": [], "t0": 0.0, "t_end": 1.0, "max_in_flight": 0}

    monkeypatch.setattr(loadtest, "_run_coroutine", fake_run)
    gc.unfreeze()
    keep = [object() for _ in range(1000)]  # alive before the run: frozen during it
    loadtest.run_loadtest("http://127.0.0.1:9", rps=5, duration=0.1)
    assert seen and seen[0] >= len(keep) and gc.get_freeze_count() == 0
    gc.freeze()  # a process that froze its own objects (an in-process service) keeps them frozen
    try:
        loadtest.run_loadtest("http://127.0.0.1:9", rps=5, duration=0.1)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
