"""The warm worker pool under the local dispatcher loop, with the real worker, PostgreSQL,
SeaweedFS and moto: jobs run one after another on the same warm process, a worker that dies
or overruns is replaced and its job ends FAILED, a cancel stops the job but not the worker,
and the one-process-per-job mode still runs jobs."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runtime.local.dispatch_loop import LocalDispatcher
from runtime.local.launcher import local_pid
from runtime.local.pool import WorkerPool
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.settings import Settings
from runtime.shared.status import TERMINAL, JobStatus
from tests.factories import insert_job, insert_upload, insert_user
from tests.media import make_image, make_video

pytestmark = [pytest.mark.xdist_group("e2e")]

ROTATE = [{"op": "rotate", "angle": 90}]


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("media") / "small.png", 320, 240)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that a ladder of it is still running when the test cancels it."""
    return make_video(tmp_path_factory.mktemp("media") / "long.mp4", 30, 1280, 720)


def worker_env(settings: Settings, scratch: Path) -> dict[str, str]:
    """What the platform gives its workers, from the test's settings; scratch under ``scratch``."""
    return {
        "TRANSCODEX_DATABASE_URL": settings.database_url or "",
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3 or "",
        "TMPDIR": str(scratch),
    }


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    return folder


def _dispatcher(settings: Settings, tmp_path: Path, scratch: Path, mode: str, size: int = 1) -> LocalDispatcher:
    return LocalDispatcher(
        settings,
        concurrency=size,
        log_path=tmp_path / "workers.log",
        env=worker_env(settings, scratch),
        worker_mode=mode,
    )


@pytest.fixture()
def pool(settings: Settings, tmp_path: Path, scratch: Path) -> Iterator[LocalDispatcher]:
    local = _dispatcher(settings, tmp_path, scratch, "pool")
    try:
        yield local
    finally:
        local.shutdown()


@pytest.fixture()
def submit(settings: Settings, db: dbm.Database) -> Callable[..., str]:
    """Put ``path`` in the input bucket, insert its upload and a QUEUED job, send its message."""

    def _submit(path: Path, job_type: str, operations: Any) -> str:
        body = path.read_bytes()
        with db.connection() as conn:
            user_id = insert_user(conn)
            upload = insert_upload(
                conn, user_id, media_type=job_type, filename=path.name, size_bytes=len(body), status="UPLOADED"
            )
            client("s3", settings).put_object(Bucket=settings.input_bucket, Key=upload["object_key"], Body=body)
            job_id = str(insert_job(conn, job_type, operations, user_id=user_id, upload_id=str(upload["id"]))["id"])
        client("sqs", settings).send_message(QueueUrl=settings.queue_url, MessageBody=JobMessage(job_id).to_body())
        return job_id

    return _submit


def job(db: dbm.Database, job_id: str) -> dict[str, Any]:
    with db.connection() as conn:
        row = jobs_repo.get(conn, job_id)
    assert row is not None
    return row


def run_until(dispatcher: LocalDispatcher, done: Callable[[], bool], rounds: int = 600) -> None:
    """Drive the loop as its thread does until ``done()`` (bounded, never a timed assertion)."""
    for _ in range(rounds):
        dispatcher.step(wait_seconds=0)
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("the loop did not get there")


def until_status(db: dbm.Database, job_id: str, *statuses: str) -> Callable[[], bool]:
    return lambda: job(db, job_id)["status"] in (statuses or tuple(s.value for s in TERMINAL))


def test_given_a_pool_of_one_when_two_jobs_run_in_a_row_then_one_warm_worker_runs_both_and_keeps_nothing(
    pool: LocalDispatcher, db: dbm.Database, submit: Callable[..., str], png: Path, scratch: Path
) -> None:
    first = submit(png, "IMAGE", ROTATE)
    run_until(pool, until_status(db, first))
    second = submit(png, "IMAGE", ROTATE)
    run_until(pool, until_status(db, second))

    a, b = job(db, first), job(db, second)
    assert (a["status"], b["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert a["task_arn"] != b["task_arn"]  # each job has its own task id ...
    assert local_pid(a["task_arn"]) == local_pid(b["task_arn"])  # ... on the same warm process
    assert isinstance(pool.launcher, WorkerPool)
    pid = local_pid(b["task_arn"])
    assert pool.launcher.worker_pids() == [pid]
    assert list(scratch.iterdir()) == []  # every job's scratch folder is gone
    held = [f.path for f in psutil.Process(pid).open_files() if f.path.startswith(str(scratch))]
    assert held == []  # and no finished job's file is still open (libvips keeps no cache)


def test_given_a_busy_pool_worker_when_it_is_killed_then_its_job_fails_and_a_new_worker_runs_the_next(
    pool: LocalDispatcher, db: dbm.Database, submit: Callable[..., str], long_clip: Path, png: Path
) -> None:
    victim = submit(long_clip, "VIDEO", [{"op": "transcode"}])
    run_until(pool, until_status(db, victim, "RUNNING"))
    pid = local_pid(job(db, victim)["task_arn"])
    assert pid is not None and "runtime.local.pool_worker" in " ".join(psutil.Process(pid).cmdline())

    os.killpg(pid, signal.SIGKILL)  # the worker and its ffmpeg, as an OOM kill would
    run_until(pool, until_status(db, victim))
    after = submit(png, "IMAGE", ROTATE)
    run_until(pool, until_status(db, after))

    failed = job(db, victim)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "TASK_STOPPED")
    assert "signal 9" in failed["error_message"]
    assert job(db, after)["status"] == "SUCCEEDED"
    replacement = local_pid(job(db, after)["task_arn"])
    assert replacement is not None and replacement != pid


def test_given_a_running_job_when_it_is_cancelled_then_it_ends_cancelled_and_the_worker_stays_warm(
    pool: LocalDispatcher, db: dbm.Database, submit: Callable[..., str], long_clip: Path, png: Path
) -> None:
    ladder = submit(long_clip, "VIDEO", [{"op": "transcode"}])
    run_until(pool, until_status(db, ladder, "RUNNING"))
    with db.connection() as conn:  # what POST /media/jobs/{id}/cancel does
        assert jobs_repo.transition(conn, ladder, JobStatus.CANCELLED) is not None
    run_until(pool, lambda: pool.launcher.running == 0)
    after = submit(png, "IMAGE", ROTATE)
    run_until(pool, until_status(db, after))

    assert job(db, ladder)["status"] == "CANCELLED"
    assert job(db, after)["status"] == "SUCCEEDED"
    assert local_pid(job(db, after)["task_arn"]) == local_pid(job(db, ladder)["task_arn"])


def test_given_a_job_that_overruns_the_time_limit_when_polled_then_its_worker_is_killed_replaced_and_it_times_out(
    pool: LocalDispatcher, db: dbm.Database, submit: Callable[..., str], png: Path
) -> None:
    launcher = pool.launcher
    assert isinstance(launcher, WorkerPool)
    # A stand-in worker stuck where it cannot notice its deadline: ready, then never answers.
    stuck = 'import sys, time; print(\'{"event": "ready"}\', flush=True); sys.stdin.readline(); time.sleep(600)'
    launcher.command = (sys.executable, "-c", stuck)
    launcher.job_timeout_seconds = 1.0
    job_id = submit(png, "IMAGE", ROTATE)

    run_until(pool, until_status(db, job_id))

    failed = job(db, job_id)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "TIMEOUT")
    assert "time limit" in failed["error_message"]
    killed = local_pid(failed["task_arn"])
    assert killed is not None
    assert killed not in launcher.worker_pids() and len(launcher.worker_pids()) == 1
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE


def test_given_a_pool_worker_that_cannot_configure_itself_when_given_a_job_then_the_job_fails_with_its_exit(
    pool: LocalDispatcher, db: dbm.Database, submit: Callable[..., str], png: Path
) -> None:
    assert isinstance(pool.launcher, WorkerPool)
    pool.launcher.env = {**pool.launcher.env, "TRANSCODEX_DATABASE_URL": ""}
    job_id = submit(png, "IMAGE", ROTATE)

    run_until(pool, until_status(db, job_id))

    failed = job(db, job_id)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "TASK_STOPPED")
    assert "exited with code 2" in failed["error_message"]


@pytest.mark.parametrize("mode", ["pool", "subprocess"])
def test_given_either_worker_mode_when_two_jobs_are_queued_on_two_workers_then_both_succeed(
    mode: str,
    settings: Settings,
    db: dbm.Database,
    submit: Callable[..., str],
    png: Path,
    tmp_path: Path,
    scratch: Path,
) -> None:
    dispatcher = _dispatcher(settings, tmp_path, scratch, mode, size=2)
    try:
        jobs = [submit(png, "IMAGE", ROTATE) for _ in range(2)]
        run_until(dispatcher, lambda: all(until_status(db, j)() for j in jobs))
    finally:
        dispatcher.shutdown()

    assert [job(db, j)["status"] for j in jobs] == ["SUCCEEDED", "SUCCEEDED"]
    arns = [job(db, j)["task_arn"] for j in jobs]
    assert all(local_pid(a) is not None for a in arns)
    assert all(a.count(":") == (2 if mode == "pool" else 1) for a in arns)
    assert list(scratch.iterdir()) == []
