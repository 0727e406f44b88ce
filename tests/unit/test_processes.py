"""The local platform's checks on recorded pids (runtime.local.processes, psutil): a pid is
signalled only while it still runs the recorded command, and waiting ends at exit or zombie."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.local.dispatch_loop import _kill_orphan_worker
from runtime.local.launcher import LOCAL_PREFIX
from runtime.local.platform import _is_postmaster_of
from runtime.local.processes import command_line, wait_gone

SLEEP = "import time; time.sleep(30)"


@pytest.fixture()
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start sleepers (each its own group); every one is killed and reaped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _sleeper(started: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SLEEP, *args], start_new_session=True)
    started.append(proc)
    return proc


def test_given_a_running_child_when_read_then_its_argv_and_none_once_reaped(spawn: list) -> None:
    proc = _sleeper(spawn, "--marker", "m1")
    expected = [sys.executable, "-c", SLEEP, "--marker", "m1"]
    # Between fork and exec the child still shows the parent's (or an empty) command line.
    deadline = time.monotonic() + 5.0
    while command_line(proc.pid) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert command_line(proc.pid) == expected
    proc.kill()
    proc.wait()
    assert command_line(proc.pid) is None


def test_given_a_zombie_when_waiting_then_done_at_once_and_a_live_one_times_out(spawn: list) -> None:
    alive = _sleeper(spawn)
    zombie = _sleeper(spawn)
    zombie.kill()
    time.sleep(0.3)  # exited; not reaped yet: a zombie
    started = time.monotonic()
    assert wait_gone(zombie.pid, 5.0) is True
    assert time.monotonic() - started < 1.0
    assert wait_gone(alive.pid, 0.3) is False
    assert alive.poll() is None


def test_given_postmaster_pids_when_checked_then_only_the_one_serving_that_folder_matches(
    spawn: list, tmp_path: Path
) -> None:
    pgdata = tmp_path / "pgdata"
    ours = _sleeper(spawn, "-D", str(pgdata))
    other = _sleeper(spawn, "-D", f"{pgdata}-other")
    assert _is_postmaster_of(ours.pid, pgdata) is True
    assert _is_postmaster_of(other.pid, pgdata) is False
    ours.kill()
    ours.wait()
    assert _is_postmaster_of(ours.pid, pgdata) is False


def test_given_recorded_worker_pids_when_orphans_are_killed_then_only_that_jobs_worker_dies(spawn: list) -> None:
    job, other_job = str(uuid.uuid4()), str(uuid.uuid4())
    worker = _sleeper(spawn, "-m", "runtime.worker", "--job-id", job)
    other = _sleeper(spawn, "-m", "runtime.worker", "--job-id", other_job)
    stranger = _sleeper(spawn, "--job-id", job)
    for proc in (worker, other, stranger):
        _kill_orphan_worker(f"{LOCAL_PREFIX}{proc.pid}", job)
    assert worker.wait(10) == -9
    assert other.poll() is None and stranger.poll() is None
