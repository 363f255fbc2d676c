"""``python -m recbook serve`` and ``loadtest``: the service on a bundle (uvicorn), and an open-loop load test of it."""

from __future__ import annotations

import json
from pathlib import Path

from recbook.usage import UsageError

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_HEADER_BYTES = 16 * 1024  # request line + headers


def cmd_serve(args) -> None:
    """Check everything that can be checked before listening (host, keys, the bundle's sha256 sums), then run uvicorn."""
    import os

    if args.host not in LOOPBACK and not args.allow_remote:
        raise UsageError(f"--host {args.host}: the course's servers listen on 127.0.0.1 only; pass --allow-remote to listen on "
                         f"{args.host} (and put TLS and a firewall in front)")
    for name in ("port", "workers", "max_batch_size", "retrieve_n"):
        value = getattr(args, name)
        if value < (0 if name == "port" else 1) or (name == "port" and value > 65535):
            raise UsageError(f"--{name.replace('_', '-')} {value} is out of range")
    if args.rerank_k < 0 or args.rerank_chunk < 0 or args.max_wait_ms < 0 or (args.threads is not None and args.threads < 1):
        raise UsageError("--rerank-k, --rerank-chunk and --max-wait-ms must be >= 0, --threads >= 1")
    from recbook.serve.bundle import BundleError, verify_bundle
    from recbook.serve.security import SecurityConfigError
    from recbook.serve.settings import BUNDLE_ENV, INSECURE_ENV, OPTIONS_ENV, ServeSettings

    options = {"batching": not args.no_batching, "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
               "retrieve_n": args.retrieve_n, "rerank_k": args.rerank_k, "rerank_chunk": args.rerank_chunk, "workers": args.workers}
    if args.threads is not None:
        options.update(ort_threads=args.threads, torch_threads=args.threads)
    try:
        ServeSettings.from_env(insecure_dev=args.insecure_dev, **options).check()
        verify_bundle(args.model)
    except (SecurityConfigError, BundleError) as exc:
        raise UsageError(str(exc)) from None
    os.environ[BUNDLE_ENV] = str(Path(args.model).resolve())
    os.environ[OPTIONS_ENV] = json.dumps(options)
    if args.insecure_dev:
        os.environ[INSECURE_ENV] = "1"
    import uvicorn

    from recbook.serve.logs import uvicorn_log_config

    # h11 rather than httptools: h11 refuses a request line plus headers over 16 KiB (httptools read a 32 MB header);
    # an idle or stalled connection is closed after 5 s. A proxy in front (deploy/) adds header-read timeouts.
    uvicorn.run("recbook.serve.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=False, timeout_graceful_shutdown=30, log_config=uvicorn_log_config(), http="h11",
                h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_keep_alive=5)
    return None


def cmd_loadtest(args) -> dict | None:
    import os

    if args.rps <= 0 or args.duration <= 0 or args.concurrency < 1:
        raise UsageError("--rps and --duration must be positive, --concurrency at least 1")
    if args.max_requests is not None and args.max_requests < 1:
        raise UsageError(f"--max-requests must be at least 1, got {args.max_requests}")
    payloads = None
    if args.payloads is not None:
        try:
            payloads = json.loads(Path(args.payloads).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--payloads {args.payloads!r}: {exc}") from None
        if not isinstance(payloads, list) or not payloads or not all(isinstance(p, dict) for p in payloads):
            raise UsageError(f"--payloads {args.payloads!r} must hold a non-empty JSON list of request bodies (objects)")
    from recbook.serve.loadtest import check_loopback, format_report, run_loadtest

    try:
        check_loopback(args.url)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None
    result = run_loadtest(args.url, args.rps, args.duration, concurrency=args.concurrency, path=args.path, payloads=payloads,
                          api_key=args.api_key or os.environ.get("RECBOOK_API_KEY"), max_requests=args.max_requests, seed=args.seed)
    if args.json:
        return {k: v for k, v in result.items() if not isinstance(v, list)}  # the per-request lists stay out of the summary
    print(format_report(result))
    return None


