"""The request path measured where users pay for it: each bundle served by ``python -m recbook serve`` in its own process,
offered the same open-loop load, its latency and the model's CPU time per request read from the service itself.

:mod:`recbook.compress.request` times the retrieval function in-process; this module checks that what it saves survives
the HTTP layer, the event loop and the JSON: for every bundle (e.g. one per ``recbook export --request-variant``) it
starts the service (one ONNX Runtime / torch thread, retrieval only), warms it up, offers ``rps`` Poisson arrivals of
real users' histories for ``duration`` seconds (:func:`recbook.serve.loadtest.run_loadtest`), and reads each answered
request's ``model_cpu_ms`` from the service's JSON log. Bundles are measured in ``rounds``, in a shuffled order each
round, so a slow moment of the machine does not always land on the same bundle.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def history_payloads(bundle, n: int = 200, max_items: int = 50, k: int = 10, seed: int = 0) -> list[dict]:
    """``n`` request bodies ``{"history": [item ids], "k": k}``: real users' histories from ``bundle`` (a loaded
    :class:`~recbook.serve.bundle.Bundle`), the last ``max_items`` of each, users drawn at random (seeded)."""
    users = list(bundle.histories)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(users), size=min(n, len(users)), replace=False)
    out = []
    for i in chosen:
        rows = bundle.histories[users[i]][-max_items:]
        out.append({"history": [int(bundle.item_ids[r]) for r in rows], "k": k})
    return out


def model_cpu_ms(log_path: Path, skip_lines: int = 0, route: str = "/recommend") -> np.ndarray:
    """The ``model_cpu_ms`` of every answered ``route`` request in a service's JSON log, after its first ``skip_lines``."""
    values = []
    for line in Path(log_path).read_text().splitlines()[skip_lines:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("route") == route and entry.get("status") == 200 and entry.get("model_cpu_ms") is not None:
            values.append(float(entry["model_cpu_ms"]))
    return np.asarray(values)


def service_bench(bundles: dict, workdir, rps: float = 10.0, duration: float = 20.0, rounds: int = 2, threads: int = 1,
                  n_payloads: int = 200, seed: int = 0, baselines=None) -> list[dict]:
    """Per bundle (``{name: folder}``): latency p50/p99 (from the scheduled start, open loop), the model's CPU ms per
    request (p50 and p99, from the service's log), errors, over ``rounds`` shuffled rounds of ``duration`` s at ``rps``.
    ``speedup`` is the median CPU ms of the fastest of the ``baselines`` (the fp32 bundles; default: the first bundle)
    over this one's — against the best fp32 baseline, never a slow one."""
    from recbook.serve.bundle import load_bundle
    from recbook.serve.loadtest import run_loadtest
    from recbook.serve.process import ServiceProcess

    if not bundles:
        raise ValueError("bundles is empty: pass {name: bundle folder}")
    if baselines is not None and (not list(baselines) or set(baselines) - set(bundles)):
        raise ValueError(f"baselines {list(baselines)} must name bundles among {list(bundles)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    payloads = history_payloads(load_bundle(next(iter(bundles.values()))), n_payloads, seed=seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECBOOK_API") and k != "RECBOOK_RATE_LIMIT"}
    names = list(bundles)
    latency = {n: [] for n in names}  # pooled over rounds: ms from the scheduled start, every response
    cpu = {n: [] for n in names}
    errors = {n: 0 for n in names}
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        for i in rng.permutation(len(names)):
            name = names[i]
            log = workdir / f"{name}.round{r}.log"
            flags = ("--insecure-dev", "--threads", str(threads), "--rerank-k", "0")
            with ServiceProcess(bundles[name], *flags, log_path=log, env=env, name=name) as service:
                service.wait_ready()
                run_loadtest(service.url, rps, 2.0, payloads=payloads, seed=seed + 1000 + r)  # warm-up, not reported
                skip = len(log.read_text().splitlines())
                result = run_loadtest(service.url, rps, duration, payloads=payloads, seed=seed + r)
                latency[name].extend(result["latencies_ms"])
                errors[name] += int(result["errors"])
                cpu[name].extend(model_cpu_ms(log, skip).tolist())
    records = []
    base = [n for n in (baselines or names[:1]) if cpu[n]]  # a baseline that answered nothing cannot be one
    best = min(base, key=lambda n: float(np.median(cpu[n])), default=None)
    reference = float(np.median(cpu[best])) if best else None
    for name in names:
        c, lat = np.asarray(cpu[name]), np.asarray(latency[name])
        p50 = float(np.median(c)) if len(c) else None
        records.append({"bundle": name, "requests": int(len(lat)), "errors": errors[name],
                        "p50_ms": float(np.median(lat)) if len(lat) else None, "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                        "model_cpu_ms_p50": p50, "model_cpu_ms_p99": float(np.percentile(c, 99)) if len(c) else None,
                        "speedup": round(reference / p50, 3) if reference and p50 else None, "baseline": best, "rps": rps,
                        "duration_s": duration,
                        "rounds": rounds, "threads": threads, "python": sys.version.split()[0]})
    return records


__all__ = ["history_payloads", "model_cpu_ms", "service_bench"]
