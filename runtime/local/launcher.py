"""The local platform's stand-in for ECS: each job's worker is one subprocess, a bounded number
at once.

It implements the dispatcher's :class:`~runtime.dispatcher.launchers.Launcher`, so the local
loop drives the same claim-launch-record code as the SQS Lambda; it lives here, outside the
dispatcher package, because nothing deployed starts local processes (the Lambda bundles hold
runtime/shared and their component only).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runtime.dispatcher.core import StoppedTask
from runtime.dispatcher.launchers import LaunchError, LaunchRequest

log = logging.getLogger(__name__)

#: Task ids of local workers: ``local:<pid>`` (one process per job) or ``local:<pid>:<n>`` (the
#: n-th job of a warm pool worker, runtime.local.pool).
LOCAL_PREFIX = "local:"
#: The worker module in this Python; ``{job_id}`` is replaced.
DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "runtime.worker", "--job-id", "{job_id}")


@dataclass(frozen=True)
class FinishedProcess:
    """A local worker that exited: settle it with ``service.task_stopped(stop.to_stopped_task())``."""

    job_id: str
    task_id: str
    exit_code: int
    #: Killed by the supervisor for overrunning the worker's time limit: the job ends TIMEOUT.
    timed_out: bool = False

    def to_stopped_task(self) -> StoppedTask:
        return StoppedTask.from_process_exit(job_id=self.job_id, task_id=self.task_id, exit_code=self.exit_code)


def local_pid(task_id: str | None) -> int | None:
    """The worker pid in a local task id (either form), None for anything else."""
    if not task_id or not task_id.startswith(LOCAL_PREFIX):
        return None
    pid = task_id.removeprefix(LOCAL_PREFIX).split(":", 1)[0]
    return int(pid) if pid.isdigit() else None


@dataclass
class _Running:
    job_id: str
    process: subprocess.Popen[bytes]


@dataclass
class LocalProcessLauncher:
    """Runs each job's worker as a subprocess, at most ``max_workers`` at once.

    The local platform should take a new message only while :attr:`free_slots` > 0, and call
    :meth:`poll` regularly (:meth:`wait` blocks until there is something to poll). Every exited
    worker comes back from poll() exactly once as a :class:`FinishedProcess`, to be settled by
    the dispatcher's ``task_stopped`` so a worker that died (killed, crashed) without recording
    a result leaves its job FAILED, not RUNNING forever.
    """

    max_workers: int = 2
    #: argv; ``{job_id}`` is replaced. Tests use a trivial command instead of the real worker.
    command: Sequence[str] = DEFAULT_COMMAND
    #: Extra environment on top of the current one (e.g. TRANSCODEX_* for the worker).
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    _running: dict[str, _Running] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_workers < 1:
            raise ValueError("max_workers must be >= 1")

    @property
    def running(self) -> int:
        """How many workers started by this launcher have not been reaped yet."""
        with self._lock:
            return len(self._running)

    @property
    def free_slots(self) -> int:
        with self._lock:
            return max(0, self.max_workers - len(self._running))

    def running_jobs(self) -> dict[str, str]:
        """task id -> job id of the workers not reaped yet."""
        with self._lock:
            return {task_id: r.job_id for task_id, r in self._running.items()}

    def launch(self, request: LaunchRequest) -> str:
        argv = [part.replace("{job_id}", request.job_id) for part in self.command]
        with self._lock:
            if len(self._running) >= self.max_workers:
                raise LaunchError("NO_CAPACITY", f"all {self.max_workers} local worker slots are busy", throttled=True)
            try:
                process = subprocess.Popen(  # argv list, no shell
                    argv,
                    env={**os.environ, **self.env, "JOB_ID": request.job_id},
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # so stop() can signal the worker and its ffmpeg children
                )
            except OSError as err:
                raise LaunchError("SPAWN_FAILED", f"could not start {argv[0]!r}: {err}") from err
            task_id = f"{LOCAL_PREFIX}{process.pid}"
            self._running[task_id] = _Running(request.job_id, process)
        log.info("local worker started", extra={"job_id": request.job_id, "task_id": task_id})
        return task_id

    def poll(self) -> list[FinishedProcess]:
        """Reap every worker that has exited since the last call (non-blocking)."""
        finished: list[FinishedProcess] = []
        with self._lock:
            for task_id, entry in list(self._running.items()):
                code = entry.process.poll()
                if code is not None:
                    del self._running[task_id]
                    finished.append(FinishedProcess(entry.job_id, task_id, code))
        return finished

    def wait(self, timeout: float | None = None, interval: float = 0.02) -> bool:
        """Block until a worker has exited (True) or ``timeout`` seconds pass / none runs (False).

        It does not reap: call :meth:`poll` afterwards, so no exited worker can be lost by a
        caller that ignores this return value.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                entries = list(self._running.values())
            if not entries:
                return False
            if any(entry.process.poll() is not None for entry in entries):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))

    def stop(self, task_id: str, reason: str, grace_seconds: float = 5.0) -> None:
        """SIGTERM the worker's process group, SIGKILL after ``grace_seconds``; it is reaped by poll()."""
        with self._lock:
            entry = self._running.get(task_id)
        if entry is None or entry.process.poll() is not None:
            return
        log.info("stopping local worker", extra={"job_id": entry.job_id, "task_id": task_id, "reason": reason})
        _signal_group(entry.process, signal.SIGTERM)
        try:
            entry.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(entry.process, signal.SIGKILL)
            entry.process.wait()

    def shutdown(self, grace_seconds: float = 5.0) -> list[FinishedProcess]:
        """Stop every worker (platform shutdown) and return them reaped."""
        for task_id in list(self.running_jobs()):
            self.stop(task_id, "local platform shutting down", grace_seconds)
        return self.poll()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
