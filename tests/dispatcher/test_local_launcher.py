"""LocalProcessLauncher: the local platform's stand-in for ECS, with bounded concurrency and
every exited worker reaped once so a crashed worker's job ends FAILED."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.dispatcher.core import Outcome, dispatch, task_stopped
from runtime.dispatcher.launchers import Launcher, LaunchError, LaunchRequest
from runtime.local.launcher import DEFAULT_COMMAND, LocalProcessLauncher
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import ErrorCode, JobStatus
from tests.dispatcher.conftest import body_for, get_job


def test_given_the_default_command_then_it_runs_the_worker_module_with_the_job_id() -> None:
    launcher = LocalProcessLauncher()

    assert isinstance(launcher, Launcher)
    assert list(DEFAULT_COMMAND) == [sys.executable, "-m", "runtime.worker", "--job-id", "{job_id}"]


def test_given_one_slot_when_a_second_worker_is_launched_then_it_is_refused_until_the_first_is_reaped(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    launcher = LocalProcessLauncher(
        max_workers=1,
        command=[sys.executable, "-c", "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])",
                 str(marker), "{job_id}"],
    )  # fmt: skip

    task_id = launcher.launch(LaunchRequest(job_id="job-a", user_id="u"))
    assert (launcher.running, launcher.free_slots) == (1, 0)
    with pytest.raises(LaunchError) as refused:
        launcher.launch(LaunchRequest(job_id="job-b", user_id="u"))
    assert launcher.wait(timeout=30)
    finished = launcher.poll()

    assert refused.value.code == "NO_CAPACITY" and refused.value.throttled
    assert task_id.startswith("local:")
    assert [(f.job_id, f.task_id, f.exit_code) for f in finished] == [("job-a", task_id, 0)]
    assert marker.read_text() == "job-a"
    assert (launcher.running, launcher.free_slots) == (0, 1)
    assert launcher.poll() == []  # reaped exactly once


def test_given_a_missing_executable_when_launching_then_a_launch_error_is_raised() -> None:
    launcher = LocalProcessLauncher(command=["/nonexistent/transcodex-worker", "{job_id}"])

    with pytest.raises(LaunchError) as err:
        launcher.launch(LaunchRequest(job_id="j", user_id="u"))

    assert err.value.code == "SPAWN_FAILED"
    assert launcher.running == 0


def test_given_a_worker_that_crashes_when_reaped_then_its_job_fails_with_the_exit_code(
    db: dbm.Database, make_job: Any
) -> None:
    launcher = LocalProcessLauncher(command=[sys.executable, "-c", "raise SystemExit(3)", "{job_id}"])
    job = make_job()

    assert dispatch(db, launcher, body_for(job)) is Outcome.LAUNCHED
    task_id = get_job(db, job["id"])["task_arn"]
    assert launcher.wait(timeout=30)
    [finished] = launcher.poll()
    failed = task_stopped(db, finished.to_stopped_task())

    assert task_id.startswith("local:") and finished.task_id == task_id
    assert failed is not None
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.TASK_STOPPED)
    assert "exited with code 3" in stored["error_message"]


def test_given_a_running_worker_when_stopped_then_it_is_killed_and_its_job_fails_naming_the_signal(
    db: dbm.Database, make_job: Any
) -> None:
    launcher = LocalProcessLauncher(command=["sleep", "30"])
    job = make_job()
    assert dispatch(db, launcher, body_for(job)) is Outcome.LAUNCHED
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING)

    [stopped] = launcher.shutdown(grace_seconds=5)
    task_stopped(db, stopped.to_stopped_task())

    assert stopped.exit_code == -15
    stored = get_job(db, job["id"])
    assert stored["status"] == JobStatus.FAILED
    assert "killed by signal 15" in stored["error_message"]


def test_given_a_worker_that_recorded_success_when_it_exits_then_the_job_stays_succeeded(
    db: dbm.Database, make_job: Any
) -> None:
    launcher = LocalProcessLauncher(command=[sys.executable, "-c", "pass", "{job_id}"])
    job = make_job()
    assert dispatch(db, launcher, body_for(job)) is Outcome.LAUNCHED
    with db.connection() as conn:
        jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING)
        jobs_repo.transition(conn, str(job["id"]), JobStatus.SUCCEEDED)

    assert launcher.wait(timeout=30)
    [finished] = launcher.poll()

    assert task_stopped(db, finished.to_stopped_task()) is None
    assert get_job(db, job["id"])["status"] == JobStatus.SUCCEEDED


def test_given_a_worker_exits_while_another_runs_when_waiting_then_poll_still_returns_it_exactly_once() -> None:
    launcher = LocalProcessLauncher(
        max_workers=2, command=[sys.executable, "-c", "import sys; sys.exit(0)", "{job_id}"]
    )
    quick = launcher.launch(LaunchRequest(job_id="quick", user_id="u"))
    launcher.command = ["sleep", "30"]
    slow = launcher.launch(LaunchRequest(job_id="slow", user_id="u"))
    try:
        launcher.wait(timeout=30)  # a caller may ignore the answer: wait() never consumes an exit
        first = launcher.poll()
        again = launcher.poll()
    finally:
        [stopped] = launcher.shutdown(grace_seconds=1)

    assert [(f.task_id, f.exit_code) for f in first] == [(quick, 0)]
    assert again == []
    assert (stopped.task_id, stopped.exit_code) == (slow, -15)
