"""The same recommendation service on Ray Serve: replicas that scale with traffic, and Ray's own request batching.

``recbook serve`` runs one uvicorn process (or ``--workers N`` fixed copies). Ray Serve runs the *same* FastAPI
app (:func:`recbook.serve.app.create_app`) inside replicas behind its HTTP proxy and adds what a single process
cannot do:

- **Autoscaling** (``autoscaling_config``): the controller watches the requests in flight per replica and asks for
  ``ceil(total ongoing requests / target_ongoing_requests)`` replicas — the same rule as the Kubernetes HPA
  (:func:`recbook.serve.scaling.desired_replicas`) with "ongoing requests" as the metric — within
  ``[min_replicas, max_replicas]``, after ``upscale_delay_s`` / ``downscale_delay_s`` of agreement.
- **Batching** (``@serve.batch``): concurrent re-ranker calls inside a replica are merged up to ``max_batch_size``
  or ``batch_wait_timeout_s`` — the knobs of :class:`recbook.serve.batching.MicroBatcher`, which this replaces.

Everything else (API keys, validation, rate limits, metrics, masking, hot swap) is the app's own code, unchanged.
Per-replica state stays per replica: each has its own rate-limit buckets and its own ``/metrics`` registry.

Optional: ``pip install "recbook[ray]"``. Notebook ``17_serving`` runs the load-step demo with it (and skips it when Ray is
missing); ``tests/integration/test_ray_app.py`` runs this::

    from recbook.serve.loadtest import load_timeline, run_steps

    with serve_locally(bundle_dir, settings, port=8001, max_replicas=2) as url, ReplicaWatcher() as watcher:
        steps = run_steps(url, [(5, 10), (60, 20), (5, 30)], path="/rerank", payloads=[...], api_key=...)
    plot_replicas(watcher.samples, load_timeline(steps))    # replicas over time under quiet → busy → quiet
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import warnings
from pathlib import Path

try:
    from ray import serve
except ImportError as exc:  # the optional extra
    raise ImportError('recbook.serve.ray_app needs Ray Serve: pip install "recbook[ray]" (or "ray[serve]")') from exc

from recbook.serve.app import ServeSettings, create_app
from recbook.serve.loadtest import finish_figure

# `metrics_interval_s` is deprecated in favour of the variables below, but Ray still checks look_back_period_s
# against it (a FutureWarning when the look-back is not longer): it is set to the push interval, and its warning hidden.
warnings.filterwarnings("ignore", message="The `metrics_interval_s` field", category=DeprecationWarning)

APP_NAME = "recbook"
DEPLOYMENT_NAME = "RecbookService"

# How often replicas and handles report their load to the controller; Ray's default (10 s) makes a classroom demo
# of autoscaling take minutes. Set before Ray starts (the replica processes inherit the environment).
FAST_METRICS_ENV = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}


class _RayBatcher:
    """Stands in for :class:`~recbook.serve.batching.MicroBatcher` inside the app: ``submit`` goes through the
    deployment's ``@serve.batch`` method, so Ray does the merging."""

    def __init__(self, submit):
        self._submit = submit

    async def submit(self, item):
        return await self._submit(item)

    async def close(self) -> None:  # Ray drains its batch queue itself when the replica stops
        return None


@serve.deployment(name=DEPLOYMENT_NAME, max_ongoing_requests=32, health_check_period_s=2, graceful_shutdown_timeout_s=10)
@serve.ingress()
class RecbookService:
    """One replica: builds the app for ``bundle_dir`` in its own process (``__serve_build_asgi_app__``, called by
    Ray after ``__init__``) and routes the app's re-ranker calls through :meth:`rerank_batch`."""

    def __init__(self, bundle_dir: str, settings: ServeSettings, max_batch_size: int = 32, batch_wait_timeout_s: float = 0.005):
        self.bundle_dir = bundle_dir
        # The bundle loads before the replica takes traffic: Ray waits for __init__ and the app's startup.
        self.settings = dataclasses.replace(settings, batching=False, load_in_background=False)
        self.rerank_batch.set_max_batch_size(max_batch_size)
        self.rerank_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self.service = None

    def __serve_build_asgi_app__(self):
        app = create_app(self.bundle_dir, self.settings)
        self.service = app.state.service
        self.service.batcher = _RayBatcher(self.rerank_batch)
        return app

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def rerank_batch(self, items: list) -> list:
        """Ray calls this with up to ``max_batch_size`` re-ranker requests that arrived together; one ONNX pass
        per bundle (the app's own :meth:`~recbook.serve.app.Service.rerank_batch`), off the event loop."""
        import asyncio

        self.service.metrics.batch.observe(len(items))
        return await asyncio.get_running_loop().run_in_executor(None, self.service.rerank_batch, items)

    def check_health(self):
        """Ray's replica health check (every ``health_check_period_s``): a replica whose bundle failed to load is
        restarted by the controller."""
        if self.service is not None and self.service.load_error:
            raise RuntimeError(f"bundle not loaded: {self.service.load_error}")


def autoscaling_config(min_replicas: int = 1, max_replicas: int = 2, target_ongoing_requests: float = 2.0, upscale_delay_s: float = 1.0,
                       downscale_delay_s: float = 5.0, look_back_period_s: float = 2.0) -> dict:
    """Ray Serve's autoscaling knobs, short enough for a demo (Ray's defaults: 30 s look-back, 600 s downscale)."""
    if not 1 <= min_replicas <= max_replicas:
        raise ValueError(f"need 1 <= min_replicas <= max_replicas, got {min_replicas} and {max_replicas}")
    return {"min_replicas": min_replicas, "initial_replicas": min_replicas, "max_replicas": max_replicas,
            "target_ongoing_requests": target_ongoing_requests, "upscale_delay_s": upscale_delay_s,
            "downscale_delay_s": downscale_delay_s, "look_back_period_s": look_back_period_s, "metrics_interval_s": 0.5}


def build_app(bundle_dir: str | os.PathLike, settings: ServeSettings | None = None, *, num_cpus: float = 1.0,
              max_batch_size: int = 32, batch_wait_timeout_s: float = 0.005, max_ongoing_requests: int = 32, **autoscaling):
    """A Ray Serve application for ``bundle_dir`` (give it to ``serve.run``). ``settings`` default to
    :meth:`ServeSettings.from_env` and are checked here (no keys, no deployment); ``autoscaling`` goes to
    :func:`autoscaling_config`; ``num_cpus`` is what each replica reserves from Ray."""
    settings = settings or ServeSettings.from_env()
    settings.check()
    bundle_dir = str(Path(bundle_dir).resolve())
    from recbook.serve.bundle import verify_bundle

    verify_bundle(bundle_dir)  # refuse a tampered bundle before starting anything
    deployment = RecbookService.options(autoscaling_config=autoscaling_config(**autoscaling), max_ongoing_requests=max_ongoing_requests,
                                        ray_actor_options={"num_cpus": num_cpus})
    return deployment.bind(bundle_dir, settings, max_batch_size, batch_wait_timeout_s)


def replica_counts(app_name: str = APP_NAME) -> dict[str, int]:
    """``{state: count}`` of the deployment's replicas (``RUNNING``, ``STARTING``, ``STOPPING``, ...)."""
    status = serve.status()
    application = status.applications.get(app_name)
    if application is None:
        return {}
    deployment = application.deployments.get(DEPLOYMENT_NAME)
    if deployment is None:
        return {}
    return {str(getattr(state, "value", state)): int(n) for state, n in deployment.replica_states.items()}


class ReplicaWatcher:
    """Samples the number of RUNNING replicas every ``interval_s`` in a thread: ``with ReplicaWatcher() as w: ...``
    then ``w.samples`` is ``[(seconds since start, running, starting), ...]``."""

    def __init__(self, interval_s: float = 0.5, app_name: str = APP_NAME):
        self.interval_s, self.app_name = interval_s, app_name
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                counts = replica_counts(self.app_name)
                self.samples.append((time.monotonic() - t0, counts.get("RUNNING", 0), counts.get("STARTING", 0)))
            except Exception:  # noqa: BLE001 — a failed status poll is a gap in the plot, not a failure of the run
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        return False

    @property
    def max_running(self) -> int:
        return max((running for _, running, _ in self.samples), default=0)


def plot_replicas(samples: list[tuple[float, int, int]], load: list[tuple[float, float]] | None = None, path=None):
    """Running replicas over time (a step plot; dotted: with those still starting, i.e. loading the bundle), with the
    offered load ``[(t, rps), ...]`` (:func:`recbook.serve.loadtest.load_timeline`) on a second axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.add_subplot()
    from matplotlib.ticker import MaxNLocator

    times = [t for t, _, _ in samples]
    ax.step(times, [r for _, r, _ in samples], where="post", label="running replicas")
    ax.step(times, [r + st for _, r, st in samples], where="post", linestyle=":", color="tab:blue", alpha=0.6,
            label="running + starting")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("replicas")
    ax.set_ylim(0, max([r + st for _, r, st in samples] + [1]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    twin = None
    if load:
        twin = ax.twinx()
        twin.step([t for t, _ in load], [r for _, r in load], where="post", color="tab:orange", alpha=0.7, label="offered rps")
        twin.set_ylabel("offered requests/s")
    return finish_figure(fig, ax, "Ray Serve autoscaling under a load step", path, twin)


@contextlib.contextmanager
def serve_locally(bundle_dir: str | os.PathLike, settings: ServeSettings | None = None, *, port: int = 8001, ray_cpus: int | None = None,
                  fast_metrics: bool = True, **build_kwargs):
    """Start Ray (a local cluster of ``ray_cpus``, default all), Ray Serve's proxy on 127.0.0.1:``port`` and the application;
    yield its base URL; shut Serve and Ray down on exit, even on error. The replicas are ready when this yields.
    ``build_kwargs`` go to :func:`build_app` (``num_cpus`` per replica, batching and autoscaling knobs)."""
    import ray

    if fast_metrics:
        for key, value in FAST_METRICS_ENV.items():
            os.environ.setdefault(key, value)
    app = build_app(bundle_dir, settings, **build_kwargs)  # checks keys and the bundle before Ray starts
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve_logger = logging.getLogger("ray.serve")  # Serve's INFO lines (started, ready) would flood a notebook's output
    level = serve_logger.level
    serve_logger.setLevel(max(level, logging.WARNING))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(app, name=APP_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            serve_logger.setLevel(level)
            if started_ray:
                ray.shutdown()
