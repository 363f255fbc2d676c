"""The service on Ray Serve (optional extra ``ray``): the same app behind Ray's proxy, ``@serve.batch`` merging
concurrent re-ranker calls, and replicas scaling up under a load step and back down. Skipped without Ray."""

import asyncio
import json
import time

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'recbook[ray]')")
serve_bundle_helpers = pytest.importorskip("test_serve_bundle", reason="the serving bundle helpers (tests/test_serve_bundle.py) are missing")

from recbook.serve.app import ServeSettings  # noqa: E402
from recbook.serve.process import free_port  # noqa: E402
from recbook.serve.ray_app import ReplicaWatcher, autoscaling_config, build_app, plot_replicas, replica_counts, serve_locally  # noqa: E402
from recbook.serve.security import SecurityConfigError  # noqa: E402

KEY = "ray-client-key-0123456789abcdef"
pytestmark = pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, tiny_backbone):
    return serve_bundle_helpers.serve_bundles(tmp_path_factory.mktemp("ray-bundles"), tiny_backbone)


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def test_build_app_checks_keys_and_bundle_before_starting_anything(bundles, tmp_path):
    with pytest.raises(SecurityConfigError):
        build_app(bundles["v1"], ServeSettings())
    broken = serve_bundle_helpers.copy_of(bundles["v1"], tmp_path)
    (broken / "items.json").write_text("{}")
    with pytest.raises(ValueError, match="items.json"):
        build_app(broken, ServeSettings(api_keys=(KEY,)))
    with pytest.raises(ValueError, match="min_replicas"):
        autoscaling_config(min_replicas=3, max_replicas=2)


def test_plot_replicas(tmp_path):
    fig = plot_replicas([(0, 1, 0), (2, 1, 1), (4, 2, 0), (9, 1, 0)], load=[(0, 5), (2, 60), (8, 5)], path=tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 5_000 and len(fig.axes) == 2


@pytest.mark.slow
def test_ray_serve_runs_the_app_batches_and_scales_up_and_down(bundles):
    import httpx

    from recbook.serve.loadtest import run_loadtest

    items = json.loads((bundles["v1"] / "items.json").read_text())["item_ids"]
    body = {"history": items[:3], "candidates": items[5:15]}
    settings = ServeSettings(api_keys=(KEY,), log_salt="ray-test", ort_threads=1, torch_threads=1)
    # target 0.25 requests in flight per replica: a few tens of requests/s of the tiny model need 2 replicas;
    # upscale after 1 s of agreement (a short burst does not scale), downscale after 3 s.
    with serve_locally(bundles["v1"], settings, port=free_port(), ray_cpus=2, num_cpus=0.5, max_replicas=2,
                       target_ongoing_requests=0.25, upscale_delay_s=1.0, downscale_delay_s=3.0) as url:
        assert replica_counts().get("RUNNING") == 1
        with httpx.Client(base_url=url, timeout=30) as client:
            # the app's own behaviour, through Ray's proxy
            assert client.get("/livez").status_code == 200
            assert client.get("/readyz").json()["model_version"] == "v1"
            assert client.post("/recommend", json={"history": items[:3], "k": 5}).status_code == 401
            reply = client.post("/recommend", json={"history": items[:3], "k": 5}, headers={"X-API-Key": KEY})
            assert reply.status_code == 200 and len(reply.json()["items"]) == 5
            assert client.post("/rerank", json={"history": items[:3]}, headers={"X-API-Key": KEY}).status_code == 422

            # @serve.batch: 16 concurrent re-rank requests take fewer than 16 model calls
            before = client.get("/metrics").text

            async def burst():
                async with httpx.AsyncClient(base_url=url, timeout=30, headers={"X-API-Key": KEY}) as ac:
                    return await asyncio.gather(*[ac.post("/rerank", json=body) for _ in range(16)])

            assert [r.status_code for r in asyncio.run(burst())] == [200] * 16
            after = client.get("/metrics").text
            calls = _metric(after, "recbook_rerank_batch_requests_count") - _metric(before, "recbook_rerank_batch_requests_count")
            merged = _metric(after, "recbook_rerank_batch_requests_sum") - _metric(before, "recbook_rerank_batch_requests_sum")
            assert merged == 16 and calls < 16, (calls, merged)

        # a load step: scale up to 2 replicas, no failed request, then back to 1 when the load stops
        # The load is held until the second replica is RUNNING: starting one (a Ray worker loading the bundle) takes
        # ~2 s on an idle laptop and over 10 s on a busy 2-core CI machine, so a fixed-length step tests the machine's
        # load, not the autoscaler. 120 s is only a guard.
        with ReplicaWatcher(interval_s=0.25) as watcher:
            deadline, step = time.monotonic() + 120, 0
            while watcher.max_running < 2 and time.monotonic() < deadline:
                result = run_loadtest(url, rps=60, duration=5, path="/rerank", payloads=[body], api_key=KEY, seed=step)
                assert result["errors"] == 0, result["status_counts"]
                step += 1
            assert watcher.max_running == 2, watcher.samples
            deadline = time.monotonic() + 60
            while replica_counts().get("RUNNING", 0) > 1:
                assert time.monotonic() < deadline, f"did not scale down: {replica_counts()}"
                time.sleep(0.5)
