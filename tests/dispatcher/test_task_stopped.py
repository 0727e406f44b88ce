"""The task-stopped path: an ECS "Task State Change" (STOPPED) event fails a non-terminal job
with the stop reason; events about other tasks or finished jobs change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.dispatcher import handler
from runtime.dispatcher.core import StoppedTask, task_stopped
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import ErrorCode, JobStatus
from tests.dispatcher.conftest import body_for, cluster_tasks, get_job, stopped_event


@pytest.fixture()
def dispatched(lambda_env: Any, ecs: Any, ecs_settings: Any, make_job: Any, queue: Any) -> tuple[dict, dict]:
    """A job dispatched through the SQS handler, and its moto task as ECS describes it."""
    job = make_job()
    queue.send(body_for(job))
    assert handler.handle_sqs(queue.event(queue.receive(expect=1)), None) == {"batchItemFailures": []}
    [task] = cluster_tasks(ecs, ecs_settings)
    return job, task


def test_given_a_running_job_when_its_task_stops_out_of_memory_then_the_job_fails_out_of_memory(
    dispatched: tuple[dict, dict], db: dbm.Database
) -> None:
    job, task = dispatched
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING)
    event = stopped_event(
        task,
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        containers=[
            {
                "name": "worker",
                "lastStatus": "STOPPED",
                "exitCode": 137,
                "reason": "OutOfMemoryError: Container killed due to memory usage",
            }
        ],
    )

    result = handler.handle_task_state_change(event, None)

    assert result == {"failed": True, "job_id": str(job["id"])}
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.OUT_OF_MEMORY)
    assert "ran out of memory" in stored["error_message"]
    assert "OutOfMemoryError" in stored["error_message"]


@pytest.mark.parametrize(
    ("detail", "code", "phrase"),
    [
        (
            {
                "stopCode": "TaskFailedToStart",
                "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
            },
            ErrorCode.TASK_STOPPED,
            "image could not be pulled",
        ),
        (
            {
                "stopCode": "TaskFailedToStart",
                "stoppedReason": "ResourceInitializationError: unable to pull secrets or registry auth",
            },
            ErrorCode.TASK_STOPPED,
            "could not be initialised",
        ),
        (
            {
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "worker", "lastStatus": "STOPPED", "exitCode": 2}],
            },
            ErrorCode.TASK_STOPPED,
            "exited with code 2",
        ),
        (
            {"stopCode": "SpotInterruption", "stoppedReason": "Your Spot Task was interrupted."},
            ErrorCode.TASK_STOPPED,
            "Spot",
        ),
    ],
    ids=["image-pull", "resource-init", "exit-code", "spot"],
)
def test_given_a_dispatched_job_when_its_task_stops_early_then_the_job_fails_with_the_reason(
    dispatched: tuple[dict, dict], db: dbm.Database, detail: dict, code: ErrorCode, phrase: str
) -> None:
    job, task = dispatched

    handler.handle_task_state_change(stopped_event(task, **detail), None)

    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, code)
    assert phrase in stored["error_message"]


def test_given_a_task_whose_arn_was_never_recorded_when_it_stops_then_its_job_is_found_by_the_override(
    dispatched: tuple[dict, dict], db: dbm.Database
) -> None:
    job, task = dispatched
    with db.connection() as conn:  # the dispatcher died between RunTask and recording the ARN
        conn.execute("UPDATE jobs SET task_arn = NULL WHERE id = %s", (job["id"],))

    result = handler.handle_task_state_change(
        stopped_event(task, stopCode="TaskFailedToStart", stoppedReason="CannotPullContainerError: denied"), None
    )

    assert result["failed"] is True
    assert get_job(db, job["id"])["status"] == JobStatus.FAILED


def test_given_a_finished_job_or_another_tasks_job_when_a_task_stops_then_nothing_changes(
    dispatched: tuple[dict, dict], db: dbm.Database, make_job: Any
) -> None:
    job, task = dispatched
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(job["id"]), JobStatus.SUCCEEDED)
    stopped = {"stopCode": "EssentialContainerExited", "containers": [{"name": "worker", "exitCode": 0}]}
    other = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(other["id"]), JobStatus.DISPATCHED)
        jobs_repo.set_task_arn(conn, str(other["id"]), "arn:aws:ecs:us-east-1:1:task/c/newer")
    # An old task of `other` (e.g. before a retry) stops late: the job's current task is another one.
    old_task = {**task, "taskArn": "arn:aws:ecs:us-east-1:1:task/c/older"}
    old_task["overrides"] = {"containerOverrides": [{"name": "worker", "environment": [
        {"name": "JOB_ID", "value": str(other["id"])}
    ]}]}  # fmt: skip

    first = handler.handle_task_state_change(stopped_event(task, **stopped), None)
    second = handler.handle_task_state_change(stopped_event(old_task, **stopped), None)
    running = handler.handle_task_state_change(
        {"detail-type": "ECS Task State Change", "detail": {**stopped_event(task)["detail"], "lastStatus": "RUNNING"}},
        None,
    )

    assert first["failed"] is False and second["failed"] is False and running["failed"] is False
    assert get_job(db, job["id"])["status"] == JobStatus.SUCCEEDED
    assert get_job(db, other["id"])["status"] == JobStatus.DISPATCHED


def test_given_a_task_of_something_else_when_it_stops_then_it_is_ignored(db: dbm.Database) -> None:
    stopped = StoppedTask.from_ecs_event(
        {"taskArn": "arn:aws:ecs:us-east-1:1:task/c/x", "lastStatus": "STOPPED", "overrides": {}, "containers": []}
    )

    assert stopped.job_id is None
    assert task_stopped(db, stopped) is None
