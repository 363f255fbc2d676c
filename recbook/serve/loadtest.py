"""An open-loop load generator: what a user of the service would feel at a given request rate.

A *closed-loop* tester (N workers, each sending its next request when the previous one returns) slows down when the
server slows down, so it never sees the queue that real traffic builds: users do not wait for each other. This one is
*open-loop*: request start times are drawn in advance from a Poisson process at ``rps`` (independent exponential
gaps, as for many independent users) and kept on the clock whatever the server does. Latency is measured from the
**scheduled** start, so time spent waiting — for a connection slot here, or in the server's queue — counts, as it
does for the user; the *service time* (from the actual send) is reported next to it.

Bounded by design: at most ``duration`` seconds of arrivals, at most ``max_requests`` requests, a hard overall
deadline, and loopback hosts only (this tool must not be pointed at someone else's server).

:func:`run_steps` chains rates into a load step (quiet → busy → quiet) for autoscaling demos. Used by
``python -m recbook loadtest`` and notebook ``17_serving``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import math
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_PAYLOAD = {"history": [1, 2, 3], "k": 10}


def check_loopback(url: str) -> str:
    """The URL's host when it is a loopback host (127.0.0.1, ::1, localhost); a ``ValueError`` naming it otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"loadtest needs an http:// or https:// URL, got {url!r}")
    host = (parts.hostname or "").lower()
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"loadtest only targets this machine (hosts {', '.join(LOOPBACK_HOSTS)}); refusing host {host or '(none)'!r} in {url!r}"
        )
    return host


def poisson_schedule(rps: float, duration: float, max_requests: int | None = None, seed: int = 0) -> np.ndarray:
    """Scheduled start times (seconds from the start) of a Poisson process at ``rps`` over ``[0, duration)``.

    The gaps are independent exponentials with mean ``1 / rps`` from a seeded generator, so a run is reproducible;
    at most ``max_requests`` times are returned."""
    if not (rps > 0 and math.isfinite(rps)):
        raise ValueError(f"rps must be a positive number, got {rps!r}")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if max_requests is not None and max_requests < 0:
        raise ValueError(f"max_requests must be >= 0, got {max_requests!r}")
    rng = np.random.default_rng(seed)
    expected = rps * duration
    cap = int(expected + 10 * math.sqrt(expected) + 20)  # far beyond the Poisson tail: drawn at once
    if max_requests is not None:
        cap = min(cap, max_requests)
    times = np.cumsum(rng.exponential(1.0 / rps, size=cap))
    return times[times < duration]


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    if not values_ms:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    arr = np.asarray(values_ms)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max()), "mean": float(arr.mean())}


async def _run(
    url: str,
    schedule: np.ndarray,
    concurrency: int,
    payloads: list[dict],
    headers: dict,
    method: str,
    request_timeout: float,
    deadline: float,
) -> dict:
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    records: list[dict] = []
    in_flight = 0
    max_in_flight = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout, headers=headers) as client:
        loop = asyncio.get_running_loop()

        async def one(record: dict) -> None:
            nonlocal in_flight, max_in_flight
            i = record["i"]
            async with semaphore:
                record["sent"] = loop.time()
                in_flight += 1
                max_in_flight = max(max_in_flight, in_flight)
                try:
                    payload = payloads[i % len(payloads)]
                    if method == "GET":
                        response = await client.get(url)
                    else:
                        response = await client.request(method, url, json=payload)
                    record["status"] = response.status_code
                    if response.status_code in (429, 503):  # a refusal should say when to come back
                        record["retry_after"] = response.headers.get("retry-after")
                except Exception as exc:  # noqa: BLE001 — every failure is a counted error, never a crash of the run
                    record["error"] = type(exc).__name__
                finally:
                    record["end"] = loop.time()
                    in_flight -= 1

        t0 = loop.time()
        tasks = []
        for i, offset in enumerate(schedule):
            when = t0 + float(offset)
            if when >= deadline:
                break
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # Behind schedule (a busy event loop): start at once; latency still counts from `when`.
            record = {"i": i, "scheduled": when, "queued": semaphore.locked(), "status": None, "error": None}
            records.append(record)
            tasks.append(asyncio.create_task(one(record)))
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        t_end = loop.time()
    for record in records:
        if record["status"] is None and record["error"] is None:
            record["error"] = "Deadline"  # still waiting (for a slot or a response) when the hard deadline hit
            record.setdefault("end", t_end)
    return {"records": records, "t0": t0, "t_end": t_end, "max_in_flight": max_in_flight}


def _run_coroutine(coro):
    """``asyncio.run(coro)``, also from inside a running event loop (Jupyter) by using a fresh thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def objects_frozen():
    """While the load runs, everything the calling process already holds (a notebook's or a test session's models and
    data: often millions of objects) is out of the garbage collector's reach (:func:`gc.freeze`), and back afterwards.
    Otherwise the generator's own allocations trigger full collections that walk all of it: in a test session the
    generator fell 0.5 s behind its schedule, and every latency it measured carried the pause. When the process had
    frozen objects already (an in-process service does), they stay frozen: only a freeze made here is undone."""
    already = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()


def run_loadtest(
    url: str,
    rps: float,
    duration: float,
    concurrency: int = 64,
    path: str = "/recommend",
    payloads: list[dict] | None = None,
    api_key: str | None = None,
    max_requests: int | None = None,
    seed: int = 0,
    method: str = "POST",
    request_timeout: float = 10.0,
    hard_timeout: float | None = None,
) -> dict:
    """Offer ``rps`` requests per second (Poisson arrivals) to ``url + path`` for ``duration`` seconds; the report.

    ``url`` is the service's base URL (``http://127.0.0.1:8000``); only loopback hosts are accepted. At most
    ``concurrency`` requests are in flight; a request whose scheduled time comes while all slots are busy waits
    (it is counted in ``queued``) and its latency still runs from the scheduled time. ``payloads`` are sent as JSON
    in turn (default ``{"history": [1, 2, 3], "k": 10}``); ``api_key`` goes in the ``X-API-Key`` header. The run
    stops scheduling after ``duration`` seconds or ``max_requests`` requests and never lasts longer than
    ``hard_timeout`` (default: ``duration + request_timeout + 5`` s); requests unfinished then count as errors.

    Returns a dict: ``offered_rps``, ``achieved_rps`` (completed responses per second of wall time), ``sent``,
    ``completed`` (responses of any status), ``errors`` (non-2xx responses plus exceptions), ``status_counts``
    (status code or exception name → count), ``queued``, ``max_in_flight``, ``p50_ms``/``p95_ms``/``p99_ms``/
    ``max_ms``/``mean_ms`` of the latency from schedule (over responses of any status; a request that got no
    response has no latency and counts only in ``errors``), ``accepted_p50_ms``/``accepted_p99_ms`` over the 2xx
    responses only (what a shed request's fast 503 would otherwise flatter), ``refused_without_retry_after`` (429 and
    503 answers that do not say when to retry), ``service_p50_ms``/``service_p99_ms`` from the actual send,
    ``lag_p50_ms``/``lag_p99_ms`` from the schedule to the actual send (waiting for a slot, or a late event loop:
    a large lag with ``queued == 0`` means the generator itself cannot keep up — it costs about 1-2 ms of CPU per
    request — so offer less, or give it a core of its own), and the raw per-response lists ``latencies_ms``,
    ``service_ms`` and ``scheduled_s`` (in schedule order).
    """
    check_loopback(url)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    if payloads is not None and len(payloads) == 0:
        raise ValueError("payloads is empty: give at least one request body, or None for the default")
    method = method.upper()
    schedule = poisson_schedule(rps, duration, max_requests=max_requests, seed=seed)
    payloads = list(payloads) if payloads is not None else [DEFAULT_PAYLOAD]
    headers = {"X-API-Key": api_key} if api_key else {}
    hard_timeout = duration + request_timeout + 5.0 if hard_timeout is None else float(hard_timeout)
    target = url.rstrip("/") + path

    async def main():
        deadline = asyncio.get_running_loop().time() + hard_timeout
        return await _run(target, schedule, concurrency, payloads, headers, method, request_timeout, deadline)

    with objects_frozen():
        raw = _run_coroutine(main())
    records = sorted(raw["records"], key=lambda r: r["i"])
    responded = [r for r in records if r["status"] is not None]
    status_counts = Counter(str(r["status"]) if r["status"] is not None else r["error"] for r in records)
    errors = sum(1 for r in records if r["status"] is None or not 200 <= r["status"] < 300)
    latencies = [(r["end"] - r["scheduled"]) * 1e3 for r in responded]
    service = [(r["end"] - r["sent"]) * 1e3 for r in responded]
    lags = [(r["sent"] - r["scheduled"]) * 1e3 for r in records if "sent" in r]
    last_end = max((r["end"] for r in responded), default=raw["t_end"])
    elapsed = max(last_end - raw["t0"], 1e-9)
    lat, svc, lag = _percentiles(latencies), _percentiles(service), _percentiles(lags)
    accepted = _percentiles([(r["end"] - r["scheduled"]) * 1e3 for r in responded if 200 <= r["status"] < 300])
    refused = [r for r in responded if r["status"] in (429, 503)]
    return {
        "url": target,
        "offered_rps": float(rps),
        "duration_s": float(duration),
        "concurrency": concurrency,
        "elapsed_s": elapsed,
        "achieved_rps": len(responded) / elapsed,
        "sent": sum(1 for r in records if "sent" in r),
        "scheduled": len(records),
        "completed": len(responded),
        "errors": errors,
        "status_counts": dict(sorted(status_counts.items())),
        "queued": sum(1 for r in records if r["queued"]),
        "max_in_flight": raw["max_in_flight"],
        **{f"{name}_ms": value for name, value in lat.items()},
        "accepted_p50_ms": accepted["p50"],
        "accepted_p99_ms": accepted["p99"],
        "refused_without_retry_after": sum(1 for r in refused if not r.get("retry_after")),
        "service_p50_ms": svc["p50"],
        "service_p99_ms": svc["p99"],
        "lag_p50_ms": lag["p50"],
        "lag_p99_ms": lag["p99"],
        "latencies_ms": latencies,
        "service_ms": service,
        "scheduled_s": [r["scheduled"] - raw["t0"] for r in responded],
    }


def run_steps(url: str, steps: list[tuple[float, float]], **kwargs) -> list[dict]:
    """A load *step*: :func:`run_loadtest` at each ``(rps, duration)`` of ``steps`` in turn (e.g. ``[(5, 10), (60, 20),
    (5, 20)]`` — quiet, busy, quiet — to watch an autoscaler add and remove replicas). Each result gains ``t_start_s``,
    its start in seconds after the first step's; ``load_timeline(results)`` gives the offered rate over time for a
    plot. Other keyword arguments go to every :func:`run_loadtest` call (each step gets seed ``seed + i``)."""
    if not steps:
        raise ValueError("steps is empty: give (rps, duration) pairs")
    check_loopback(url)
    seed = kwargs.pop("seed", 0)
    results, t0 = [], None
    for i, (rps, duration) in enumerate(steps):
        start = time.monotonic()
        t0 = start if t0 is None else t0
        result = run_loadtest(url, rps, duration, seed=seed + i, **kwargs)
        result["t_start_s"] = start - t0
        results.append(result)
        time.sleep(max(0.0, start + duration - time.monotonic()))  # a step lasts its duration even if its last arrival came early
    return results


def load_timeline(results: list[dict]) -> list[tuple[float, float]]:
    """``[(t_start_s, offered rps), ...]`` of :func:`run_steps` results, ending with a 0 at the end of the last step."""
    timeline = [(r["t_start_s"], r["offered_rps"]) for r in results]
    if results:
        last = results[-1]
        timeline.append((last["t_start_s"] + max(last["duration_s"], last["elapsed_s"]), 0.0))
    return timeline


_COLUMNS = [
    ("offered", "offered_rps", "{:.1f}"),
    ("achieved", "achieved_rps", "{:.1f}"),
    ("sent", "sent", "{:d}"),
    ("ok", None, "{:d}"),
    ("errors", "errors", "{:d}"),
    ("queued", "queued", "{:d}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p95 ms", "p95_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("max ms", "max_ms", "{:.1f}"),
    ("svc p50", "service_p50_ms", "{:.1f}"),
    ("lag p99", "lag_p99_ms", "{:.1f}"),
]


def format_report(result: dict | list[dict]) -> str:
    """A plain-text table, one row per load-test result (a single result or a list, e.g. one per rate), followed by
    the status counts of each."""
    results = [result] if isinstance(result, dict) else list(result)
    rows = []
    for r in results:
        row = []
        for _, key, fmt in _COLUMNS:
            value = r["scheduled"] - r["errors"] if key is None else r[key]
            row.append("-" if isinstance(value, float) and math.isnan(value) else fmt.format(value))
        rows.append(row)
    headers = [name for name, _, _ in _COLUMNS]
    widths = [max(len(h), *(len(row[j]) for row in rows)) if rows else len(h) for j, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    for r in results:
        counts = ", ".join(f"{k}: {v}" for k, v in r["status_counts"].items()) or "none"
        lines.append(f"{r['offered_rps']:.1f} rps → status counts {counts}")
    return "\n".join(lines)


def finish_figure(fig, ax, title: str, path=None, twin=None):
    """One legend for ``ax`` and its ``twin`` axis (if any), the title, a tight layout, saved to ``path`` when given."""
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def noisy_neighbour(url: str, light_payloads: list[dict], heavy_payload: dict, light_key: str, heavy_key: str,
                    light_rps: float = 5.0, heavy_interval: float = 2.0, duration: float = 20.0, heavy_path: str = "/rerank",
                    seed: int = 0) -> dict:
    """One key's view of another key's heavy requests (issue 22, F1): the light key's ``/recommend`` latency at
    ``light_rps`` (open loop, :func:`run_loadtest`) first alone (``quiet``), then while the heavy key sends
    ``heavy_payload`` to ``heavy_path`` every ``heavy_interval`` seconds (``loaded``; one heavy request at a time,
    the next as soon as the interval is over or the previous one answered). Returns both reports, the heavy requests'
    statuses and latencies, and ``p99_ratio`` = loaded ÷ quiet p99 of the light key's accepted requests."""
    import threading

    import httpx

    check_loopback(url)
    if heavy_interval <= 0 or duration <= 0:
        raise ValueError(f"heavy_interval and duration must be positive, got {heavy_interval} and {duration}")
    quiet = run_loadtest(url, light_rps, duration, concurrency=16, payloads=light_payloads, api_key=light_key, seed=seed)
    heavy = {"statuses": Counter(), "ms": []}
    stop = threading.Event()

    def send_heavy():
        with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status = str(client.post(heavy_path, json=heavy_payload, headers={"X-API-Key": heavy_key}).status_code)
                except httpx.HTTPError as exc:  # counted, and the heavy key keeps sending: the loaded phase stays loaded
                    status = type(exc).__name__
                heavy["statuses"][status] += 1
                heavy["ms"].append((time.perf_counter() - started) * 1e3)
                stop.wait(max(0.0, heavy_interval - (time.perf_counter() - started)))

    sender = threading.Thread(target=send_heavy, daemon=True)
    sender.start()
    try:
        loaded = run_loadtest(url, light_rps, duration, concurrency=16, payloads=light_payloads, api_key=light_key, seed=seed + 1)
    finally:
        stop.set()
        sender.join(timeout=120)
    ratio = loaded["accepted_p99_ms"] / quiet["accepted_p99_ms"] if quiet["accepted_p99_ms"] else float("nan")
    return {"quiet": quiet, "loaded": loaded, "heavy_status_counts": dict(heavy["statuses"]),
            "heavy_p50_ms": float(np.median(heavy["ms"])) if heavy["ms"] else float("nan"), "p99_ratio": float(ratio)}
