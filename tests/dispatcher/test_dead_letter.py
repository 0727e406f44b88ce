"""The dead-letter path: a message SQS gave up on leaves its job FAILED (DISPATCH_FAILED)."""

from __future__ import annotations

from typing import Any

from runtime.dispatcher import handler
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import ErrorCode, JobStatus
from tests.dispatcher.conftest import body_for, get_job


def test_given_runtask_failing_every_time_when_sqs_dead_letters_the_message_then_the_job_ends_dispatch_failed(
    lambda_env: Any, ecs: Any, db: dbm.Database, make_job: Any, queue: Any, dlq: Any
) -> None:
    lambda_env(TRANSCODEX_ECS_CLUSTER="cluster-that-was-deleted")
    job = make_job()
    queue.send(body_for(job))
    responses = []
    for _ in range(3):  # the fixture queue's maxReceiveCount
        messages = queue.receive(expect=1)
        response = handler.handle_sqs(queue.event(messages), None)
        queue.settle(messages, response)
        responses.append(response)
    assert all(len(r["batchItemFailures"]) == 1 for r in responses)
    assert get_job(db, job["id"])["status"] == JobStatus.QUEUED  # released each time, never stuck DISPATCHED

    assert queue.receive(expect=1) == []  # the fourth receive moves it to the DLQ
    dead = dlq.receive(expect=1)
    assert [m["Body"] for m in dead] == [body_for(job)]
    response = handler.handle_dlq(dlq.event(dead), None)

    assert response == {"batchItemFailures": []}
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.DISPATCH_FAILED)
    assert "after 3 attempt(s)" in stored["error_message"]
    assert stored["finished_at"] is not None


def test_given_a_claim_left_without_task_when_its_message_is_dead_lettered_then_the_job_fails(
    lambda_env: Any, db: dbm.Database, make_job: Any, dlq: Any
) -> None:
    job = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.DISPATCHED)
    dlq.send(body_for(job))

    response = handler.handle_dlq(dlq.event(dlq.receive(expect=1)), None)

    assert response == {"batchItemFailures": []}
    assert get_job(db, job["id"])["status"] == JobStatus.FAILED


def test_given_dead_letters_for_running_finished_and_malformed_messages_when_handled_then_nothing_changes(
    lambda_env: Any, db: dbm.Database, make_job: Any, dlq: Any
) -> None:
    running, dispatched, done = make_job(), make_job(), make_job()
    with db.connection() as conn:
        for job in (running, dispatched, done):
            jobs_repo.transition(conn, str(job["id"]), JobStatus.DISPATCHED)
            jobs_repo.set_task_arn(conn, str(job["id"]), f"arn:aws:ecs:us-east-1:1:task/c/{job['id']}")
        jobs_repo.transition(conn, str(running["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(done["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(done["id"]), JobStatus.SUCCEEDED)
    dlq.send(body_for(running), body_for(dispatched), body_for(done), "garbage", '{"version": 1}')

    response = handler.handle_dlq(dlq.event(dlq.receive(expect=5)), None)

    assert response == {"batchItemFailures": []}  # malformed ones are logged and dropped
    assert get_job(db, running["id"])["status"] == JobStatus.RUNNING
    assert get_job(db, dispatched["id"])["status"] == JobStatus.DISPATCHED  # its task's events settle it
    assert get_job(db, done["id"])["status"] == JobStatus.SUCCEEDED
