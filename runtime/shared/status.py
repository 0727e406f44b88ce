"""Job and upload statuses and the transitions allowed between them; failure codes and output
roles. Standard library only: the CLI client reads these names without the database driver.

The database enforces these with guarded UPDATEs (``WHERE status = ANY(%s)``, in
runtime/shared/repo); this module is the one place that says which sources are legal for
each target, and every guard there is computed from it (:func:`sources`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
#: A job not finished yet (QUEUED, DISPATCHED, RUNNING): it counts against its user's limit of
#: active jobs, and its upload cannot be aborted.
ACTIVE: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL

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

#: Statuses of a job still waiting for a worker: the ones a worker may start it from.
AWAITING_WORKER: frozenset[JobStatus] = TRANSITIONS[JobStatus.RUNNING]
#: Statuses in which a worker task may exist for the job: claimed for one, or run by one. A
#: task id is recorded, and a stopped or lost task fails the job, only in these.
WITH_WORKER: frozenset[JobStatus] = frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING})


def sources(target: JobStatus, only: Iterable[JobStatus] | None = None) -> list[str]:
    """Statuses from which ``target`` may be reached, as SQL parameters.

    ``only`` narrows them for a guard that accepts fewer; naming an illegal source is a
    programming error (ValueError), so a narrowed guard can never widen the state machine.
    """
    return _narrow(TRANSITIONS, target, only)


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    return source in TRANSITIONS[target]


class UploadStatus(StrEnum):
    """Where an upload is; stored in ``uploads.status``, shown to users."""

    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


#: target -> the statuses an upload may move to it from. Completing is idempotent (a retried
#: ``/complete`` or ``/process``); a user may abort an upload whatever its status.
UPLOAD_TRANSITIONS: dict[UploadStatus, frozenset[UploadStatus]] = {
    UploadStatus.UPLOADED: frozenset({UploadStatus.PENDING, UploadStatus.UPLOADED}),
    UploadStatus.ABORTED: frozenset(UploadStatus),
    UploadStatus.EXPIRED: frozenset({UploadStatus.PENDING}),
}


def upload_sources(target: UploadStatus, only: Iterable[UploadStatus] | None = None) -> list[str]:
    """Statuses from which an upload may reach ``target``, as SQL parameters (``only`` narrows)."""
    return _narrow(UPLOAD_TRANSITIONS, target, only)


def can_complete(status: UploadStatus) -> bool:
    """Whether an upload in ``status`` may still become UPLOADED (not aborted or expired)."""
    return status in UPLOAD_TRANSITIONS[UploadStatus.UPLOADED]


_S = TypeVar("_S", JobStatus, UploadStatus)


def _narrow(table: Mapping[_S, frozenset[_S]], target: _S, only: Iterable[_S] | None) -> list[str]:
    allowed = table[target]
    if only is not None:
        narrowed = frozenset(only)
        if not narrowed <= allowed:
            raise ValueError(
                f"{sorted(narrowed - allowed)} -> {target} is not a legal transition; legal sources: {sorted(allowed)}"
            )
        allowed = narrowed
    return sorted(s.value for s in allowed)


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
    #: No allowed worker can finish the job within the time limit (runtime.shared.estimate).
    WORK_TOO_LARGE = "WORK_TOO_LARGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class OutputRole(StrEnum):
    """What an output is for; stored in ``job_outputs.role``, shown in download bodies."""

    IMAGE = "image"
    POSTER = "poster"
    MP4 = "mp4"
    HLS_MASTER = "hls-master"
    HLS_RENDITION = "hls-rendition"
    HLS_SEGMENT = "hls-segment"
