"""The dispatcher's decisions, free of Lambda and SQS event shapes.

Three entry points, called through runtime.dispatcher.service.DispatcherService by the AWS
handlers (runtime/dispatcher/handler.py) and the local platform (runtime/local):

* :func:`dispatch` — one job message: claim QUEUED → DISPATCHED, start the worker, record it.
* :func:`fail_dead_letter` — a message SQS gave up on: the job ends FAILED (DISPATCH_FAILED).
* :func:`task_stopped` — a worker task/process stopped: a job it left non-terminal ends FAILED.

Every status change is one guarded UPDATE, so duplicate deliveries, concurrent Lambdas and
late events are harmless. The invariant: a job is never left DISPATCHED without either a
worker task or a message that will come back to finish the job (a retry, or the DLQ).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runtime.dispatcher.launchers import LAMBDA_TASK_PREFIX, Launcher, LaunchError, LaunchRequest
from runtime.shared import aws, estimate
from runtime.shared import db as dbm
from runtime.shared.log import bind
from runtime.shared.messages import MessageError, parse_message
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.status import ErrorCode, JobStatus

log = logging.getLogger(__name__)

#: A claim older than this with no task recorded belongs to a dispatcher that died between the
#: claim and RunTask (a Lambda cannot outlive its 15-minute maximum timeout). Set it to the
#: dispatcher's own timeout (plus a margin) to recover sooner.
DEFAULT_CLAIM_TIMEOUT_SECONDS = 900
_MAX_REASON = 600


class Outcome(StrEnum):
    """What happened to one message; :attr:`retry` says whether SQS must deliver it again."""

    #: A worker was started and recorded.
    LAUNCHED = "LAUNCHED"
    #: Nothing to do: duplicate delivery, job already dispatched/running/finished/cancelled.
    SKIPPED = "SKIPPED"
    #: The job does not exist (deleted, or a message from another environment): dropped.
    NOT_FOUND = "NOT_FOUND"
    #: The worker could not be started; the claim was released (job QUEUED again).
    RELEASED = "RELEASED"
    #: Another dispatcher holds a fresh claim on the job; look again later.
    CLAIM_IN_FLIGHT = "CLAIM_IN_FLIGHT"
    #: RunTask's outcome is unknown (timeout, 5xx): the claim is kept and taken over once stale,
    #: re-using the clientToken, so a task that did start is not started twice.
    UNCERTAIN = "UNCERTAIN"
    #: The body is not a job message.
    MALFORMED = "MALFORMED"
    #: No allowed runner can finish the job in time: it ended FAILED (WORK_TOO_LARGE), nothing started.
    REFUSED = "REFUSED"

    @property
    def retry(self) -> bool:
        """True when the record must be reported failed so SQS redelivers it (or dead-letters it)."""
        return self in (Outcome.RELEASED, Outcome.CLAIM_IN_FLIGHT, Outcome.UNCERTAIN, Outcome.MALFORMED)


# --- dispatch ---------------------------------------------------------------------------------


@aws.acting_as("dispatcher")
def dispatch(
    db: dbm.Database,
    launcher: Launcher,
    body: str | bytes,
    *,
    message_id: str | None = None,
    claim_timeout_seconds: float = DEFAULT_CLAIM_TIMEOUT_SECONDS,
    bounds: estimate.Bounds | None = None,
    price_class: str | None = None,
) -> Outcome:
    """Handle one job message: claim the job, place it (with ``bounds``: the worker Lambda or a
    Fargate task sized by its estimated work, runtime.shared.estimate), start its worker, and
    record the task id with where it runs, its size and timeout (``price_class``: x86, arm or
    spot, for the job's cost).

    Never raises for bad input or a refused launch (see :class:`Outcome`); a database error
    propagates, and the caller reports the record failed (the claim, if taken, is recovered
    by :func:`jobs_repo.reclaim_stale_claim` on redelivery or by the DLQ path).
    """
    with bind(message_id=message_id):
        try:
            message = parse_message(body)
        except MessageError as err:
            log.error("malformed job message", extra={"error": str(err), "body": _preview(body)})
            return Outcome.MALFORMED
        with bind(job_id=message.job_id):
            return _dispatch_job(db, launcher, message.job_id, claim_timeout_seconds, bounds, price_class)


def _placement(conn: dbm.Connection, job: dbm.Row, bounds: estimate.Bounds) -> estimate.Placement | estimate.TooLarge:
    upload = uploads_repo.get(conn, str(job["upload_id"]))
    size = int((upload or {}).get("size_bytes") or (upload or {}).get("declared_bytes") or 0)
    work = estimate.job_work(job["job_type"], job["operations"], size, estimate.Probe.from_json(job.get("probe")))
    return estimate.place(work, size, bounds)


def _dispatch_job(
    db: dbm.Database,
    launcher: Launcher,
    job_id: str,
    claim_timeout_seconds: float,
    bounds: estimate.Bounds | None = None,
    price_class: str | None = None,
) -> Outcome:
    with db.connection() as conn:
        job = jobs_repo.transition(conn, job_id, JobStatus.DISPATCHED)
        if job is None:
            current = jobs_repo.get(conn, job_id)
            if current is None:
                log.warning("job message for a job that does not exist; dropping it")
                return Outcome.NOT_FOUND
            status = JobStatus(current["status"])
            if status is not JobStatus.DISPATCHED or current["task_arn"] is not None:
                log.info(
                    "job already taken; nothing to start",
                    extra={"status": status.value, "task_arn": current["task_arn"]},
                )
                return Outcome.SKIPPED
            job = jobs_repo.reclaim_stale_claim(conn, job_id, claim_timeout_seconds)
            if job is None:
                log.info("another dispatcher holds a fresh claim on this job; retrying later")
                return Outcome.CLAIM_IN_FLIGHT
            log.warning("re-claimed a stale claim with no task recorded", extra={"attempt": job["dispatch_count"]})
        placement = _placement(conn, job, bounds) if bounds is not None else None
        if isinstance(placement, estimate.TooLarge):
            jobs_repo.fail_undispatched(
                conn,
                job_id,
                ErrorCode.WORK_TOO_LARGE,
                f"The job's estimated run time ({placement.estimated_seconds:.0f} s on the largest allowed worker) "
                f"exceeds the {placement.limit_seconds}-second limit, or its scratch space "
                f"({placement.scratch_bytes:,} bytes) the worker's {placement.scratch_limit_bytes:,}. "
                "Submit a shorter input or fewer/lower renditions.",
            )
            log.warning("job refused: too much work for any allowed worker", extra=placement.details())
            return Outcome.REFUSED

    request = LaunchRequest(
        job_id=job_id, user_id=str(job["user_id"]), attempt=int(job["dispatch_count"]), placement=placement
    )
    try:
        task_id = launcher.launch(request)
    except LaunchError as err:
        if err.ambiguous:
            log.error(
                "RunTask outcome unknown; keeping the claim for a retry with the same client token",
                extra={"error_code": err.code, "error": err.message, "attempt": request.attempt},
            )
            return Outcome.UNCERTAIN
        with db.connection() as conn:
            released = jobs_repo.transition(conn, job_id, JobStatus.QUEUED, from_statuses=[JobStatus.DISPATCHED])
        log.warning(
            "worker not started; claim released for a retry",
            extra={
                "error_code": err.code,
                "error": err.message,
                "throttled": err.throttled,
                "released": released is not None,
                "attempt": request.attempt,
            },
        )
        return Outcome.RELEASED

    with db.connection() as conn:
        recorded = jobs_repo.set_task_arn(
            conn,
            job_id,
            task_id,
            cpu=placement.cpu if placement and jobs_repo.runner_of(task_id) == "fargate" else None,
            memory_mib=placement.memory_mib if placement and jobs_repo.runner_of(task_id) != "local" else None,
            price_class=(price_class if placement and placement.runner == "fargate" else _no_spot(price_class)),
            timeout_seconds=placement.timeout_seconds if placement else None,
            estimated_seconds=placement.estimated_seconds if placement else None,
        )
        if recorded is None:
            # Cancelled (or failed) while RunTask was in flight: the worker would refuse the job
            # anyway; stop it now rather than pay for its start-up.
            current = jobs_repo.get(conn, job_id)
            log.warning(
                "job left DISPATCHED before its task was recorded; stopping the task",
                extra={"task_arn": task_id, "status": current and current["status"]},
            )
            launcher.stop(task_id, "TranscodeX: job no longer wants a worker")
            return Outcome.SKIPPED
    log.info(
        "worker started",
        extra={
            "task_arn": task_id,
            "attempt": request.attempt,
            "runner": jobs_repo.runner_of(task_id),
            "cpu": placement and placement.cpu,
            "timeout_seconds": placement and placement.timeout_seconds,
        },
    )
    return Outcome.LAUNCHED


# --- dead letters -----------------------------------------------------------------------------


@aws.acting_as("dead-letter")
def fail_dead_letter(db: dbm.Database, body: str | bytes, *, message_id: str | None = None) -> dbm.Row | None:
    """A job message SQS gave up on: its job ends FAILED with DISPATCH_FAILED.

    Returns the failed job, or None when there was nothing to fail: a malformed body (logged
    and dropped), an unknown job, or a job that already has a worker or is finished (a
    leftover duplicate; its task's own events settle it).
    """
    with bind(message_id=message_id):
        failure = LambdaFailure.from_body(body)
        if failure is not None:
            return _fail_lambda_run(db, failure)
        try:
            job_id = parse_message(body).job_id
        except MessageError as err:
            log.error("malformed message on the dead-letter queue; dropping it", extra={"error": str(err)})
            return None
        with bind(job_id=job_id), db.connection() as conn:
            current = jobs_repo.get(conn, job_id)
            attempts = int(current["dispatch_count"]) if current else 0
            failed = jobs_repo.fail_undispatched(
                conn,
                job_id,
                ErrorCode.DISPATCH_FAILED,
                f"No worker could be started for this job after {attempts} attempt(s) (the compute service "
                "refused or throttled every request). Submit the job again; if it keeps failing, the "
                "platform operator should check worker capacity and the task configuration.",
            )
            if failed is None:
                log.info(
                    "dead-lettered message needs no action",
                    extra={"status": current and current["status"], "task_arn": current and current["task_arn"]},
                )
            else:
                log.error("job failed: could not be dispatched", extra={"attempts": attempts})
            return failed


@dataclass(frozen=True)
class LambdaFailure:
    """An asynchronous invocation of the worker Lambda that failed (an error, a timeout, the
    runtime crashed) or expired unrun: the on-failure destination's record on the dead-letter
    queue (``requestContext``, ``requestPayload``, ``responsePayload``)."""

    job_id: str
    request_id: str
    condition: str
    error: str

    @classmethod
    def from_body(cls, body: str | bytes) -> LambdaFailure | None:
        try:
            record = json.loads(body)
        except ValueError:
            return None
        if not isinstance(record, dict) or not isinstance(record.get("requestContext"), dict):
            return None
        context, payload = record["requestContext"], record.get("requestPayload") or {}
        response = record.get("responsePayload") or {}
        job_id = str(payload.get("job_id") or "") if isinstance(payload, dict) else ""
        error = response.get("errorMessage") or response.get("errorType") if isinstance(response, dict) else None
        return cls(job_id, str(context.get("requestId") or ""), str(context.get("condition") or ""), str(error or ""))

    def classify(self) -> tuple[ErrorCode, str]:
        if self.condition == "EventAgeExceeded":
            return ErrorCode.DISPATCH_FAILED, (
                "The worker function did not start the job in time (its invocation expired in the queue, "
                "e.g. under throttling). Submit the job again."
            )
        if "timed out" in self.error.lower():
            return ErrorCode.TIMEOUT, (
                "The worker function reached its time limit before the job finished. Submit the job again; "
                f"if it times out again, try a smaller input. ({_clip(self.error)})"
            )
        return ErrorCode.TASK_STOPPED, (
            "The worker function stopped before recording a result"
            f" ({_clip(self.error) or self.condition or 'no reason given'}). Submit the job again."
        )


def _fail_lambda_run(db: dbm.Database, failure: LambdaFailure) -> dbm.Row | None:
    """A failed Lambda run's job ends FAILED, if that run is still its worker (guarded on the task id)."""
    if not _is_uuid(failure.job_id):
        log.error("worker-function failure record names no job; dropping it", extra={"request_id": failure.request_id})
        return None
    with bind(job_id=failure.job_id), db.connection() as conn:
        code, message = failure.classify()
        failed = jobs_repo.fail_stopped(conn, failure.job_id, LAMBDA_TASK_PREFIX + failure.request_id, code, message)
        if failed is None:
            log.info("worker-function failure needs no action", extra={"condition": failure.condition})
        else:
            log.error(
                "job failed: its worker function failed",
                extra={"error_code": code.value, "condition": failure.condition, "error": _clip(failure.error)},
            )
        return failed


# --- stopped tasks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoppedTask:
    """A worker that stopped, from an ECS "Task State Change" event or a local process exit."""

    task_id: str
    #: The job named by the task itself (container override JOB_ID, job-id tag), if known.
    job_id: str | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    container_reason: str | None = None
    exit_code: int | None = None

    @classmethod
    def from_ecs_event(cls, detail: Mapping[str, Any], container_name: str | None = None) -> StoppedTask:
        """Read an EventBridge ``ECS Task State Change`` event's ``detail``."""
        job_id = None
        for override in (detail.get("overrides") or {}).get("containerOverrides") or []:
            for env in override.get("environment") or []:
                if env.get("name") == "JOB_ID" and env.get("value"):
                    job_id = str(env["value"])
        if job_id is None:
            for tag in detail.get("tags") or []:
                if tag.get("key") == "job-id" and tag.get("value"):
                    job_id = str(tag["value"])
        containers = list(detail.get("containers") or [])
        chosen = next((c for c in containers if c.get("name") == container_name), None) if container_name else None
        if chosen is None:
            # The container that explains the stop: one with a reason, else a non-zero exit, else the first.
            chosen = next((c for c in containers if c.get("reason")), None) or next(
                (c for c in containers if c.get("exitCode") not in (None, 0)), containers[0] if containers else None
            )
        return cls(
            task_id=str(detail.get("taskArn") or ""),
            job_id=job_id,
            stop_code=detail.get("stopCode"),
            stopped_reason=detail.get("stoppedReason"),
            container_reason=(chosen or {}).get("reason"),
            exit_code=(chosen or {}).get("exitCode"),
        )

    @classmethod
    def from_process_exit(cls, *, job_id: str, task_id: str, exit_code: int) -> StoppedTask:
        """A local worker process exited (negative exit code: killed by that signal)."""
        return cls(task_id=task_id, job_id=job_id, stop_code="ProcessExited", exit_code=exit_code)

    def classify(self) -> tuple[ErrorCode, str]:
        """The error code and a message a user can act on."""
        reasons = " ".join(r for r in (self.container_reason, self.stopped_reason) if r)
        detail = _clip(reasons)
        if "OutOfMemoryError" in reasons:
            return ErrorCode.OUT_OF_MEMORY, (
                "The worker ran out of memory processing this file. Try a smaller input or fewer/lower "
                f"renditions, or ask the operator for a larger worker. ({detail})"
            )
        if "CannotPullContainerError" in reasons:
            return ErrorCode.TASK_STOPPED, (
                f"The worker could not start: its container image could not be pulled. Submit the job again; "
                f"if it persists the platform operator must fix the image or its registry access. ({detail})"
            )
        if "ResourceInitializationError" in reasons:
            return ErrorCode.TASK_STOPPED, (
                "The worker could not start: its task could not be initialised (network, secrets or "
                f"logging). Submit the job again; if it persists, contact the operator. ({detail})"
            )
        if self.stop_code == "SpotInterruption":
            return ErrorCode.TASK_STOPPED, (
                "The worker's spare (Spot) capacity was reclaimed before the job finished. Submit the job again."
            )
        if self.stop_code == "ProcessExited" and self.exit_code is not None:
            if self.exit_code < 0:
                return ErrorCode.TASK_STOPPED, (
                    f"The worker process was killed by signal {-self.exit_code} before recording a result. "
                    "Submit the job again."
                )
            return ErrorCode.TASK_STOPPED, (
                f"The worker process exited with code {self.exit_code} before recording a result. "
                "Submit the job again; if it fails the same way, the input may crash the worker."
            )
        if self.exit_code is not None:
            return ErrorCode.TASK_STOPPED, (
                f"The worker exited with code {self.exit_code} before recording a result. Submit the job "
                f"again; if it fails the same way, the input may crash the worker. ({detail or self.stop_code})"
            )
        return ErrorCode.TASK_STOPPED, (
            "The worker task stopped before the job finished"
            f" ({detail or self.stop_code or 'no reason given'}). Submit the job again."
        )


@aws.acting_as("task-state")
def task_stopped(db: dbm.Database, stopped: StoppedTask) -> dbm.Row | None:
    """A worker stopped: if its job is not terminal, it becomes FAILED with the stop reason.

    The job is found by the task id recorded on it, else by the job id the task carries.
    Returns the failed job, or None (no such job, already terminal, or another task's job).
    """
    with bind(task_arn=stopped.task_id), db.connection() as conn:
        job = jobs_repo.find_by_task_arn(conn, stopped.task_id) if stopped.task_id else None
        job_id = str(job["id"]) if job is not None else stopped.job_id
        if job_id is None or not _is_uuid(job_id):
            log.info("stopped task names no TranscodeX job; ignoring", extra={"job_ref": job_id})
            return None
        with bind(job_id=job_id):
            code, message = stopped.classify()
            failed = jobs_repo.fail_stopped(conn, job_id, stopped.task_id, code, message)
            if failed is None:
                log.info("task stopped; its job needs no change", extra={"stop_code": stopped.stop_code})
            else:
                log.error(
                    "job failed: its worker stopped",
                    extra={"error_code": code.value, "stop_code": stopped.stop_code, "exit_code": stopped.exit_code},
                )
            return failed


# --- helpers ------------------------------------------------------------------------------------


def _no_spot(price_class: str | None) -> str | None:
    """A Lambda run has no Spot price: x86 or ARM as the worker's architecture."""
    return "x86" if price_class == "spot" else price_class


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _preview(body: str | bytes) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text[:200]
