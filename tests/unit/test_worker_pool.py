"""WorkerPool's protocol and bookkeeping with a stand-in worker (a few lines of Python that
speak the control protocol), so no database or S3 is needed: task ids, reuse, slots, a worker
that dies, a stop, and the mode setting."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import pytest

from runtime.dispatcher.launchers import Launcher, LaunchError, LaunchRequest
from runtime.local.launcher import FinishedProcess, local_pid
from runtime.local.pool import WorkerPool
from runtime.shared.settings import ConfigError, tool_settings

#: Ready, then "done" for every job line, except a job id "hang", which it never finishes.
STAND_IN = """
import json, sys, time
print(json.dumps({"event": "ready"}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    if job["job_id"] == "hang":
        time.sleep(600)
    print(json.dumps({"event": "done", "job_id": job["job_id"], "task_id": job["task_id"]}), flush=True)
"""


@pytest.fixture()
def pool() -> Iterator[WorkerPool]:
    made = WorkerPool(size=1, command=(sys.executable, "-c", STAND_IN))
    made.start()
    warm(made)
    yield made
    made.shutdown(grace_seconds=2)


def warm(pool: WorkerPool) -> None:
    for _ in range(300):
        pool.wait(timeout=0.1)
        pool.poll()
        if pool.ready == pool.size:
            return
    raise AssertionError("the stand-in worker never said ready")


def finish(pool: WorkerPool) -> list[FinishedProcess]:
    """Wait for the job in flight to be reported, then reap."""
    for _ in range(300):
        pool.wait(timeout=0.1)
        finished = pool.poll()
        if finished or not pool.running:
            return finished
    raise AssertionError("the job in flight never ended")


def test_given_a_pool_of_one_when_two_jobs_run_in_a_row_then_the_same_process_runs_both(pool: WorkerPool) -> None:
    assert isinstance(pool, Launcher)

    first = pool.launch(LaunchRequest(job_id="a", user_id="u"))
    with pytest.raises(LaunchError) as busy:
        pool.launch(LaunchRequest(job_id="b", user_id="u"))
    assert finish(pool) == []  # a job the worker finished is not a stopped worker
    second = pool.launch(LaunchRequest(job_id="b", user_id="u"))
    finish(pool)

    assert busy.value.code == "NO_CAPACITY" and busy.value.throttled
    pid = local_pid(first)
    assert (first, second) == (f"local:{pid}:1", f"local:{pid}:2")
    assert pool.worker_pids() == [pid] and pool.free_slots == 1


def test_given_a_busy_worker_when_it_dies_then_its_job_comes_back_once_and_a_new_worker_replaces_it(
    pool: WorkerPool,
) -> None:
    task_id = pool.launch(LaunchRequest(job_id="hang", user_id="u"))
    pid = local_pid(task_id)
    assert pid is not None

    os.killpg(pid, signal.SIGKILL)
    [finished] = finish(pool)

    assert (finished.job_id, finished.task_id, finished.exit_code, finished.timed_out) == (
        "hang",
        task_id,
        -signal.SIGKILL,
        False,
    )
    assert pool.poll() == []
    warm(pool)
    assert len(pool.worker_pids()) == 1 and pool.worker_pids() != [pid]
    assert pool.running == 0 and pool.free_slots == 1


def test_given_a_job_in_flight_when_stopped_or_overdue_then_its_worker_is_ended_and_the_overdue_one_timed_out(
    pool: WorkerPool,
) -> None:
    stopped = pool.launch(LaunchRequest(job_id="hang", user_id="u"))
    pool.stop(stopped, "test", grace_seconds=2)
    [by_stop] = finish(pool)
    warm(pool)
    pool.job_timeout_seconds = 0.0
    overdue = pool.launch(LaunchRequest(job_id="hang", user_id="u"))
    [by_limit] = finish(pool)

    assert (by_stop.task_id, by_stop.timed_out) == (stopped, False)
    assert (by_limit.task_id, by_limit.timed_out) == (overdue, True)
    assert local_pid(overdue) != local_pid(stopped)


def test_given_the_local_task_id_forms_then_the_pid_is_read_from_both_and_nothing_else() -> None:
    assert local_pid("local:123") == 123
    assert local_pid("local:123:7") == 123
    assert local_pid("arn:aws:ecs:us-east-1:1:task/c/abc") is None
    assert local_pid("local:abc") is None and local_pid(None) is None


def test_given_the_worker_mode_setting_then_pool_is_the_default_and_a_typo_is_refused() -> None:
    assert tool_settings({}).local_worker_mode == "pool"
    assert tool_settings({"TRANSCODEX_LOCAL_WORKER_MODE": "subprocess"}).local_worker_mode == "subprocess"
    with pytest.raises(ConfigError) as refused:
        _ = tool_settings({"TRANSCODEX_LOCAL_WORKER_MODE": "pooled"}).local_worker_mode
    assert "pooled" in str(refused.value)
