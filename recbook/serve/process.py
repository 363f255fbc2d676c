"""The service as a real process: ``python -m recbook serve`` started on 127.0.0.1, waited for, and always stopped.

Notebook ``17_serving`` and the tests run the service exactly as a user would — a separate process speaking HTTP —
so that what they measure includes the server, not just the app object. :class:`ServiceProcess` starts it on a free
loopback port, :meth:`~ServiceProcess.wait_ready` polls ``/readyz`` (and reports the log tail if the process dies),
and :meth:`~ServiceProcess.stop` sends Ctrl-C (uvicorn finishes in-flight requests, the micro-batcher drains), killing
it only if it does not exit in time. A ``weakref.finalize`` stops it too when the object is collected or Python exits,
so a failing cell or test never leaves a server behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, log_file, timeout: float) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # graceful: finish in-flight requests, drain the micro-batcher
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_file.close()
    return proc.returncode


class ServiceProcess:
    """``python -m recbook serve --model BUNDLE --port <free> *flags`` on 127.0.0.1, its stderr (JSON logs) in ``log_path``.

    ``env`` is the whole environment of the process (keys in ``RECBOOK_API_KEYS``, ...); ``None`` inherits this one.
    ``cpus`` (Linux) pins the process, and every thread it starts, to those CPU ids from its first instruction — e.g. to
    keep a load generator on the same machine off the service's cores, as a client on another machine would be."""

    def __init__(self, bundle, *flags: str, log_path, env: dict | None = None, name: str = "service", stop_timeout: float = 30.0,
                 cpus: set[int] | None = None):
        if cpus is not None:
            available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
            if not cpus or not set(cpus) <= available:
                raise ValueError(f"cpus must be a non-empty subset of this process's CPUs {sorted(available)}, got {cpus!r}")
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        log_file = open(self.log_path, "w")
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
        self.proc = subprocess.Popen([sys.executable, "-m", "recbook", "serve", "--model", os.fspath(bundle), "--port", str(self.port), *flags],
                                     stdout=subprocess.DEVNULL, stderr=log_file, env=env, preexec_fn=pin)
        self._finalizer = weakref.finalize(self, _stop, self.proc, log_file, stop_timeout)

    def wait_ready(self, timeout: float = 180.0) -> ServiceProcess:
        """Poll ``/readyz`` until it answers 200; raise with the log's tail if the process exits, or after ``timeout`` s."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout} s (log: {self.log_path})")

    def stop(self) -> int | None:
        """Ctrl-C, then kill if it does not exit in time; returns the exit code (0 after a graceful shutdown)."""
        code = self._finalizer()  # None when it already ran
        return self.proc.returncode if code is None else code

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
