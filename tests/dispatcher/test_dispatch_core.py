"""core.dispatch against ECS errors and races: botocore's Stubber on a real ECS client for the
answers moto never gives (throttling, a RunTask `failures` list), moto ECS otherwise."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from runtime.dispatcher.core import Outcome, dispatch
from runtime.dispatcher.launchers import EcsConfig, EcsLauncher, LaunchRequest
from runtime.local.launcher import LocalProcessLauncher
from runtime.shared import aws
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import JobStatus
from tests.dispatcher.conftest import body_for, cluster_tasks, get_job


@pytest.fixture()
def stubbed(ecs_settings: Any) -> Iterator[tuple[EcsLauncher, Stubber]]:
    """An EcsLauncher on its own real client whose answers the test scripts."""
    ecs_client = boto3.session.Session().client(
        "ecs", region_name="us-east-1", endpoint_url=ecs_settings.aws_endpoint_url, config=aws._CONFIG
    )
    with Stubber(ecs_client) as stubber:
        yield EcsLauncher(EcsConfig.from_settings(ecs_settings), ecs_client), stubber
        stubber.assert_no_pending_responses()


def task_arn(job: dict[str, Any]) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task/c/{str(job['id']).replace('-', '')}"


def test_given_runtask_throttled_when_dispatched_then_claim_is_released_and_a_redelivery_starts_the_task(
    stubbed: tuple[EcsLauncher, Stubber], db: dbm.Database, make_job: Any
) -> None:
    launcher, stubber = stubbed
    job = make_job()
    stubber.add_client_error("run_task", service_error_code="ThrottlingException", service_message="Rate exceeded")
    stubber.add_response("run_task", {"tasks": [{"taskArn": task_arn(job)}], "failures": []}, {**_any_params()})

    first = dispatch(db, launcher, body_for(job), message_id="m-1")
    after_first = get_job(db, job["id"])
    second = dispatch(db, launcher, body_for(job), message_id="m-1")

    assert first is Outcome.RELEASED and first.retry
    assert (after_first["status"], after_first["task_arn"], after_first["dispatch_count"]) == (
        JobStatus.QUEUED,
        None,
        1,
    )
    assert second is Outcome.LAUNCHED and not second.retry
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"], stored["dispatch_count"]) == (JobStatus.DISPATCHED, task_arn(job), 2)


def test_given_runtask_answers_with_failures_when_dispatched_then_claim_is_released(
    stubbed: tuple[EcsLauncher, Stubber], db: dbm.Database, make_job: Any
) -> None:
    launcher, stubber = stubbed
    job = make_job()
    stubber.add_response(
        "run_task",
        {"tasks": [], "failures": [{"arn": "arn:aws:ecs:us-east-1:1:cluster/c", "reason": "Capacity is unavailable"}]},
        _any_params(),
    )

    outcome = dispatch(db, launcher, body_for(job))

    assert outcome is Outcome.RELEASED
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"], stored["dispatched_at"]) == (JobStatus.QUEUED, None, None)


def test_given_a_spot_capacity_provider_when_launching_then_runtask_uses_the_strategy_not_a_launch_type(
    ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any
) -> None:
    config = EcsConfig.from_settings(ecs_settings)
    spot = EcsLauncher(EcsConfig(**{**config.__dict__, "capacity_provider": "FARGATE_SPOT"}), ecs)
    job = make_job()

    params = spot.run_task_params(LaunchRequest(job_id=str(job["id"]), user_id=str(job["user_id"]), attempt=3))
    outcome = dispatch(db, spot, body_for(job))

    assert "launchType" not in params
    assert params["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert params["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert params["clientToken"] == f"{job['id']}-3"
    assert outcome is Outcome.LAUNCHED
    [task] = cluster_tasks(ecs, ecs_settings)
    assert task["capacityProviderName"] == "FARGATE_SPOT"


def test_given_a_claim_abandoned_before_runtask_when_redelivered_then_it_is_reclaimed_with_the_same_client_token(
    stubbed: tuple[EcsLauncher, Stubber], db: dbm.Database, make_job: Any
) -> None:
    launcher, stubber = stubbed
    job = make_job()
    with db.connection() as conn:
        # A dispatcher claimed the job, then its Lambda timed out before RunTask returned.
        jobs_repo.transition(conn, str(job["id"]), JobStatus.DISPATCHED)
        conn.execute("UPDATE jobs SET dispatched_at = now() - interval '20 minutes' WHERE id = %s", (job["id"],))
    stubber.add_response(
        "run_task",
        {"tasks": [{"taskArn": task_arn(job)}], "failures": []},
        {**_any_params(), "clientToken": f"{job['id']}-1"},  # the dead claim's token: ECS dedups
    )

    outcome = dispatch(db, launcher, body_for(job), claim_timeout_seconds=900)

    assert outcome is Outcome.LAUNCHED
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"], stored["dispatch_count"]) == (JobStatus.DISPATCHED, task_arn(job), 1)


def test_given_a_fresh_claim_without_task_when_redelivered_then_nothing_starts_and_the_record_is_retried(
    stubbed: tuple[EcsLauncher, Stubber], db: dbm.Database, make_job: Any
) -> None:
    launcher, _ = stubbed  # no response scripted: any RunTask call would fail the test
    job = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.DISPATCHED)

    outcome = dispatch(db, launcher, body_for(job), claim_timeout_seconds=900)

    assert outcome is Outcome.CLAIM_IN_FLIGHT and outcome.retry
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"]) == (JobStatus.DISPATCHED, None)


def test_given_four_concurrent_deliveries_when_dispatched_then_exactly_one_task_starts(
    ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any
) -> None:
    launcher = EcsLauncher(EcsConfig.from_settings(ecs_settings), ecs)
    job = make_job()
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(dispatch(db, launcher, body_for(job)))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes.count(Outcome.LAUNCHED) == 1
    assert set(outcomes) <= {Outcome.LAUNCHED, Outcome.SKIPPED, Outcome.CLAIM_IN_FLIGHT}
    assert len(cluster_tasks(ecs, ecs_settings)) == 1


class CancellingLauncher(LocalProcessLauncher):
    """The real local launcher, with the user's cancel landing while the worker starts."""

    db: dbm.Database | None = None

    def launch(self, request: LaunchRequest) -> str:
        assert self.db is not None
        with self.db.connection() as conn:
            jobs_repo.transition(conn, request.job_id, JobStatus.CANCELLED)
        return super().launch(request)


def test_given_the_job_cancelled_while_its_worker_starts_when_dispatched_then_the_worker_is_stopped(
    db: dbm.Database, make_job: Any
) -> None:
    launcher = CancellingLauncher(max_workers=1, command=["sleep", "30"])
    launcher.db = db
    job = make_job()

    outcome = dispatch(db, launcher, body_for(job))
    assert launcher.wait(timeout=10)
    finished = launcher.poll()

    assert outcome is Outcome.SKIPPED
    assert [(f.job_id, f.exit_code) for f in finished] == [(str(job["id"]), -15)]
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"]) == (JobStatus.CANCELLED, None)


def test_given_a_claim_whose_holder_died_when_redelivered_before_and_after_the_timeout_then_one_task_starts(
    ecs: Any, ecs_settings: Any, db: dbm.Database, make_job: Any
) -> None:
    """The claim committed, then the dispatcher died (timeout, outage) before RunTask."""
    launcher = EcsLauncher(EcsConfig.from_settings(ecs_settings), ecs)
    job = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.DISPATCHED)

    assert dispatch(db, launcher, body_for(job), claim_timeout_seconds=3600) is Outcome.CLAIM_IN_FLIGHT
    assert dispatch(db, launcher, body_for(job), claim_timeout_seconds=0) is Outcome.LAUNCHED
    assert dispatch(db, launcher, body_for(job), claim_timeout_seconds=0) is Outcome.SKIPPED
    [task] = cluster_tasks(ecs, ecs_settings)
    assert get_job(db, job["id"])["task_arn"] == task["taskArn"]


def _any_params() -> dict[str, Any]:
    return {
        "cluster": ANY,
        "taskDefinition": ANY,
        "count": 1,
        "networkConfiguration": ANY,
        "overrides": ANY,
        "tags": ANY,
        "startedBy": "transcodex",
        "propagateTags": "TASK_DEFINITION",
        "enableECSManagedTags": True,
        "clientToken": ANY,
        "launchType": "FARGATE",
    }


def test_given_runtask_outcome_unknown_when_dispatched_then_the_claim_is_kept_and_retried_with_the_same_token(
    stubbed: tuple[EcsLauncher, Stubber], db: dbm.Database, make_job: Any
) -> None:
    launcher, stubber = stubbed
    job = make_job()
    stubber.add_client_error(
        "run_task", service_error_code="ServerException", service_message="internal error", http_status_code=500
    )
    stubber.add_response(
        "run_task",
        {"tasks": [{"taskArn": task_arn(job)}], "failures": []},
        {**_any_params(), "clientToken": f"{job['id']}-1"},  # if the first call did start it, ECS returns it
    )

    first = dispatch(db, launcher, body_for(job), claim_timeout_seconds=900)
    after_first = get_job(db, job["id"])
    too_soon = dispatch(db, launcher, body_for(job), claim_timeout_seconds=900)
    stale = dispatch(db, launcher, body_for(job), claim_timeout_seconds=0)

    assert (first, too_soon, stale) == (Outcome.UNCERTAIN, Outcome.CLAIM_IN_FLIGHT, Outcome.LAUNCHED)
    assert (after_first["status"], after_first["task_arn"]) == (JobStatus.DISPATCHED, None)
    stored = get_job(db, job["id"])
    assert (stored["task_arn"], stored["dispatch_count"]) == (task_arn(job), 1)
