"""Lambda entry points: thin wrappers that turn events into calls to runtime.dispatcher.core.

* ``handle_sqs`` — the job queue's event source (ReportBatchItemFailures): returns the
  records SQS must deliver again.
* ``handle_dlq`` — the dead-letter queue's event source: the jobs end FAILED (DISPATCH_FAILED).
* ``handle_task_state_change`` — EventBridge "ECS Task State Change" (STOPPED) events.
* ``handle_sweep`` — an EventBridge schedule: settles stuck jobs and stale uploads
  (runtime.dispatcher.sweeper).

The database pool and the ECS client are built at the first invocation and reused while
the execution environment lives.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from runtime.dispatcher.core import DEFAULT_CLAIM_TIMEOUT_SECONDS, StoppedTask, dispatch, fail_dead_letter, task_stopped
from runtime.dispatcher.launchers import EcsConfig, EcsLauncher, Launcher
from runtime.dispatcher.sweeper import SweepConfig, s3_object_size, sqs_sender, sweep
from runtime.shared import aws
from runtime.shared.db import Database, open_database
from runtime.shared.log import bind, configure
from runtime.shared.settings import DISPATCH_CLAIM_TIMEOUT_ENV, ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

#: Seconds after which a claim with no task recorded is taken over (see repo.jobs.reclaim_stale_claim);
#: constructs_lib.dispatcher sets it above the function timeout and below the queue's visibility.
CLAIM_TIMEOUT_ENV = DISPATCH_CLAIM_TIMEOUT_ENV
#: Time kept in hand per invocation: one RunTask with botocore's throttling retries fits in it.
RESERVE_MS = 15_000


@dataclass
class Runtime:
    settings: Settings
    db: Database
    launcher: Launcher
    claim_timeout_seconds: float


_runtimes: dict[tuple[str, ...], Runtime] = {}
_lock = threading.Lock()


def runtime(sections: tuple[str, ...] = ("database", "ecs")) -> Runtime:
    """The per-execution-environment state, built on first use (validating ``sections``)."""
    with _lock:
        if sections not in _runtimes:
            settings = load_settings(sections=sections)
            configure(settings.log_level)
            _runtimes[sections] = Runtime(
                settings=settings,
                db=open_database(settings, max_size=2),
                launcher=EcsLauncher(EcsConfig.from_settings(settings), aws.client("ecs", settings)),
                claim_timeout_seconds=settings.dispatch_claim_timeout_seconds or DEFAULT_CLAIM_TIMEOUT_SECONDS,
            )
        return _runtimes[sections]


@dataclass
class SweepRuntime:
    settings: Settings
    db: Database
    config: SweepConfig
    sqs: Any
    s3: Any


_sweep_runtimes: list[SweepRuntime] = []


def sweep_runtime() -> SweepRuntime:
    """The sweeper's state: database, queue and input bucket (no ECS), built on first use."""
    with _lock:
        if not _sweep_runtimes:
            settings = load_settings(sections=("database", "queue"))
            if not settings.input_bucket:
                raise ConfigError(["TRANSCODEX_INPUT_BUCKET is required"])
            configure(settings.log_level)
            _sweep_runtimes.append(
                SweepRuntime(
                    settings=settings,
                    db=open_database(settings, max_size=1),
                    config=SweepConfig.from_env(settings),
                    sqs=aws.client("sqs", settings),
                    s3=aws.client("s3", settings),
                )
            )
        return _sweep_runtimes[0]


def reset() -> None:
    """Forget the cached state (closes the pools): for tests and configuration reloads."""
    with _lock:
        for rt in _runtimes.values():
            rt.db.close()
        _runtimes.clear()
        for srt in _sweep_runtimes:
            srt.db.close()
        _sweep_runtimes.clear()


def _time_left_ms(context: Any) -> float:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return float(getter()) if callable(getter) else float("inf")


@aws.acting_as("dispatcher")
def handle_sqs(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Dispatch every record; report the ones to retry as batch item failures.

    Records not started before the last ``RESERVE_MS`` (at most a quarter of the invocation)
    are handed back untouched, so a slow, throttled RunTask cannot make the function time out
    mid-claim.
    """
    rt = runtime()
    reserve_ms = min(RESERVE_MS, _time_left_ms(context) / 4)
    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId") or "")
        receive_count = (record.get("attributes") or {}).get("ApproximateReceiveCount")
        with bind(message_id=message_id, receive_count=receive_count):
            if _time_left_ms(context) < reserve_ms:
                log.warning("too little time left to dispatch; handing the message back")
                failures.append({"itemIdentifier": message_id})
                continue
            try:
                outcome = dispatch(
                    rt.db,
                    rt.launcher,
                    record.get("body") or "",
                    message_id=message_id,
                    claim_timeout_seconds=rt.claim_timeout_seconds,
                )
            except Exception:  # a database outage must not lose the other records' results
                log.exception("dispatch failed unexpectedly; the message will be retried")
                failures.append({"itemIdentifier": message_id})
                continue
            log.info("message handled", extra={"outcome": outcome.value})
            if outcome.retry:
                failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


@aws.acting_as("dead-letter")
def handle_dlq(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Fail the job of every dead-lettered message; a database error retries that record only."""
    rt = runtime(("database",))
    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId") or "")
        try:
            fail_dead_letter(rt.db, record.get("body") or "", message_id=message_id)
        except Exception:
            log.exception("could not record a dead-lettered job; retrying", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


@aws.acting_as("task-state")
def handle_task_state_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fail the non-terminal job of a STOPPED task. Errors raise, so EventBridge retries."""
    rt = runtime(("database",))
    detail = event.get("detail") or {}
    if detail.get("lastStatus") != "STOPPED":
        return {"failed": False, "ignored": f"lastStatus {detail.get('lastStatus')!r}"}
    stopped = StoppedTask.from_ecs_event(detail, rt.settings.ecs_container_name)
    job = task_stopped(rt.db, stopped)
    return {"failed": job is not None, "job_id": str(job["id"]) if job else stopped.job_id}


@aws.acting_as("sweeper")
def handle_sweep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One sweep (scheduled): re-send stale QUEUED jobs, time out lost workers, settle stale
    uploads. Returns the counts; a database error raises (the next schedule tries again)."""
    rt = sweep_runtime()
    report = sweep(
        rt.db,
        rt.config,
        send_job=sqs_sender(rt.sqs, rt.settings.queue_url),
        object_size=s3_object_size(rt.s3, rt.settings.input_bucket),
    )
    return report.as_dict()
