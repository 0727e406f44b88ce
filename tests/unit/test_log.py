"""JSON log lines carry bound context, extras and CloudWatch embedded metrics."""

from __future__ import annotations

import json
import logging

from runtime.shared.log import JsonFormatter, bind, job_status_metric


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def _capture(name: str) -> tuple[logging.Logger, _Capture]:
    logger = logging.getLogger(name)
    handler = _Capture()
    logger.addHandler(handler)
    logger.setLevel("INFO")
    return logger, handler


def test_given_bound_job_id_when_logging_then_line_is_json_with_job_id_and_extras() -> None:
    logger, handler = _capture("tests.log.bind")
    with bind(job_id="j-1"):
        logger.info("claimed", extra={"task_arn": "arn:x", "_private": 1})
    logger.info("after")
    first, second = handler.lines
    assert first["job_id"] == "j-1" and first["task_arn"] == "arn:x" and first["message"] == "claimed"
    assert "_private" not in first
    assert "job_id" not in second


def test_given_status_change_when_metric_emitted_then_line_is_valid_emf() -> None:
    _, handler = _capture("transcodex.metrics")
    job_status_metric("SUCCEEDED")
    (line,) = handler.lines
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "TranscodeX"
    assert directive["Dimensions"] == [["Status"]]
    assert directive["Metrics"] == [{"Name": "Jobs", "Unit": "Count"}]
    assert line["Status"] == "SUCCEEDED" and line["Jobs"] == 1
    assert isinstance(line["_aws"]["Timestamp"], int)
