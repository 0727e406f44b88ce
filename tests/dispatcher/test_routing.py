"""Routing by work: images, posters and short videos go to the worker Lambda (moto's Invoke),
the rest to a Fargate task sized for them (moto's RunTask); what no size can finish is refused;
a failed Lambda run comes back through the dead-letter queue and fails its job."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from dataclasses import replace
from typing import Any

import pytest

from runtime.dispatcher import handler
from runtime.dispatcher.core import Outcome, dispatch, fail_dead_letter
from runtime.dispatcher.launchers import EcsConfig, EcsLauncher, LambdaLauncher, RoutingLauncher
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.estimate import Bounds, Probe
from runtime.shared.settings import Settings
from runtime.shared.status import ErrorCode, JobStatus
from tests.dispatcher.conftest import body_for, cluster_tasks, get_job
from tests.factories import insert_job, insert_upload, insert_user

pytestmark = pytest.mark.integration

LADDER = {"transcode": [1080, 720, 480, 360]}


@pytest.fixture()
def worker_function(ecs_settings: Settings) -> str:
    """A function named like the deployed worker, on moto (its code never runs: Invoke is async)."""
    # unique per test: the moto server outlives the fixture, and id() of a freed object repeats
    suffix = uuid.uuid4().hex[:12]
    iam = client("iam", ecs_settings)
    role = iam.create_role(RoleName=f"worker-fn-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("h.py", "def handler(event, context):\n    return event\n")
    name = f"worker-{suffix}"
    client("lambda", ecs_settings).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="h.handler", Code={"ZipFile": code.getvalue()}
    )
    return name


@pytest.fixture()
def router(ecs: Any, ecs_settings: Settings, worker_function: str) -> RoutingLauncher:
    fargate = EcsLauncher(EcsConfig.from_settings(ecs_settings), ecs)
    return RoutingLauncher(fargate, LambdaLauncher(worker_function, client("lambda", ecs_settings)))


def _video_job(db: dbm.Database, operations: Any, probe: Probe | None, size: int = 50_000_000) -> dict[str, Any]:
    with db.connection() as conn:
        user = insert_user(conn)
        upload = insert_upload(conn, user, media_type="VIDEO", filename="v.mp4", size_bytes=size, status="UPLOADED")
        return insert_job(
            conn, "VIDEO", operations, user_id=user, upload_id=str(upload["id"]), probe=probe and probe.to_json()
        )


def test_given_image_job_when_dispatched_then_worker_function_is_invoked_and_job_records_lambda(
    db: dbm.Database, router: RoutingLauncher, make_job: Any, ecs: Any, ecs_settings: Settings, worker_function: str
) -> None:
    job = make_job()
    outcome = dispatch(db, router, body_for(job), bounds=Bounds(lambda_function=worker_function), price_class="x86")
    stored = get_job(db, job["id"])
    assert outcome is Outcome.LAUNCHED
    assert stored["task_arn"].startswith("lambda:") and len(stored["task_arn"]) > len("lambda:")
    assert (stored["runner"], stored["task_memory_mib"], stored["task_cpu"], stored["timeout_seconds"]) == (
        "lambda",
        4096,
        None,
        900,
    )
    assert cluster_tasks(ecs, ecs_settings) == []


def test_given_poster_only_and_short_video_when_dispatched_then_both_go_to_the_lambda(
    db: dbm.Database, router: RoutingLauncher, worker_function: str
) -> None:
    poster = _video_job(db, {"poster": 1.0}, None, size=3 * 10**9)
    short = _video_job(db, LADDER, Probe(12, 1920, 1080))
    bounds = Bounds(lambda_function=worker_function)
    for job in (poster, short):
        assert dispatch(db, router, body_for(job), bounds=bounds) is Outcome.LAUNCHED
        assert get_job(db, job["id"])["runner"] == "lambda"


def test_given_long_video_when_dispatched_then_fargate_task_is_sized_and_timed_for_it(
    db: dbm.Database, router: RoutingLauncher, ecs: Any, ecs_settings: Settings, worker_function: str
) -> None:
    job = _video_job(db, LADDER, Probe(20 * 60, 1920, 1080), size=10**9)
    outcome = dispatch(db, router, body_for(job), bounds=Bounds(lambda_function=worker_function), price_class="spot")
    stored = get_job(db, job["id"])
    (task,) = cluster_tasks(ecs, ecs_settings)
    assert outcome is Outcome.LAUNCHED and stored["task_arn"] == task["taskArn"]
    assert (stored["runner"], stored["price_class"]) == ("fargate", "spot")
    assert stored["task_cpu"] > 1024 and stored["task_memory_mib"] == stored["task_cpu"] * 2
    assert (task["overrides"]["cpu"], task["overrides"]["memory"]) == (
        str(stored["task_cpu"]),
        str(stored["task_memory_mib"]),
    )
    env = {e["name"]: e["value"] for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert env["TRANSCODEX_WORKER_TIMEOUT_SECONDS"] == str(stored["timeout_seconds"])
    assert stored["estimated_seconds"] * 1.5 < stored["timeout_seconds"] <= 3600


def test_given_work_no_size_can_finish_when_dispatched_then_refused_failed_and_nothing_started(
    db: dbm.Database, router: RoutingLauncher, ecs: Any, ecs_settings: Settings
) -> None:
    job = _video_job(db, {"transcode": [2160, 1440, 1080]}, Probe(3 * 3600, 3840, 2160))
    outcome = dispatch(db, router, body_for(job), bounds=Bounds())
    stored = get_job(db, job["id"])
    assert outcome is Outcome.REFUSED and not outcome.retry
    assert (stored["status"], stored["error_code"], stored["task_arn"]) == (
        JobStatus.FAILED,
        ErrorCode.WORK_TOO_LARGE,
        None,
    )
    assert "3600-second limit" in stored["error_message"]
    assert cluster_tasks(ecs, ecs_settings) == []


def _destination_record(job: dict[str, Any], request_id: str, error: str, condition: str) -> str:
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-02T05:00:00.000Z",
            "requestContext": {"requestId": request_id, "condition": condition, "approximateInvokeCount": 1},
            "requestPayload": {"job_id": str(job["id"]), "attempt": 1},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": error},
        }
    )


def test_given_lambda_run_timed_out_when_its_failure_record_is_dead_lettered_then_job_fails_timeout(
    db: dbm.Database, router: RoutingLauncher, make_job: Any, worker_function: str
) -> None:
    job = make_job()
    dispatch(db, router, body_for(job), bounds=Bounds(lambda_function=worker_function))
    request_id = get_job(db, job["id"])["task_arn"].removeprefix("lambda:")

    stale = fail_dead_letter(db, _destination_record(job, "another-request", "boom", "RetriesExhausted"))
    failed = fail_dead_letter(
        db, _destination_record(job, request_id, "Task timed out after 900.00 seconds", "RetriesExhausted")
    )
    again = fail_dead_letter(db, _destination_record(job, request_id, "late duplicate", "RetriesExhausted"))

    assert stale is None, "a record about another invocation must not touch the job"
    assert failed is not None and (failed["status"], failed["error_code"]) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    assert again is None


def test_given_lambda_invocation_expired_when_dead_lettered_then_job_fails_dispatch_failed(
    db: dbm.Database, router: RoutingLauncher, make_job: Any, worker_function: str
) -> None:
    job = make_job()
    dispatch(db, router, body_for(job), bounds=Bounds(lambda_function=worker_function))
    request_id = get_job(db, job["id"])["task_arn"].removeprefix("lambda:")
    failed = fail_dead_letter(db, _destination_record(job, request_id, "", "EventAgeExceeded"))
    assert failed is not None and failed["error_code"] == ErrorCode.DISPATCH_FAILED


def test_given_deployed_env_with_worker_function_when_sqs_handler_runs_then_image_job_goes_to_lambda(
    db: dbm.Database, lambda_env: Any, ecs: Any, ecs_settings: Settings, worker_function: str, queue: Any, make_job: Any
) -> None:
    lambda_env(TRANSCODEX_WORKER_FUNCTION=worker_function)
    job = make_job()
    queue.send(body_for(job))
    messages = queue.receive(expect=1)
    response = handler.handle_sqs(queue.event(messages), None)
    assert response == {"batchItemFailures": []}
    assert get_job(db, job["id"])["runner"] == "lambda"
    assert cluster_tasks(ecs, replace(ecs_settings)) == []
