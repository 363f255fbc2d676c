"""Structured logs: one JSON object per line, so a log system can filter and count without parsing prose.

Every request line carries its request id (the ``X-Request-ID`` header, echoed or generated) — grep one id and
you see everything that request did, across services. Nothing personal is written: user ids appear only as a
salted hash (:class:`recbook.serve.security.IdMasker`), API keys only as a key id, and bodies never.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys

LOGGER_NAME = "recbook.serve"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", …fields}``; fields come from ``logger.info(event, extra={"fields": {...}})``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners and notebooks replace it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property always follows sys.stderr
        pass


def get_logger() -> logging.Logger:
    """The service's logger, writing JSON lines to stderr; configured once per process."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_recbook_json", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler._recbook_json = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def log(logger: logging.Logger, level: int, event: str, **fields) -> None:
    logger.log(level, event, extra={"fields": fields})


def uvicorn_log_config() -> dict:
    """uvicorn's own lines (start, shutdown, errors) as JSON too, so every line of the service's stderr parses;
    its access log stays off — :class:`recbook.serve.middleware.ServiceMiddleware` writes one richer line per request."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "recbook.serve.logs.JsonFormatter"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                        "uvicorn.error": {"level": "INFO"},
                        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}}}
