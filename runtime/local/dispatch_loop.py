"""The local dispatcher: the SQS event source and ECS, replaced by a loop and subprocesses.

It long-polls the job queue and hands each message to the same core the Lambda uses
(:func:`runtime.dispatcher.core.dispatch`) with a :class:`LocalProcessLauncher`, taking only
as many messages as there are free worker slots. Handled messages are deleted; messages to
retry are left to become visible again (and reach the DLQ after ``maxReceiveCount``). The
DLQ is drained through :func:`core.fail_dead_letter`, and every worker that exits is passed
to :func:`core.task_stopped`, so a crashed or killed worker leaves its job FAILED, not stuck.
Every ``sweep_interval_seconds`` (60) the loop also runs the same sweeper as the scheduled
Lambda (:func:`runtime.dispatcher.sweeper.sweep`): stale QUEUED jobs get their message again,
lost workers' jobs end FAILED (TIMEOUT), stale PENDING uploads end UPLOADED or EXPIRED.
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

from runtime.dispatcher import core
from runtime.dispatcher.launchers import LOCAL_PREFIX, LocalProcessLauncher
from runtime.dispatcher.sweeper import SweepConfig, SweepReport, s3_object_size, sqs_sender, sweep
from runtime.local.processes import command_line
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.settings import Settings
from runtime.shared.status import JobStatus

log = logging.getLogger("transcodex.local.dispatcher")


def worker_command(log_path: Path, container: Sequence[str] = ()) -> tuple[str, ...]:
    """The worker's argv, its output appended to the platform log (see runtime.local.worker_exec).

    ``container``: an argv that runs the worker image (runtime.local.images.container_worker_argv)
    instead of the worker module in this Python.
    """
    worker = tuple(container) or (sys.executable, "-m", "runtime.worker", "--job-id", "{job_id}")
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
    ) -> None:
        """``env`` is added to the workers' environment (the platform's TRANSCODEX_* settings);
        the sweeper's TRANSCODEX_SWEEP_* thresholds are read from it (default: this process's).
        ``worker_image``: run each worker inside that image (podman/docker) instead of as a module."""
        self.settings = settings
        self.worker_image = worker_image
        self.db = dbm.Database(dbm.database_url(settings), max_size=4)
        container: tuple[str, ...] = ()
        if worker_image:
            from runtime.local.images import container_worker_argv, engine_env

            container = container_worker_argv(worker_image, dict(env or {}))
            env = {**(env or {}), "CONTAINERS_CONF": engine_env()["CONTAINERS_CONF"]}
        self.launcher = LocalProcessLauncher(
            max_workers=concurrency, command=worker_command(log_path, container), env=dict(env or {})
        )
        self.sqs = client("sqs", settings)
        self.s3 = client("s3", settings)
        self.sweep_config = SweepConfig.from_env(settings, env if env is not None else os.environ)
        self.sweep_interval_seconds = sweep_interval_seconds
        self._next_sweep = time.monotonic()
        self._lock = threading.Lock()

    # --- startup recovery -----------------------------------------------------------------------

    def recover(self) -> dict[str, int]:
        """Settle jobs the previous run left in flight; queue again the ones that never started.

        moto's queue does not survive a restart, but the database does: QUEUED jobs (and claims
        with no worker) get a fresh message; jobs whose worker belonged to the previous run end
        FAILED through the task-stopped core, after that worker is stopped if it is still alive.
        """
        requeued = failed = 0
        with self.db.connection() as conn:
            rows = jobs_repo.unfinished(conn)
        for row in rows:
            job_id, status, task_arn = str(row["id"]), JobStatus(row["status"]), row["task_arn"]
            if status is JobStatus.DISPATCHED and task_arn is None:
                with self.db.connection() as conn:
                    jobs_repo.transition(conn, job_id, JobStatus.QUEUED, from_statuses=[JobStatus.DISPATCHED])
                status = JobStatus.QUEUED
            if status is JobStatus.QUEUED:
                self.sqs.send_message(QueueUrl=self.settings.queue_url, MessageBody=JobMessage(job_id).to_body())
                requeued += 1
                continue
            if task_arn and task_arn.startswith(LOCAL_PREFIX):
                _kill_orphan_worker(task_arn, job_id)
            if self.worker_image:
                from runtime.local.images import remove_container

                if remove_container(job_id):
                    log.warning("removed a worker container left by the previous run", extra={"job_id": job_id})
            stopped = core.StoppedTask(
                task_id=task_arn or "",
                job_id=job_id,
                stop_code="PlatformStopped",
                stopped_reason="the local platform stopped while this job was running",
            )
            if core.task_stopped(self.db, stopped) is not None:
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
        """One sweep, as the scheduled Lambda does on AWS (runtime.dispatcher.sweeper)."""
        return sweep(
            self.db,
            self.sweep_config,
            send_job=sqs_sender(self.sqs, self.settings.queue_url),
            object_size=s3_object_size(self.s3, self.settings.input_bucket),
        )

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
        response = self.sqs.receive_message(
            QueueUrl=self.settings.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        for message in response.get("Messages", []):
            try:
                outcome = core.dispatch(self.db, self.launcher, message["Body"], message_id=message["MessageId"])
            except Exception:
                # Left on the queue: it comes back after the visibility timeout (or goes to the DLQ).
                log.exception(
                    "dispatch failed; the message will be retried", extra={"message_id": message["MessageId"]}
                )
                continue
            if not outcome.retry:
                self.sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _drain_dlq(self) -> None:
        if not self.settings.dlq_url:
            return
        response = self.sqs.receive_message(QueueUrl=self.settings.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in response.get("Messages", []):
            try:
                core.fail_dead_letter(self.db, message["Body"], message_id=message["MessageId"])
            except Exception:
                log.exception("dead letter not handled; will retry", extra={"message_id": message["MessageId"]})
                continue
            self.sqs.delete_message(QueueUrl=self.settings.dlq_url, ReceiptHandle=message["ReceiptHandle"])

    def reap(self) -> list[str]:
        """Apply the task-stopped core to every worker that exited; return their job ids."""
        jobs = []
        for finished in self.launcher.poll():
            jobs.append(finished.job_id)
            try:
                core.task_stopped(self.db, finished.to_stopped_task())
            except Exception:
                log.exception("could not settle a stopped worker", extra={"job_id": finished.job_id})
        return jobs

    def shutdown(self) -> None:
        """Stop every worker; their jobs end FAILED (TASK_STOPPED) rather than RUNNING forever."""
        with self._lock:
            for finished in self.launcher.shutdown():
                with contextlib.suppress(Exception):
                    core.task_stopped(self.db, finished.to_stopped_task())
            self.db.close()


def _kill_orphan_worker(task_arn: str, job_id: str) -> None:
    """Kill a worker left by a supervisor that was killed, if that pid is still our worker."""
    pid_text = task_arn.removeprefix(LOCAL_PREFIX)
    if not pid_text.isdigit():
        return
    pid = int(pid_text)
    cmdline = " ".join(command_line(pid) or [])
    if "runtime.worker" in cmdline and job_id in cmdline:
        log.warning("stopping a worker left by the previous run", extra={"job_id": job_id, "pid": pid})
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
