"""Job statuses and the transitions allowed between them.

The database enforces these with guarded UPDATEs (``WHERE status = ANY(%s)``); this module is
the one place that says which sources are legal for each target.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

#: target -> the statuses a job may move to it from.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.DISPATCHED}),  # a released claim (RunTask refused)
    JobStatus.DISPATCHED: frozenset({JobStatus.QUEUED}),
    # A worker may start on a job straight from QUEUED when run by hand (`--job-id`).
    JobStatus.RUNNING: frozenset({JobStatus.DISPATCHED, JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING}),
}


def sources(target: JobStatus) -> list[str]:
    """Statuses from which ``target`` may be reached, as SQL parameters."""
    return sorted(s.value for s in TRANSITIONS[target])


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return source in TRANSITIONS[target]


class ErrorCode(StrEnum):
    """Why a job FAILED; stored in ``jobs.error_code``, shown to users."""

    INPUT_MISSING = "INPUT_MISSING"
    INPUT_UNREADABLE = "INPUT_UNREADABLE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INVALID_JOB = "INVALID_JOB"
    PROCESSING_FAILED = "PROCESSING_FAILED"
    TIMEOUT = "TIMEOUT"
    DISPATCH_FAILED = "DISPATCH_FAILED"
    TASK_STOPPED = "TASK_STOPPED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    INTERNAL_ERROR = "INTERNAL_ERROR"
