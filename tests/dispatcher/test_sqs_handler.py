"""handle_sqs end to end: real SQS events from the moto queue, moto ECS, real PostgreSQL."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

from runtime.dispatcher import handler
from runtime.local.launcher import LocalProcessLauncher
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import JobStatus
from tests.dispatcher.conftest import body_for, cluster_tasks, get_job


def test_given_a_queued_job_when_its_message_is_handled_then_one_fargate_task_carries_the_job(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    job = make_job()
    queue.send(body_for(job))
    messages = queue.receive(expect=1)

    response = handler.handle_sqs(queue.event(messages), None)
    queue.settle(messages, response)

    assert response == {"batchItemFailures": []}
    stored = get_job(db, job["id"])
    assert stored["status"] == JobStatus.DISPATCHED
    assert stored["dispatch_count"] == 1
    [task] = cluster_tasks(ecs, ecs_settings)
    assert stored["task_arn"] == task["taskArn"]
    assert task["launchType"] == "FARGATE"
    assert task["startedBy"] == "transcodex"
    [override] = task["overrides"]["containerOverrides"]
    assert override["name"] == "worker"
    assert {"name": "JOB_ID", "value": str(job["id"])} in override["environment"]
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags == {"job-id": str(job["id"]), "user-id": str(job["user_id"])}
    assert queue.depth() == 0


def test_given_one_message_delivered_three_times_when_each_delivery_is_handled_then_one_task_starts(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    job = make_job()
    queue.send(body_for(job))
    responses = []
    receive_counts = []
    for _ in range(3):
        [message] = queue.receive(expect=1)
        receive_counts.append(message["Attributes"]["ApproximateReceiveCount"])
        responses.append(handler.handle_sqs(queue.event([message]), None))
        # At-least-once: the same message comes back as if the delete had been lost.
        queue.sqs.change_message_visibility(
            QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )

    assert receive_counts == ["1", "2", "3"]
    assert responses == [{"batchItemFailures": []}] * 3
    assert len(cluster_tasks(ecs, ecs_settings)) == 1
    stored = get_job(db, job["id"])
    assert stored["status"] == JobStatus.DISPATCHED
    assert stored["dispatch_count"] == 1


def test_given_the_same_message_three_times_in_one_batch_when_handled_then_one_task_starts(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    job = make_job()
    queue.send(body_for(job), body_for(job), body_for(job))  # a producer retry sent it three times
    messages = queue.receive(expect=3)
    assert len(messages) == 3

    response = handler.handle_sqs(queue.event(messages), None)

    assert response == {"batchItemFailures": []}
    [task] = cluster_tasks(ecs, ecs_settings)
    assert get_job(db, job["id"])["task_arn"] == task["taskArn"]


def test_given_a_malformed_message_among_good_ones_when_handled_then_only_it_is_reported_failed(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    first, second = make_job(), make_job()
    queue.send(body_for(first))
    [bad_id] = queue.send("{not json")
    queue.send(body_for(second))
    queue.send('{"version": 99, "job_id": "x"}')
    messages = queue.receive(expect=4)
    bad_ids = {m["MessageId"] for m in messages if m["Body"] != body_for(first) and m["Body"] != body_for(second)}
    assert bad_id in bad_ids and len(bad_ids) == 2

    response = handler.handle_sqs(queue.event(messages), None)

    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == bad_ids
    assert len(cluster_tasks(ecs, ecs_settings)) == 2
    assert get_job(db, first["id"])["status"] == JobStatus.DISPATCHED
    assert get_job(db, second["id"])["status"] == JobStatus.DISPATCHED


def test_given_a_cancelled_job_and_a_missing_job_when_handled_then_nothing_starts_and_both_are_acknowledged(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    cancelled = make_job()
    with db.connection() as conn:
        assert jobs_repo.transition(conn, str(cancelled["id"]), JobStatus.CANCELLED) is not None
    queue.send(body_for(cancelled), '{"version": 1, "job_id": "00000000-0000-4000-8000-000000000000"}')
    messages = queue.receive(expect=2)

    response = handler.handle_sqs(queue.event(messages), None)
    queue.settle(messages, response)

    assert response == {"batchItemFailures": []}
    assert cluster_tasks(ecs, ecs_settings) == []
    stored = get_job(db, cancelled["id"])
    assert stored["status"] == JobStatus.CANCELLED
    assert stored["dispatch_count"] == 0
    assert queue.depth() == 0


def test_given_a_missing_cluster_when_handled_then_the_claim_is_released_and_the_record_retried(
    lambda_env: Any, ecs: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    lambda_env(TRANSCODEX_ECS_CLUSTER="no-such-cluster")  # RunTask answers with a real ClientError
    job = make_job()
    [message_id] = queue.send(body_for(job))
    messages = queue.receive(expect=1)

    response = handler.handle_sqs(queue.event(messages), None)

    assert response == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    stored = get_job(db, job["id"])
    assert stored["status"] == JobStatus.QUEUED
    assert stored["task_arn"] is None and stored["dispatched_at"] is None
    assert stored["dispatch_count"] == 1


def test_given_a_batch_larger_than_free_capacity_when_handled_then_only_the_overflow_is_retried(
    lambda_env: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    launcher = LocalProcessLauncher(max_workers=1, command=["sleep", "30"])
    handler.service("dispatcher").launcher = launcher
    jobs = [make_job(), make_job()]
    queue.send(*(body_for(j) for j in jobs))
    messages = queue.receive(expect=2)
    try:
        response = handler.handle_sqs(queue.event(messages), None)
        # The second message of the batch found no free slot: only it goes back to the queue.
        [launched_job_id] = launcher.running_jobs().values()
    finally:
        launcher.shutdown(grace_seconds=1)

    by_job = {m["Body"]: m["MessageId"] for m in messages}
    waiting = next(j for j in jobs if str(j["id"]) != launched_job_id)
    assert response == {"batchItemFailures": [{"itemIdentifier": by_job[body_for(waiting)]}]}
    assert get_job(db, launched_job_id)["task_arn"].startswith("local:")
    stored = get_job(db, waiting["id"])
    assert (stored["status"], stored["dispatch_count"]) == (JobStatus.QUEUED, 1)


def test_given_the_invocation_running_out_of_time_when_handled_then_later_records_are_handed_back_unclaimed(
    lambda_env: Any, ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any, queue: Any
) -> None:
    first, second = make_job(), make_job()
    queue.send(body_for(first), body_for(second))
    messages = queue.receive(expect=2)
    # The Lambda context object: 60 s at the start and for the first record, then 10 s left.
    clock = itertools.chain([60_000, 60_000], itertools.repeat(10_000))
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: next(clock))

    response = handler.handle_sqs(queue.event(messages), context)

    by_body = {m["Body"]: m["MessageId"] for m in messages}
    late, early = (second, first) if messages[0]["Body"] == body_for(first) else (first, second)
    assert response == {"batchItemFailures": [{"itemIdentifier": by_body[body_for(late)]}]}
    assert get_job(db, early["id"])["status"] == JobStatus.DISPATCHED
    stored = get_job(db, late["id"])
    assert (stored["status"], stored["dispatch_count"]) == (JobStatus.QUEUED, 0)
    assert len(cluster_tasks(ecs, ecs_settings)) == 1
