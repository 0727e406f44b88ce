"""The local dispatcher: the SQS event source, the schedule and ECS, replaced by a loop and
subprocesses around the same DispatcherService the Lambda handlers call.

The loop long-polls the job queue, taking only as many messages as there are free worker slots
(a warm :class:`~runtime.local.pool.WorkerPool`, the default, or one
:class:`~runtime.local.launcher.LocalProcessLauncher` subprocess per job), and hands them to
:meth:`~runtime.dispatcher.service.DispatcherService.dispatch_batch`; handled messages are
deleted, messages to retry are left to become visible again (and reach the DLQ after
``maxReceiveCount``). The DLQ is drained through ``fail_dead_letters``, every worker that exits
is passed to ``task_stopped``, so a crashed or killed worker leaves its job FAILED, not stuck,
and every ``sweep_interval_seconds`` (60) the loop runs ``sweep`` as the scheduled Lambda does:
stale QUEUED jobs get their message again, lost workers' jobs end FAILED (TIMEOUT), stale
PENDING uploads end UPLOADED or EXPIRED.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from runtime.dispatcher.core import StoppedTask
from runtime.dispatcher.service import DispatcherService
from runtime.dispatcher.sweeper import SweepReport
from runtime.local.launcher import DEFAULT_COMMAND, FinishedProcess, LocalProcessLauncher, local_pid
from runtime.local.pool import WorkerPool, pool_worker_command
from runtime.local.processes import command_line
from runtime.shared.aws import client
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.settings import LOCAL_WORKER_MODES, Settings
from runtime.shared.sqs import SqsQueue
from runtime.shared.status import ErrorCode, JobStatus

log = logging.getLogger("transcodex.local.dispatcher")

#: Database connections of the loop: dispatch, reaping and the sweeper share them.
POOL_SIZE = 4
#: How workers run (runtime.shared.settings.LOCAL_WORKER_MODES): with a worker image always
#: ``subprocess``, one container per job.
DEFAULT_WORKER_MODE = LOCAL_WORKER_MODES[0]
#: A pool worker still busy this long after the worker's own time limit is killed (the worker
#: stops itself at the limit; this catches one stuck where it cannot notice).
HARD_TIMEOUT_GRACE_SECONDS = 60
#: The dead-letter queue is drained at most this often (it is rare; the job queue is not).
DLQ_INTERVAL_SECONDS = 1.0


def worker_command(log_path: Path, container: Sequence[str] = ()) -> tuple[str, ...]:
    """The worker's argv, its output appended to the platform log (see runtime.local.worker_exec).

    ``container``: an argv that runs the worker image (runtime.local.images.container_worker_argv)
    instead of the worker module in this Python.
    """
    worker = tuple(container) or DEFAULT_COMMAND
    first = shutil.which(worker[0]) or worker[0]
    return (sys.executable, "-m", "runtime.local.worker_exec", str(log_path), first, *worker[1:])


class LocalDispatcher:
    def __init__(
        self,
        settings: Settings,
        concurrency: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        sweep_interval_seconds: float = 60.0,
        worker_image: str | None = None,
        worker_mode: str = DEFAULT_WORKER_MODE,
    ) -> None:
        """``env`` is added to the workers' environment (the platform's TRANSCODEX_* settings);
        the dispatcher's thresholds (TRANSCODEX_SWEEP_*, the claim timeout) are read from it
        (default: this process's). ``worker_image``: run each worker inside that image
        (podman/docker) instead of as a module, one container per job. ``worker_mode``: see
        LOCAL_WORKER_MODES; ``concurrency`` is the number of workers either way."""
        if worker_mode not in LOCAL_WORKER_MODES:
            raise ValueError(f"worker_mode must be one of {LOCAL_WORKER_MODES}, got {worker_mode!r}")
        self.settings = settings
        self.worker_image = worker_image
        self.worker_mode = "subprocess" if worker_image else worker_mode
        container: tuple[str, ...] = ()
        if worker_image:
            from runtime.local.images import container_worker_argv, engine_env

            container = container_worker_argv(worker_image, dict(env or {}))
            env = {**(env or {}), "CONTAINERS_CONF": engine_env()["CONTAINERS_CONF"]}
        self.launcher: LocalProcessLauncher | WorkerPool
        if self.worker_mode == "pool":
            self.launcher = WorkerPool(
                size=concurrency,
                command=pool_worker_command(str(log_path)),
                env=dict(env or {}),
                job_timeout_seconds=settings.limits.worker_timeout_seconds + HARD_TIMEOUT_GRACE_SECONDS,
            )
        else:
            self.launcher = LocalProcessLauncher(
                max_workers=concurrency, command=worker_command(log_path, container), env=dict(env or {})
            )
        self.service = DispatcherService.from_settings(
            settings,
            launcher=self.launcher,
            queue=True,
            storage=True,
            pool_size=POOL_SIZE,
            env=env if env is not None else os.environ,
        )
        assert self.service.queue is not None
        self.queue: SqsQueue = self.service.queue
        self.dlq = SqsQueue(client("sqs", settings), settings.dlq_url) if settings.dlq_url else None
        self.sweep_interval_seconds = sweep_interval_seconds
        self._next_sweep = time.monotonic()
        self._next_dlq = 0.0
        self._lock = threading.Lock()

    # --- startup recovery -----------------------------------------------------------------------

    def recover(self) -> dict[str, int]:
        """Settle jobs the previous run left in flight; queue again the ones that never started.

        moto's queue does not survive a restart, but the database does: QUEUED jobs (and claims
        with no worker) get a fresh message; jobs whose worker belonged to the previous run end
        FAILED through ``task_stopped``, after that worker is stopped if it is still alive.
        """
        db = self.service.db
        requeued = failed = 0
        with db.connection() as conn:
            rows = jobs_repo.unfinished(conn)
        for row in rows:
            job_id, status, task_arn = str(row["id"]), JobStatus(row["status"]), row["task_arn"]
            if status is JobStatus.DISPATCHED and task_arn is None:
                with db.connection() as conn:
                    jobs_repo.transition(conn, job_id, JobStatus.QUEUED, from_statuses=[JobStatus.DISPATCHED])
                status = JobStatus.QUEUED
            if status is JobStatus.QUEUED:
                self.queue.send(JobMessage(job_id).to_body())
                requeued += 1
                continue
            if local_pid(task_arn) is not None:
                _kill_orphan_worker(task_arn, job_id)
            if self.worker_image:
                from runtime.local.images import remove_container

                if remove_container(job_id):
                    log.warning("removed a worker container left by the previous run", extra={"job_id": job_id})
            stopped = StoppedTask(
                task_id=task_arn or "",
                job_id=job_id,
                stop_code="PlatformStopped",
                stopped_reason="the local platform stopped while this job was running",
            )
            if self.service.task_stopped(stopped) is not None:
                failed += 1
        return {"requeued": requeued, "failed": failed}

    # --- the loop -------------------------------------------------------------------------------

    def run_until(self, stopping: threading.Event, wait_seconds: int = 1) -> None:
        """Loop until ``stopping`` is set; a failed round (database or moto restarting) is retried."""
        while not stopping.is_set():
            try:
                self.step(wait_seconds)
                self.maybe_sweep()
            except Exception:
                log.exception("dispatcher round failed; retrying in 2 s")
                stopping.wait(2)

    def maybe_sweep(self) -> SweepReport | None:
        """Run the sweeper when ``sweep_interval_seconds`` have passed since the last run."""
        if time.monotonic() < self._next_sweep:
            return None
        self._next_sweep = time.monotonic() + self.sweep_interval_seconds
        return self.sweep()

    def sweep(self) -> SweepReport:
        """One sweep, as the scheduled Lambda does on AWS."""
        return self.service.sweep()

    def step(self, wait_seconds: int = 1) -> None:
        """One round: reap exited workers, take messages for free slots, drain the DLQ."""
        with self._lock:
            self.reap()
            free = self.launcher.free_slots
            if free:
                self._receive(min(10, free), wait_seconds)
            else:
                self.launcher.wait(timeout=wait_seconds)
                self.reap()
            self._drain_dlq()

    def _receive(self, count: int, wait_seconds: int) -> None:
        settled = self.service.dispatch_batch(self.queue.receive(count, wait_seconds))
        # The others are left on the queue: they come back after the visibility timeout (or go to the DLQ).
        for message in settled.handled:
            self.queue.delete(message)

    def _drain_dlq(self) -> None:
        if self.dlq is None or time.monotonic() < self._next_dlq:
            return
        self._next_dlq = time.monotonic() + DLQ_INTERVAL_SECONDS
        for message in self.service.fail_dead_letters(self.dlq.receive(10, 0)).handled:
            self.dlq.delete(message)

    def reap(self) -> list[str]:
        """Pass every worker that exited to ``task_stopped``; return their job ids."""
        jobs = []
        for finished in self.launcher.poll():
            jobs.append(finished.job_id)
            try:
                self.settle(finished)
            except Exception:
                log.exception("could not settle a stopped worker", extra={"job_id": finished.job_id})
        return jobs

    def settle(self, finished: FinishedProcess) -> None:
        """A worker that ended with a job: TIMEOUT when it was killed for overrunning the time
        limit, else whatever ``task_stopped`` makes of its exit (nothing if the job finished)."""
        if finished.timed_out:
            limit = self.settings.limits.worker_timeout_seconds
            with self.service.db.connection() as conn:
                jobs_repo.fail_stopped(
                    conn,
                    finished.job_id,
                    finished.task_id,
                    ErrorCode.TIMEOUT,
                    f"The job did not finish within the {limit}-second processing time limit, so its worker was "
                    "stopped. Try a shorter or smaller input, or ask the platform operator for a longer limit.",
                )
        self.service.task_stopped(finished.to_stopped_task())

    def shutdown(self) -> None:
        """Stop every worker; their jobs end FAILED (TASK_STOPPED) rather than RUNNING forever."""
        with self._lock:
            for finished in self.launcher.shutdown():
                with contextlib.suppress(Exception):
                    self.settle(finished)
            self.service.close()


def _kill_orphan_worker(task_arn: str, job_id: str) -> None:
    """Kill a worker left by a supervisor that was killed, if that pid is still our worker.

    A pool worker kills itself when its supervisor goes (runtime.local.pool_worker), so only a
    one-shot worker, whose command line names the job, is looked for."""
    pid = local_pid(task_arn)
    if pid is None:
        return
    cmdline = " ".join(command_line(pid) or [])
    if "runtime.worker" in cmdline and job_id in cmdline:
        log.warning("stopping a worker left by the previous run", extra={"job_id": job_id, "pid": pid})
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
