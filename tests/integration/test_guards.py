"""Every guarded UPDATE of the repositories, tried from every status against a real PostgreSQL:
each accepts exactly the sources runtime.shared.status allows (TRANSITIONS, narrowed where the
function says so), and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.status import (
    AWAITING_WORKER,
    TRANSITIONS,
    UPLOAD_TRANSITIONS,
    WITH_WORKER,
    ErrorCode,
    JobStatus,
    UploadStatus,
    can_transition,
)
from tests.factories import insert_job, insert_upload, insert_user

pytestmark = pytest.mark.integration

TASK = "arn:aws:ecs:us-east-1:123456789012:task/c/recorded"
#: Every (status, task) a job can be in: a QUEUED job never has a task (releasing clears it).
STATES = [(s, None) for s in JobStatus] + [(s, TASK) for s in JobStatus if s is not JobStatus.QUEUED]


def _job_in(conn: Any, status: JobStatus, task_arn: str | None = None, age_seconds: int = 0) -> str:
    """A job put straight into ``status`` (test set-up: no transition involved)."""
    job_id = str(insert_job(conn)["id"])
    conn.execute(
        """UPDATE jobs SET status = %s, task_arn = %s, started_at = now() - make_interval(secs => %s),
                  dispatched_at = now() - make_interval(secs => %s), updated_at = now() - make_interval(secs => %s)
           WHERE id = %s""",
        (status.value, task_arn, age_seconds, age_seconds, age_seconds, job_id),
    )
    return job_id


def _status(conn: Any, job_id: str) -> JobStatus:
    job = jobs_repo.get(conn, job_id)
    assert job is not None
    return JobStatus(job["status"])


def test_given_every_source_and_target_when_transitioned_then_exactly_the_legal_moves_happen(db: dbm.Database) -> None:
    moved = set()
    with db.connection() as conn:
        for target in JobStatus:
            for source in JobStatus:
                job_id = _job_in(conn, source)
                row = jobs_repo.transition(conn, job_id, target)
                assert (row is not None) == can_transition(source, target), f"{source} -> {target}"
                assert _status(conn, job_id) == (target if row is not None else source)
                if row is not None:
                    moved.add((source, target))
    assert moved == {(s, t) for t, allowed in TRANSITIONS.items() for s in allowed}


@pytest.mark.parametrize(
    ("name", "call", "accepted"),
    [
        (
            "fail_undispatched",
            lambda conn, job_id: jobs_repo.fail_undispatched(conn, job_id, ErrorCode.DISPATCH_FAILED, "m"),
            lambda status, task: status in TRANSITIONS[JobStatus.FAILED] & AWAITING_WORKER and task is None,
        ),
        (
            "fail_stopped (the recorded task)",
            lambda conn, job_id: jobs_repo.fail_stopped(conn, job_id, TASK, ErrorCode.TASK_STOPPED, "m"),
            lambda status, task: status in TRANSITIONS[JobStatus.FAILED] & WITH_WORKER,
        ),
        (
            "fail_stopped (another task)",
            lambda conn, job_id: jobs_repo.fail_stopped(conn, job_id, TASK + "-old", ErrorCode.TASK_STOPPED, "m"),
            lambda status, task: status in TRANSITIONS[JobStatus.FAILED] & WITH_WORKER and task is None,
        ),
    ],
)
def test_given_every_state_when_a_narrowed_failure_is_applied_then_only_its_sources_fail(
    db: dbm.Database,
    name: str,
    call: Callable[[Any, str], dict[str, Any] | None],
    accepted: Callable[[JobStatus, str | None], bool],
) -> None:
    with db.connection() as conn:
        for status, task in STATES:
            job_id = _job_in(conn, status, task)
            row = call(conn, job_id)
            assert (row is not None) == accepted(status, task), f"{name}: {status}, task={task}"
            assert _status(conn, job_id) == (JobStatus.FAILED if row is not None else status)
            if row is not None:
                assert row["error_code"] in (ErrorCode.DISPATCH_FAILED, ErrorCode.TASK_STOPPED)
                assert row["finished_at"] is not None


def test_given_every_state_when_a_task_is_recorded_then_only_jobs_with_a_worker_take_it(db: dbm.Database) -> None:
    with db.connection() as conn:
        for status, task in STATES:
            job_id = _job_in(conn, status, task)
            row = jobs_repo.set_task_arn(conn, job_id, "arn:new")
            assert (row is not None) == (status in WITH_WORKER), status
            assert _status(conn, job_id) == status


def test_given_every_state_long_ago_when_the_sweeper_fails_lost_jobs_then_only_lost_workers_fail(
    db: dbm.Database,
) -> None:
    with db.connection() as conn:
        jobs = {_job_in(conn, status, task, age_seconds=7200): (status, task) for status, task in STATES}
        failed = {
            str(r["id"])
            for r in jobs_repo.fail_lost(conn, 3600, 100, None, ErrorCode.TIMEOUT, "lost")
            if str(r["id"]) in jobs
        }
        for job_id, (status, task) in jobs.items():
            lost = status is JobStatus.RUNNING or (status is JobStatus.DISPATCHED and task is not None)
            assert (job_id in failed) == lost, (status, task)
            assert not lost or status in TRANSITIONS[JobStatus.FAILED]
            assert _status(conn, job_id) == (JobStatus.FAILED if lost else status)


def _upload_in(conn: Any, user_id: str, status: UploadStatus) -> str:
    upload = insert_upload(conn, user_id)
    conn.execute("UPDATE uploads SET status = %s WHERE id = %s", (status.value, upload["id"]))
    return str(upload["id"])


@pytest.mark.parametrize(
    ("target", "call", "allowed"),
    [
        (
            UploadStatus.UPLOADED,
            lambda conn, upload_id: uploads_repo.mark_uploaded(conn, upload_id, 10),
            UPLOAD_TRANSITIONS[UploadStatus.UPLOADED],
        ),
        (
            UploadStatus.UPLOADED,
            lambda conn, upload_id: uploads_repo.mark_uploaded(
                conn, upload_id, 10, from_statuses=[UploadStatus.PENDING]
            ),
            frozenset({UploadStatus.PENDING}),
        ),
        (UploadStatus.EXPIRED, uploads_repo.expire, UPLOAD_TRANSITIONS[UploadStatus.EXPIRED]),
        (UploadStatus.ABORTED, uploads_repo.abort, UPLOAD_TRANSITIONS[UploadStatus.ABORTED]),
    ],
)
def test_given_every_upload_status_when_changed_then_exactly_the_allowed_sources_move(
    db: dbm.Database,
    target: UploadStatus,
    call: Callable[[Any, str], dict[str, Any] | None],
    allowed: frozenset[UploadStatus],
) -> None:
    with db.connection() as conn:
        user_id = insert_user(conn)
        for source in UploadStatus:
            upload_id = _upload_in(conn, user_id, source)
            row = call(conn, upload_id)
            assert (row is not None) == (source in allowed), f"{source} -> {target}"
            stored = uploads_repo.get(conn, upload_id)
            assert stored is not None and stored["status"] == (target if row is not None else source)
