"""A warm pool of local workers: N long-lived processes that run jobs one after another, the
local counterpart of warm Lambdas.

Each worker (runtime.local.pool_worker) imports pyvips, boto3 and psycopg and opens its
database pool once, then runs every job it is handed through the same
:func:`runtime.worker.runner.run_job` as a one-shot worker. A job costs its own work, not a
Python start-up (about 1 s of imports and connections, against the 5 ms of a small rotate).

The pool keeps the guarantees of one process per job (runtime.local.launcher):

* a worker that dies mid-job comes back from :meth:`WorkerPool.poll` as a
  :class:`~runtime.local.launcher.FinishedProcess`, to be settled by ``task_stopped`` (its job
  ends FAILED with the exit code or signal), and is replaced;
* a job that overruns ``job_timeout_seconds`` gets its worker killed and replaced, and comes
  back with ``timed_out`` set so its job ends FAILED with TIMEOUT;
* each job has its own task id, ``local:<pid>:<n>`` (the worker's pid and its n-th job), so a
  stopped worker fails only the job it was running, never an earlier one it finished.

Control runs over the worker's stdin (one JSON line per job) and stdout (``ready`` once, then
``done`` per job); the worker moves its own output to the platform log (see pool_worker).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from runtime.dispatcher.launchers import LaunchError, LaunchRequest
from runtime.local.launcher import LOCAL_PREFIX, FinishedProcess

log = logging.getLogger(__name__)

#: A worker that exits before it is ready is started again after this, doubled per failure.
RESTART_BACKOFF_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0


def pool_worker_command(log_path: str | None = None) -> tuple[str, ...]:
    """The argv of one pool worker; its output goes to ``log_path`` (default: inherited)."""
    argv: tuple[str, ...] = (sys.executable, "-m", "runtime.local.pool_worker")
    return (*argv, "--log", log_path) if log_path else argv


@dataclass
class _Job:
    job_id: str
    task_id: str
    started: float
    #: Killed for overrunning job_timeout_seconds.
    timed_out: bool = False


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    ready: bool = False
    job: _Job | None = None
    jobs_started: int = 0
    #: Set once the pool decided to end this worker (stop, timeout, shutdown).
    retiring: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class WorkerPool:
    """``size`` warm workers behind the dispatcher's Launcher protocol (launch, stop), with the
    local launcher's bookkeeping (free_slots, running, poll, wait, shutdown)."""

    size: int = 2
    command: Sequence[str] = field(default_factory=pool_worker_command)
    #: Extra environment on top of the current one (the worker's TRANSCODEX_* settings).
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: Wall time after which a job's worker is killed (the worker enforces the limit itself;
    #: this is the backstop for one stuck where it cannot notice). None: no limit.
    job_timeout_seconds: float | None = None
    clock: Callable[[], float] = time.monotonic
    _workers: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _events: queue.Queue[tuple[_Worker, dict[str, object] | None]] = field(
        default_factory=queue.Queue, init=False, repr=False
    )
    _changed: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _pending: list[FinishedProcess] = field(default_factory=list, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)
    _next_start: float = field(default=0.0, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be >= 1")

    # --- the Launcher protocol --------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> str:
        """Hand the job to an idle worker (a ready one first); LaunchError when none is free."""
        self._fill()
        idle = sorted((w for w in self._workers if self._is_idle(w)), key=lambda w: not w.ready)
        if not idle:
            raise LaunchError("NO_CAPACITY", f"all {self.size} pool workers are busy", throttled=True)
        worker = idle[0]
        worker.jobs_started += 1
        task_id = f"{LOCAL_PREFIX}{worker.pid}:{worker.jobs_started}"
        line = json.dumps({"job_id": request.job_id, "task_id": task_id}) + "\n"
        try:
            assert worker.process.stdin is not None
            worker.process.stdin.write(line.encode())
            worker.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as err:  # it died since the last poll
            raise LaunchError("SPAWN_FAILED", f"pool worker {worker.pid} is gone: {err}") from err
        worker.job = _Job(request.job_id, task_id, self.clock())
        log.info("job handed to a pool worker", extra={"job_id": request.job_id, "task_id": task_id})
        return task_id

    def stop(self, task_id: str, reason: str, grace_seconds: float = 5.0) -> None:
        """Stop the worker running ``task_id`` (SIGTERM, SIGKILL after the grace); it is reaped,
        and replaced, by poll()."""
        worker = next((w for w in self._workers if w.job and w.job.task_id == task_id), None)
        if worker is None:
            return
        log.info("stopping a pool worker", extra={"task_id": task_id, "reason": reason})
        worker.retiring = True
        _end(worker.process, grace_seconds)

    # --- bookkeeping ----------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """Workers alive and without a job (ones still importing count: a job waits in their pipe)."""
        self._fill()
        return sum(1 for w in self._workers if self._is_idle(w))

    @property
    def running(self) -> int:
        """Jobs handed out and not finished."""
        return sum(1 for w in self._workers if w.job is not None)

    def running_jobs(self) -> dict[str, str]:
        """task id -> job id of the jobs in flight."""
        return {w.job.task_id: w.job.job_id for w in self._workers if w.job is not None}

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    @property
    def ready(self) -> int:
        """Workers that finished starting (as of the last poll)."""
        return sum(1 for w in self._workers if w.ready)

    def start(self) -> None:
        """Start the workers now (they are otherwise started by the first launch or poll)."""
        self._fill()

    def poll(self) -> list[FinishedProcess]:
        """Settle every event since the last call: finished jobs free their worker; a worker that
        died with a job (or was killed for overrunning it) comes back as a FinishedProcess; dead
        workers are replaced."""
        self._drain_events()
        self._kill_overdue()
        for worker in list(self._workers):
            code = worker.process.poll()
            if code is None:
                continue
            self._workers.remove(worker)
            self._close(worker)
            if worker.job is not None:
                self._pending.append(
                    FinishedProcess(worker.job.job_id, worker.job.task_id, code, timed_out=worker.job.timed_out)
                )
            if worker.ready or worker.retiring:
                self._failures = 0
            else:  # it never got ready: a broken configuration must not become a hot loop
                self._failures += 1
                delay = _backoff(self._failures)
                self._next_start = self.clock() + delay
                log.error("a pool worker exited while starting", extra={"exit_code": code, "retry_in_s": delay})
            if worker.job is None and not worker.retiring:
                log.warning("an idle pool worker exited; replacing it", extra={"pid": worker.pid, "exit_code": code})
        finished, self._pending = self._pending, []
        self._fill()
        return finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a worker reported or exited (True) or ``timeout`` passes (False); call
        poll() afterwards. Woken by the workers' own messages, not by polling."""
        with self._changed:
            if not self._events.empty():
                return True
            self._changed.wait(timeout)
            return not self._events.empty()

    def shutdown(self, grace_seconds: float = 5.0) -> list[FinishedProcess]:
        """Stop every worker (an idle one exits at once, a busy one records its job as stopped)
        and return the jobs that were in flight, reaped."""
        self._closed = True
        for worker in self._workers:
            worker.retiring = True
            with contextlib.suppress(OSError):
                if worker.process.stdin is not None:
                    worker.process.stdin.close()  # an idle worker ends on end of input
            _signal_group(worker.process, signal.SIGTERM)
        deadline = self.clock() + grace_seconds
        for worker in self._workers:
            try:
                worker.process.wait(max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                _signal_group(worker.process, signal.SIGKILL)
                worker.process.wait()
        return self.poll()

    # --- internals --------------------------------------------------------------------------

    def _is_idle(self, worker: _Worker) -> bool:
        return worker.job is None and not worker.retiring and worker.process.poll() is None

    def _fill(self) -> None:
        if self._closed or self.clock() < self._next_start:
            return
        while len(self._workers) < self.size:
            try:
                self._workers.append(self._spawn())
            except OSError as err:
                self._failures += 1
                self._next_start = self.clock() + _backoff(self._failures)
                log.error("could not start a pool worker", extra={"error": str(err), "argv0": self.command[0]})
                return

    def _spawn(self) -> _Worker:
        process = subprocess.Popen(  # argv list, no shell
            list(self.command),
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # so a kill reaches the worker's ffmpeg children too
        )
        worker = _Worker(process)
        assert process.stdout is not None
        threading.Thread(
            target=self._read, args=(worker, process.stdout), name=f"pool-{process.pid}", daemon=True
        ).start()
        log.info("pool worker started", extra={"pid": process.pid})
        return worker

    def _read(self, worker: _Worker, stream: IO[bytes]) -> None:
        """One thread per worker: its control lines become events; end of stream is None."""
        with stream:
            for raw in iter(stream.readline, b""):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self._notify(worker, event)
        self._notify(worker, None)

    def _notify(self, worker: _Worker, event: dict[str, object] | None) -> None:
        with self._changed:
            self._events.put((worker, event))
            self._changed.notify_all()

    def _drain_events(self) -> None:
        while True:
            try:
                worker, event = self._events.get_nowait()
            except queue.Empty:
                return
            if event is None:  # its control pipe closed: it is exiting; poll() reaps it
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(5)
                continue
            if event.get("event") == "ready":
                worker.ready = True
                self._failures = 0
            elif event.get("event") == "done" and worker.job and event.get("task_id") == worker.job.task_id:
                worker.job = None

    def _kill_overdue(self) -> None:
        if self.job_timeout_seconds is None:
            return
        now = self.clock()
        for worker in self._workers:
            job = worker.job
            if job is None or job.timed_out or now - job.started <= self.job_timeout_seconds:
                continue
            log.error(
                "job overran its time limit; killing its pool worker",
                extra={"job_id": job.job_id, "task_id": job.task_id, "limit_s": self.job_timeout_seconds},
            )
            job.timed_out = True
            worker.retiring = True
            _signal_group(worker.process, signal.SIGKILL)
            worker.process.wait()

    def _close(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError, ValueError):
            if worker.process.stdin is not None:
                worker.process.stdin.close()


def _backoff(failures: int) -> float:
    return min(RESTART_BACKOFF_MAX_SECONDS, RESTART_BACKOFF_SECONDS * 2.0 ** max(0, failures - 1))


def _end(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
