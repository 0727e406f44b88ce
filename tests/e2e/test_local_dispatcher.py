"""The local dispatcher loop on the real PostgreSQL and moto fixtures: startup recovery, the
dead-letter queue, and a worker that dies without recording a result."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.local.dispatch_loop import LocalDispatcher
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.messages import JobMessage, parse_message
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import JobStatus
from tests.factories import insert_job


def make_job(db: dbm.Database) -> str:
    with db.connection() as conn:
        return str(insert_job(conn, "IMAGE", [{"op": "rotate", "angle": 90}])["id"])


def status(db: dbm.Database, job_id: str) -> dict[str, Any]:
    with db.connection() as conn:
        job = jobs_repo.get(conn, job_id)
    assert job is not None
    return job


def drain(sqs: Any, url: str) -> list[str]:
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(parse_message(message["Body"]).job_id)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture()
def dispatcher(settings: Any, tmp_path: Path) -> Any:
    # One process per job: these tests swap the worker's command and environment per job.
    local = LocalDispatcher(settings, concurrency=1, log_path=tmp_path / "workers.log", worker_mode="subprocess")
    try:
        yield local
    finally:
        local.shutdown()


def test_given_jobs_left_in_flight_when_the_platform_restarts_then_queued_ones_are_resent_and_running_ones_fail(
    db: dbm.Database, settings: Any, dispatcher: LocalDispatcher
) -> None:
    queued, claimed, running = make_job(db), make_job(db), make_job(db)
    with db.connection() as conn:
        jobs_repo.transition(conn, claimed, JobStatus.DISPATCHED)
        jobs_repo.transition(conn, running, JobStatus.DISPATCHED)
        jobs_repo.set_task_arn(conn, running, "local:999999999")
        jobs_repo.transition(conn, running, JobStatus.RUNNING)

    counts = dispatcher.recover()

    assert counts == {"requeued": 2, "failed": 1}
    assert sorted(drain(client("sqs", settings), settings.queue_url)) == sorted([queued, claimed])
    assert status(db, claimed)["status"] == "QUEUED"
    failed = status(db, running)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "TASK_STOPPED")
    assert "local platform stopped" in failed["error_message"]


def test_given_a_dead_lettered_message_when_the_loop_runs_then_its_job_fails_with_dispatch_failed(
    db: dbm.Database, settings: Any, dispatcher: LocalDispatcher
) -> None:
    job_id = make_job(db)
    sqs = client("sqs", settings)
    sqs.send_message(QueueUrl=settings.dlq_url, MessageBody=JobMessage(job_id).to_body())

    dispatcher.step(wait_seconds=0)

    job = status(db, job_id)
    assert (job["status"], job["error_code"]) == ("FAILED", "DISPATCH_FAILED")
    assert drain(sqs, settings.dlq_url) == []


def test_given_a_worker_that_exits_without_a_result_when_reaped_then_the_job_fails_and_the_message_is_gone(
    db: dbm.Database, settings: Any, dispatcher: LocalDispatcher, tmp_path: Path
) -> None:
    # The real worker, with no database configured: it starts, cannot configure itself, exits 2.
    dispatcher.launcher.env = {"TRANSCODEX_DATABASE_URL": ""}
    job_id = make_job(db)
    sqs = client("sqs", settings)
    sqs.send_message(QueueUrl=settings.queue_url, MessageBody=JobMessage(job_id).to_body())

    for _ in range(60):
        dispatcher.step(wait_seconds=0)
        if status(db, job_id)["status"] in ("FAILED", "SUCCEEDED"):
            break
        time.sleep(0.25)

    job = status(db, job_id)
    assert (job["status"], job["error_code"]) == ("FAILED", "TASK_STOPPED")
    assert "exited with code" in job["error_message"]
    assert job["task_arn"].startswith("local:")
    assert drain(sqs, settings.queue_url) == []
    assert (tmp_path / "workers.log").stat().st_size > 0, "the worker's output reaches the platform log"


def test_given_one_worker_slot_when_two_jobs_are_queued_then_the_second_waits_for_the_first_to_exit(
    db: dbm.Database, settings: Any, dispatcher: LocalDispatcher
) -> None:
    dispatcher.launcher.command = (sys.executable, "-c", "import time; time.sleep(1.5)")  # a stand-in worker
    first, second = make_job(db), make_job(db)
    sqs = client("sqs", settings)
    for job_id in (first, second):
        sqs.send_message(QueueUrl=settings.queue_url, MessageBody=JobMessage(job_id).to_body())

    seen: list[tuple[str, str]] = []
    for _ in range(40):
        dispatcher.step(wait_seconds=0)
        seen.append((status(db, first)["status"], status(db, second)["status"]))
        if "QUEUED" not in seen[-1] and dispatcher.launcher.running == 0:
            break
        time.sleep(0.1)

    assert all(pair.count("DISPATCHED") <= 1 for pair in seen), seen
    assert ("DISPATCHED", "QUEUED") in seen or ("QUEUED", "DISPATCHED") in seen
    assert {status(db, first)["dispatch_count"], status(db, second)["dispatch_count"]} == {1}
    assert status(db, first)["status"] == status(db, second)["status"] == "FAILED"  # exited without a result
