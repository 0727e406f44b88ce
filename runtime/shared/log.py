"""Structured JSON logging for Lambda and containers, carrying the job id on every line.

``bind(job_id=...)`` sets context for the current task (a contextvar, so it is safe with
threads started inside it via ``contextvars.copy_context``); ``extra={...}`` adds fields to
one line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# None until bound; bind() always replaces the dict, never mutates it.
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("transcodex_log_context", default=None)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(_context.get() or {}),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and (not key.startswith("_") or key == "_aws"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure(level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            root.setLevel(level)
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # Lambda's runtime installs its own handler; replace it so lines stay JSON.
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "psycopg.pool"):
        logging.getLogger(noisy).setLevel("WARNING")


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. job_id) to every log line inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


METRICS_NAMESPACE = "TranscodeX"
_metrics = logging.getLogger("transcodex.metrics")


def job_status_metric(status: str) -> None:
    """One CloudWatch embedded-metric-format line: ``TranscodeX/Jobs{Status}`` += 1.

    Lambda turns such JSON log lines into metrics with no API call; the dashboard's
    "jobs by status" chart reads them.
    """
    _metrics.info(
        "job status changed",
        extra={
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["Status"]],
                        "Metrics": [{"Name": "Jobs", "Unit": "Count"}],
                    }
                ],
            },
            "Status": status,
            "Jobs": 1,
        },
    )
