"""``python -m recbook serve / export / loadtest`` (issue 12): refusals before listening are one-line exits with code 2;
a real service process answers, logs JSON without user ids, and stops gracefully on Ctrl-C."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from helpers import exit_2_one_line
from recbook import cli
from recbook.serve.process import ServiceProcess, free_port
from serve_helpers import USER_OFFSET, copy_of, serve_bundles

API_KEY = "client-key-0123456789abcdef"


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, tiny_backbone):
    return serve_bundles(tmp_path_factory.mktemp("bundles"), tiny_backbone)


def service_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECBOOK_")}
    env.update(RECBOOK_API_KEYS=API_KEY, RECBOOK_LOG_SALT="cli-test-salt", HF_HUB_OFFLINE="1", **extra)
    return env


def test_serve_refusals_before_listening(bundles, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RECBOOK_API_KEYS", API_KEY)
    model = str(bundles["v1"])
    exit_2_one_line(["serve", "--model", model, "--host", "0.0.0.0"], capsys, "--host 0.0.0.0", "127.0.0.1 only", "--allow-remote")
    exit_2_one_line(["serve", "--model", model, "--port", "70000"], capsys, "--port 70000")
    exit_2_one_line(["serve", "--model", str(tmp_path / "nothing")], capsys, "no such folder")
    exit_2_one_line(["serve", "--model", model, "--rerank-chunk", "-1"], capsys, "--rerank-chunk")
    monkeypatch.setenv("RECBOOK_BUNDLE_KEY", "a-deploy-key")  # the test bundles are unsigned: refused before listening
    exit_2_one_line(["serve", "--model", model], capsys, "manifest.sig", "RECBOOK_BUNDLE_KEY")
    monkeypatch.delenv("RECBOOK_BUNDLE_KEY")
    monkeypatch.delenv("RECBOOK_API_KEYS")
    exit_2_one_line(["serve", "--model", model], capsys, "RECBOOK_API_KEYS", "--insecure-dev")
    monkeypatch.setenv("RECBOOK_API_KEYS", "short")
    exit_2_one_line(["serve", "--model", model], capsys, "shorter than 16 characters")


def test_export_out_that_is_a_file_exits_2(bundles, tmp_path, capsys):
    file = tmp_path / "taken.txt"
    file.write_text("x")
    exit_2_one_line(["export", "--retriever", str(tmp_path), "--out", str(file)], capsys, "--out", "is not a folder")
    exit_2_one_line(["export", "--retriever", str(tmp_path), "--out", str(tmp_path / "b")], capsys, "no run.json found")


def test_service_process_refuses_cpus_it_cannot_pin_to(tmp_path):
    for cpus in (set(), {10_000}):
        with pytest.raises(ValueError, match="cpus must be a non-empty subset"):
            ServiceProcess(tmp_path, log_path=tmp_path / "log.txt", cpus=cpus)
    assert not (tmp_path / "log.txt").exists()  # refused before anything started


def test_loadtest_arguments(tmp_path, capsys):
    exit_2_one_line(["loadtest", "--url", "http://example.com:8000", "--rps", "5", "--duration", "1"], capsys, "--url", "example.com")
    exit_2_one_line(["loadtest", "--url", "http://127.0.0.1:9", "--rps", "0", "--duration", "1"], capsys, "--rps")
    bad = tmp_path / "p.json"
    bad.write_text('{"history": [1]}')
    exit_2_one_line(["loadtest", "--url", "http://127.0.0.1:9", "--rps", "5", "--duration", "1", "--payloads", str(bad)], capsys,
                    "non-empty JSON list")
    parser = cli.build_parser()
    args = parser.parse_args(["loadtest", "--url", "http://127.0.0.1:8000", "--rps", "20", "--duration", "3", "--concurrency", "8",
                              "--path", "/rerank", "--api-key", "k"])
    assert (args.rps, args.duration, args.concurrency, args.path, args.api_key) == (20.0, 3.0, 8, "/rerank", "k")


def test_tampered_bundle_stops_the_process_before_it_listens(bundles, tmp_path):
    folder = copy_of(bundles["v1"], tmp_path)
    vectors = folder / "item_vectors.safetensors"
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0xFF
    vectors.write_bytes(bytes(data))
    done = subprocess.run([sys.executable, "-m", "recbook", "serve", "--model", str(folder), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120, env=service_env())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "item_vectors.safetensors does not match its sha256" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.slow
def test_real_service_process_logs_json_masks_users_and_stops_gracefully(bundles, tmp_path, capsys):
    log_path = tmp_path / "stderr.txt"
    service = ServiceProcess(bundles["v1"], "--max-wait-ms", "2", log_path=log_path, env=service_env())
    try:
        base = service.url
        service.wait_ready(timeout=90)
        user = USER_OFFSET + 4
        r = httpx.post(f"{base}/recommend", json={"user_id": user, "k": 3}, headers={"X-API-Key": API_KEY, "X-Request-ID": "cli-req-1"})
        assert r.status_code == 200 and r.json()["model_version"] == "v1" and len(r.json()["items"]) == 3
        assert httpx.post(f"{base}/recommend", json={"user_id": user, "k": 3}).status_code == 401

        payloads = tmp_path / "payloads.json"
        payloads.write_text(json.dumps([{"user_id": USER_OFFSET + i, "k": 5} for i in range(1, 6)]))
        capsys.readouterr()
        assert cli.main(["loadtest", "--url", base, "--rps", "20", "--duration", "1", "--api-key", API_KEY,
                         "--payloads", str(payloads), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["errors"] == 0 and report["completed"] >= 5, report
    finally:
        code = service.stop()  # Ctrl-C: uvicorn finishes in-flight requests, the lifespan drains the batcher (killed after 30 s)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON, uvicorn's included
    assert code == 0, text[-2000:]
    mine = next(rec for rec in lines if rec.get("request_id") == "cli-req-1")
    assert mine["status"] == 200 and len(mine["user"]) == 16
    assert str(user) not in text and API_KEY not in text
    events = [rec["event"] for rec in lines]
    assert "ready" in events and events[-1] != "ready" and "stopped" in events


@pytest.mark.slow
def test_the_server_refuses_huge_headers_and_a_multi_worker_reload(bundles, tmp_path):
    """F2: a 1 MiB header is refused by the server (h11's 16 KiB limit) before the app sees it; F4: with two workers a
    reload would reach one of them, so it is refused (409) instead of making a mixed fleet."""
    admin = "admin-key-0123456789abcdef"
    env = service_env(RECBOOK_ADMIN_KEYS=admin)
    with ServiceProcess(bundles["v1"], "--workers", "2", log_path=tmp_path / "log.txt", env=env) as service:
        service.wait_ready(timeout=120)
        try:
            r = httpx.get(service.url + "/livez", headers={"X-Padding": "x" * (1 << 20)}, timeout=10)
            assert r.status_code in (400, 413, 431), r.status_code
        except httpx.HTTPError:
            pass  # the server closed the connection: refused as well
        assert httpx.get(service.url + "/livez", headers={"X-Padding": "x" * 1000}).status_code == 200
        r = httpx.post(service.url + "/admin/reload", json={"bundle_dir": str(bundles["v2"])}, headers={"X-API-Key": admin}, timeout=30)
        assert r.status_code == 409 and "2 worker processes" in r.json()["detail"], r.text


_GENERATOR = """
import json, sys
from recbook.serve.loadtest import run_loadtest
url, key, payloads = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
summary = lambda r: {k: v for k, v in r.items() if not isinstance(v, list)}
closed = run_loadtest(url, rps=1000, duration=3, concurrency=1, payloads=payloads, api_key=key)
capacity = closed["achieved_rps"]
quiet = run_loadtest(url, rps=capacity / 4, duration=5, concurrency=8, payloads=payloads, api_key=key, seed=1)
burst = run_loadtest(url, rps=4 * capacity, duration=5, concurrency=64, payloads=payloads, api_key=key, seed=2)
print(json.dumps([summary(closed), summary(quiet), summary(burst)]))
"""


def _generate(url: str, cpus: set, payloads: list) -> list[dict]:
    """One request at a time (capacity), then a quarter of it (quiet), then 4× it (burst), from a fresh interpreter
    pinned to ``cpus`` (set before its first instruction): the client's CPU, heap and threads are its own."""
    done = subprocess.run([sys.executable, "-c", _GENERATOR, url, API_KEY, json.dumps(payloads)], capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_burst_at_four_times_capacity_is_shed_cleanly(bundles, tmp_path):
    """Issue 22's burst target, on a real service process (loopback, bounded): capacity measured first (one request
    at a time), then an open-loop burst at 4× that rate with the in-flight cap sized to the service's cores (one
    request per CPU) and the default waiting room (twice the cap). Every answer is 200, 429 or 503, every refusal says
    when to retry, some of the burst is shed, the requests it accepts are answered within 2× the quiet p99, and the
    service still answers after it.

    The load generator is a process of its own on a CPU of its own (the service is pinned to the others), as a client
    on another machine would be: sharing the 2 cores, the generator fell up to 0.9 s behind its schedule in one run in
    three here and in CI, and its own starvation, not the service, set the p99 (1.4-1.9 s); run inside the pytest
    process after the whole slow suite, it fell 0.5-1.4 s behind even on its own CPU (that process's threads and
    heap), so it runs in a fresh interpreter (:func:`_generate`).

    The cap's size is the lesson: CPU-bound requests gain nothing from running more of them than there are cores,
    they only wait longer (on 2 shared cores without a waiting room, a cap of 2 kept the burst's accepted p99 at
    0.66–0.85× the quiet p99 in three runs, a cap of 4 let it reach 4.4×); the waiting room keeps a quiet load from
    being shed when a few requests happen to arrive together."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs (Linux): one for the load generator, the others for the service")
    service_cpus, generator_cpus = set(cpus[:-1]), {cpus[-1]}
    payloads = [{"user_id": USER_OFFSET + i, "k": 10} for i in range(1, 6)]  # users the bundle knows; retrieval + re-ranking: the model is the cost
    env = service_env(RECBOOK_MAX_INFLIGHT=str(len(service_cpus)))
    with ServiceProcess(bundles["v1"], "--threads", str(len(service_cpus)), log_path=tmp_path / "log.txt", env=env,
                        cpus=service_cpus) as service:
        service.wait_ready(timeout=120)
        closed, quiet, burst = _generate(service.url, generator_cpus, payloads)
        capacity = closed["achieved_rps"]  # one at a time: the rate the service sustains without queueing
        assert httpx.get(service.url + "/livez").status_code == 200
        after = httpx.post(service.url + "/recommend", json=payloads[0], headers={"X-API-Key": API_KEY})
        assert after.status_code == 200  # alive and serving once the burst is over
    print(f"capacity {capacity:.0f} req/s; quiet p99 {quiet['accepted_p99_ms']:.1f} ms; burst at {4 * capacity:.0f} req/s: "
          f"{burst['status_counts']}, accepted p99 {burst['accepted_p99_ms']:.1f} ms, service p99 {burst['service_p99_ms']:.1f} ms, "
          f"generator lag p99 {burst['lag_p99_ms']:.1f} ms, max in flight {burst['max_in_flight']}")
    assert quiet["status_counts"].get("200", 0) >= 0.95 * quiet["scheduled"], quiet["status_counts"]  # a quarter of capacity: served
    assert set(burst["status_counts"]) <= {"200", "429", "503"}, burst["status_counts"]
    assert burst["status_counts"].get("503", 0) > 0  # the burst was over capacity: some of it was shed
    assert burst["refused_without_retry_after"] == 0
    assert burst["accepted_p99_ms"] <= 2 * quiet["accepted_p99_ms"], (burst["accepted_p99_ms"], quiet["accepted_p99_ms"])
