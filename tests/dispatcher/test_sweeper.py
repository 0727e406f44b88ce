"""The sweeper on the real PostgreSQL and moto: stale QUEUED jobs get their message again, lost
workers end FAILED (TIMEOUT), stale PENDING uploads end UPLOADED or EXPIRED by a HEAD of the
object; fresh jobs and uploads, and a database with nothing to do, are left alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runtime.dispatcher import handler
from runtime.dispatcher.sweeper import SweepConfig, s3_delete_input, s3_object_size, sweep
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.messages import parse_message
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.settings import ConfigError, Settings
from runtime.shared.sqs import SqsQueue
from runtime.shared.status import ErrorCode, JobStatus
from tests.dispatcher.conftest import get_job
from tests.factories import insert_upload, insert_user

CONFIG = SweepConfig(
    requeue_after_seconds=600,
    worker_timeout_seconds=3600,
    running_grace_seconds=600,
    upload_url_ttl_seconds=3600,
    upload_grace_seconds=900,
    batch_limit=100,
)


def backdate(db: dbm.Database, table: str, row_id: Any, **ages: timedelta) -> None:
    """Move timestamp columns of one row into the past (``updated_at=timedelta(minutes=11)``)."""
    assignments = ", ".join(f"{column} = now() - %s" for column in ages)
    with db.connection() as conn:
        conn.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", (*ages.values(), row_id))


class Recorder:
    """The sweeper's AWS side, recording every call and passing it on to moto."""

    def __init__(self, settings: Settings) -> None:
        self.sqs = client("sqs", settings)
        self.s3 = client("s3", settings)
        self.sent: list[str] = []
        self.heads: list[str] = []
        self._send = SqsQueue(self.sqs, settings.queue_url).send
        self._size = s3_object_size(self.s3, settings.input_bucket)

    def send_job(self, body: str) -> None:
        self.sent.append(parse_message(body).job_id)
        self._send(body)

    def object_size(self, key: str) -> int | None:
        self.heads.append(key)
        return self._size(key)

    def sweep(self, db: dbm.Database, config: SweepConfig = CONFIG, **kwargs: Any) -> Any:
        return sweep(db, config, send_job=self.send_job, object_size=self.object_size, **kwargs)


@pytest.fixture()
def aws(settings: Settings) -> Recorder:
    return Recorder(settings)


@pytest.fixture()
def user_id(db: dbm.Database) -> str:
    with db.connection() as conn:
        return insert_user(conn)


def queued_ids(queue: Any) -> list[str]:
    return sorted(parse_message(m["Body"]).job_id for m in queue.receive(expect=10))


# --- nothing to do -------------------------------------------------------------------------------


def test_given_an_empty_database_when_swept_then_nothing_changes_and_nothing_is_sent(
    db: dbm.Database, aws: Recorder, queue: Any
) -> None:
    report = aws.sweep(db)

    assert report.as_dict() == {
        "requeued": 0,
        "timed_out": 0,
        "uploads_completed": 0,
        "uploads_expired": 0,
        "oversized_deleted": 0,
        "media_objects_deleted": 0,
        "media_deletions_finished": 0,
        "errors": 0,
    }
    assert (aws.sent, aws.heads) == ([], [])
    assert queue.depth() == 0


def test_given_fresh_jobs_and_uploads_when_swept_then_they_are_left_alone(
    db: dbm.Database, aws: Recorder, queue: Any, make_job: Callable[[], dict], user_id: str
) -> None:
    queued = make_job()
    running = make_job()
    dispatched = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(running["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(dispatched["id"]), JobStatus.DISPATCHED)
        jobs_repo.set_task_arn(conn, str(dispatched["id"]), "arn:aws:ecs:us-east-1:123456789012:task/c/abc")
        upload = insert_upload(conn, user_id)
    # Old, but not old enough: RUNNING past the wall time yet inside the grace period,
    # QUEUED just under the requeue threshold, PENDING within URL lifetime + grace.
    backdate(db, "jobs", running["id"], started_at=timedelta(seconds=3600 + 500))
    backdate(db, "jobs", queued["id"], updated_at=timedelta(seconds=500))
    backdate(db, "uploads", upload["id"], created_at=timedelta(seconds=3600 + 800))
    before = {j["id"]: get_job(db, j["id"]) for j in (queued, running, dispatched)}

    report = aws.sweep(db)

    assert report.changed == 0 and report.errors == 0
    assert (aws.sent, aws.heads) == ([], [])
    assert {job_id: get_job(db, job_id) for job_id in before} == before
    with db.connection() as conn:
        assert uploads_repo.get(conn, str(upload["id"]))["status"] == "PENDING"
    assert queue.depth() == 0


# --- (a) QUEUED with no message --------------------------------------------------------------------


def test_given_a_job_queued_too_long_when_swept_then_its_message_is_sent_once_and_it_dispatches(
    db: dbm.Database, aws: Recorder, queue: Any, make_job: Callable[[], dict]
) -> None:
    stale = make_job()
    fresh = make_job()
    backdate(db, "jobs", stale["id"], updated_at=timedelta(minutes=11))

    report = aws.sweep(db)
    again = aws.sweep(db)  # the interval restarts: no second message at the next run

    assert report.requeued == [str(stale["id"])]
    assert again.changed == 0
    assert queued_ids(queue) == [str(stale["id"])]
    stored = get_job(db, stale["id"])
    assert stored["status"] == JobStatus.QUEUED
    assert stored["dispatch_count"] == 0
    assert get_job(db, fresh["id"])["updated_at"] == fresh["updated_at"]


def test_given_a_resent_message_when_the_dispatcher_handles_it_then_the_job_is_dispatched(
    lambda_env: Any, ecs: Any, db: dbm.Database, aws: Recorder, queue: Any, make_job: Callable[[], dict]
) -> None:
    job = make_job()
    backdate(db, "jobs", job["id"], updated_at=timedelta(hours=2))
    aws.sweep(db)

    messages = queue.receive(expect=1)
    response = handler.handle_sqs(queue.event(messages), None)

    assert response == {"batchItemFailures": []}
    assert get_job(db, job["id"])["status"] == JobStatus.DISPATCHED


def test_given_more_stale_jobs_than_the_limit_when_swept_then_each_run_sends_at_most_the_limit(
    db: dbm.Database, aws: Recorder, make_job: Callable[[], dict]
) -> None:
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        backdate(db, "jobs", job["id"], updated_at=timedelta(hours=1))
    config = SweepConfig(**{**CONFIG.__dict__, "batch_limit": 2})

    first = aws.sweep(db, config)
    second = aws.sweep(db, config)

    assert (len(first.requeued), len(second.requeued)) == (2, 1)
    assert sorted(aws.sent) == sorted(str(j["id"]) for j in jobs)


def test_given_the_queue_refuses_when_swept_then_the_error_is_counted_and_the_job_stays_queued(
    db: dbm.Database, make_job: Callable[[], dict]
) -> None:
    job = make_job()
    backdate(db, "jobs", job["id"], updated_at=timedelta(hours=1))

    def refuse(body: str) -> None:
        raise RuntimeError("queue unavailable")

    report = sweep(db, CONFIG, send_job=refuse, object_size=lambda key: None)

    assert (report.requeued, report.errors) == ([], 1)
    assert get_job(db, job["id"])["status"] == JobStatus.QUEUED


def test_given_now_in_the_future_when_swept_then_thresholds_count_from_it(
    db: dbm.Database, aws: Recorder, make_job: Callable[[], dict]
) -> None:
    job = make_job()

    report = aws.sweep(db, now=datetime.now(UTC) + timedelta(minutes=30))

    assert report.requeued == [str(job["id"])]


# --- (b) lost workers ------------------------------------------------------------------------------


def test_given_jobs_running_past_the_wall_time_and_grace_when_swept_then_they_fail_with_timeout(
    db: dbm.Database, aws: Recorder, make_job: Callable[[], dict]
) -> None:
    running = make_job()
    dispatched = make_job()
    claimed = make_job()  # DISPATCHED without a task: the claim-timeout path owns it, not the sweeper
    task = "arn:aws:ecs:us-east-1:123456789012:task/c/lost"
    with db.connection() as conn:
        jobs_repo.transition(conn, str(running["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(dispatched["id"]), JobStatus.DISPATCHED)
        jobs_repo.set_task_arn(conn, str(dispatched["id"]), task)
        jobs_repo.transition(conn, str(claimed["id"]), JobStatus.DISPATCHED)
    lost = timedelta(seconds=3600 + 600 + 60)
    backdate(db, "jobs", running["id"], started_at=lost, updated_at=timedelta(minutes=1))
    backdate(db, "jobs", dispatched["id"], dispatched_at=lost)
    backdate(db, "jobs", claimed["id"], dispatched_at=lost)

    report = aws.sweep(db)

    assert sorted(report.timed_out) == sorted([str(running["id"]), str(dispatched["id"])])
    for job_id in (running["id"], dispatched["id"]):
        stored = get_job(db, job_id)
        assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
        assert "3600-second" in stored["error_message"]
        assert "Submit the job again" in stored["error_message"]
        assert stored["finished_at"] is not None
    assert get_job(db, dispatched["id"])["task_arn"] == task
    assert get_job(db, claimed["id"])["status"] == JobStatus.DISPATCHED
    assert aws.sent == []


def test_given_a_timed_out_job_that_finished_meanwhile_when_swept_then_the_result_is_kept(
    db: dbm.Database, aws: Recorder, make_job: Callable[[], dict]
) -> None:
    job = make_job()
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING)
    backdate(db, "jobs", job["id"], started_at=timedelta(hours=3))
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.SUCCEEDED)

    report = aws.sweep(db)

    assert report.timed_out == []
    assert get_job(db, job["id"])["status"] == JobStatus.SUCCEEDED


# --- (c) stale uploads -----------------------------------------------------------------------------


def test_given_stale_pending_uploads_when_swept_then_present_objects_are_uploaded_and_missing_expired(
    db: dbm.Database, aws: Recorder, settings: Settings, user_id: str
) -> None:
    with db.connection() as conn:
        present = insert_upload(conn, user_id)
        missing = insert_upload(conn, user_id)
        fresh = insert_upload(conn, user_id)
        done = insert_upload(conn, user_id, status="UPLOADED")
    aws.s3.put_object(Bucket=settings.input_bucket, Key=present["object_key"], Body=b"x" * 1234)
    old = timedelta(seconds=3600 + 900 + 60)
    for upload in (present, missing, done):
        backdate(db, "uploads", upload["id"], created_at=old)

    report = aws.sweep(db)
    again = aws.sweep(db)

    assert report.uploads_completed == [str(present["id"])]
    assert report.uploads_expired == [str(missing["id"])]
    assert again.changed == 0
    assert sorted(aws.heads) == sorted([present["object_key"], missing["object_key"]])
    with db.connection() as conn:
        stored = {u["id"]: uploads_repo.get(conn, str(u["id"])) for u in (present, missing, fresh, done)}
    assert stored[present["id"]]["status"] == "UPLOADED"
    assert stored[present["id"]]["size_bytes"] == 1234
    assert stored[present["id"]]["completed_at"] is not None
    assert stored[missing["id"]]["status"] == "EXPIRED"
    assert stored[fresh["id"]]["status"] == "PENDING"
    assert (stored[done["id"]]["status"], stored[done["id"]]["size_bytes"]) == ("UPLOADED", done["size_bytes"])


def test_given_a_stale_upload_over_the_input_limit_when_swept_then_its_object_is_deleted_and_it_expires(
    db: dbm.Database, aws: Recorder, settings: Settings, user_id: str
) -> None:
    with db.connection() as conn:
        big = insert_upload(conn, user_id)
        small = insert_upload(conn, user_id)
    # an unsized presigned PUT is not bounded by S3: 5000 bytes where 1000 are allowed
    aws.s3.put_object(Bucket=settings.input_bucket, Key=big["object_key"], Body=b"x" * 5000)
    aws.s3.put_object(Bucket=settings.input_bucket, Key=small["object_key"], Body=b"x" * 1000)
    for upload in (big, small):
        backdate(db, "uploads", upload["id"], created_at=timedelta(days=1))
    config = replace(CONFIG, max_input_bytes=1000)

    report = aws.sweep(db, config, delete_input=s3_delete_input(aws.s3, settings.input_bucket))

    assert report.oversized_deleted == [str(big["id"])] and report.uploads_expired == [str(big["id"])]
    assert report.uploads_completed == [str(small["id"])]
    assert aws._size(big["object_key"]) is None and aws._size(small["object_key"]) == 1000
    with db.connection() as conn:
        assert uploads_repo.get(conn, str(big["id"]))["status"] == "EXPIRED"


def test_given_s3_errors_when_swept_then_the_upload_stays_pending_for_a_later_run(
    db: dbm.Database, user_id: str
) -> None:
    with db.connection() as conn:
        upload = insert_upload(conn, user_id)
    backdate(db, "uploads", upload["id"], created_at=timedelta(days=1))

    def broken(key: str) -> int | None:
        raise RuntimeError("403 Forbidden")

    report = sweep(db, CONFIG, send_job=lambda body: None, object_size=broken)

    assert (report.changed, report.errors) == (0, 1)
    with db.connection() as conn:
        assert uploads_repo.get(conn, str(upload["id"]))["status"] == "PENDING"


def test_given_failing_checks_filling_a_batch_when_swept_again_then_the_other_uploads_are_settled(
    db: dbm.Database, user_id: str
) -> None:
    with db.connection() as conn:
        failing = insert_upload(conn, user_id)
        healthy = insert_upload(conn, user_id)
    backdate(db, "uploads", failing["id"], created_at=timedelta(days=2))  # the oldest: first in line
    backdate(db, "uploads", healthy["id"], created_at=timedelta(days=1))

    def size(key: str) -> int | None:
        if key == failing["object_key"]:
            raise RuntimeError("503 Slow Down")
        return None

    one = replace(CONFIG, batch_limit=1)
    first = sweep(db, one, send_job=lambda body: None, object_size=size)
    second = sweep(db, one, send_job=lambda body: None, object_size=size)

    assert (first.errors, first.uploads_expired) == (1, [])
    assert (second.errors, second.uploads_expired) == (0, [str(healthy["id"])])
    with db.connection() as conn:
        assert uploads_repo.get(conn, str(failing["id"]))["status"] == "PENDING"


# --- the Lambda handler and its configuration ---------------------------------------------------------


def test_given_the_scheduled_event_when_handle_sweep_then_it_sweeps_with_the_environment(
    lambda_env: Callable[..., None],
    settings: Settings,
    db: dbm.Database,
    queue: Any,
    make_job: Callable[[], dict],
    user_id: str,
) -> None:
    lambda_env(
        TRANSCODEX_QUEUE_URL=settings.queue_url,
        TRANSCODEX_INPUT_BUCKET=settings.input_bucket,
        TRANSCODEX_SWEEP_REQUEUE_AFTER_SECONDS="120",
        TRANSCODEX_SWEEP_UPLOAD_URL_TTL_SECONDS="60",
        TRANSCODEX_SWEEP_UPLOAD_GRACE_SECONDS="0",
    )
    job = make_job()
    backdate(db, "jobs", job["id"], updated_at=timedelta(seconds=180))
    with db.connection() as conn:
        upload = insert_upload(conn, user_id)
    backdate(db, "uploads", upload["id"], created_at=timedelta(seconds=120))
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

    result = handler.handle_sweep(event, None)

    assert result == {
        "requeued": 1,
        "timed_out": 0,
        "uploads_completed": 0,
        "uploads_expired": 1,
        "oversized_deleted": 0,
        "media_objects_deleted": 0,
        "media_deletions_finished": 0,
        "errors": 0,
    }
    assert queued_ids(queue) == [str(job["id"])]


def test_given_no_input_bucket_when_handle_sweep_then_a_configuration_error_names_it(
    lambda_env: Callable[..., None], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_env(TRANSCODEX_QUEUE_URL=settings.queue_url)
    monkeypatch.delenv("TRANSCODEX_INPUT_BUCKET", raising=False)

    with pytest.raises(ConfigError, match="TRANSCODEX_INPUT_BUCKET"):
        handler.handle_sweep({}, None)


def test_given_bad_thresholds_when_config_from_env_then_every_problem_is_named(settings: Settings) -> None:
    env = {"TRANSCODEX_SWEEP_REQUEUE_AFTER_SECONDS": "5", "TRANSCODEX_SWEEP_BATCH_LIMIT": "many"}

    with pytest.raises(ConfigError) as err:
        SweepConfig.from_env(settings, env)

    assert "TRANSCODEX_SWEEP_REQUEUE_AFTER_SECONDS must be >= 60" in str(err.value)
    assert "TRANSCODEX_SWEEP_BATCH_LIMIT must be a whole number" in str(err.value)


def test_given_defaults_when_config_from_env_then_upload_ttl_is_the_apis_and_wall_time_the_settings() -> None:
    from runtime.api.chalicelib.uploads import UPLOAD_URL_TTL_SECONDS
    from runtime.shared.settings import load_settings

    config = SweepConfig.from_env(load_settings({"TRANSCODEX_WORKER_TIMEOUT_SECONDS": "120"}), {})

    assert config.upload_url_ttl_seconds == UPLOAD_URL_TTL_SECONDS
    assert config.worker_timeout_seconds == 120
