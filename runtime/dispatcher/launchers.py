"""Where a claimed job's worker runs: one ECS Fargate task, or one local subprocess.

Both sit behind :class:`Launcher`, so the SQS Lambda and the local platform share the
same claim-launch-record code (:func:`runtime.dispatcher.core.dispatch`). A launcher only
starts and stops workers; it never touches the database.
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
from typing import Any, Protocol, runtime_checkable

from botocore.exceptions import BotoCoreError, ClientError

from runtime.shared.settings import Settings

log = logging.getLogger(__name__)

#: ECS error codes that mean "try again later" (the claim is released either way; this only
#: labels the log line and the exception so operators can tell load from misconfiguration).
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "LimitExceededException"}
)


@dataclass(frozen=True)
class LaunchRequest:
    """What a launcher needs to start the worker for one claimed job."""

    job_id: str
    user_id: str
    #: The job's dispatch_count at this claim; with the job id it makes RunTask's clientToken,
    #: so a re-claimed stale claim (crash after RunTask) gets the same task back, not a second one.
    attempt: int = 1

    @property
    def client_token(self) -> str:
        return f"{self.job_id}-{self.attempt}"


class LaunchError(Exception):
    """The worker was not (or not knowingly) started; the job is retried.

    ``code`` is machine-readable (an AWS error code, ``RUN_TASK_FAILURES``, ``NO_CAPACITY``…);
    ``throttled`` marks load (throttling, capacity) as opposed to configuration problems.
    """

    def __init__(self, code: str, message: str, *, throttled: bool = False, ambiguous: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.throttled = throttled
        #: The request may have started a worker (a timeout, a 5xx): the claim must be kept, so
        #: the retry re-uses the same clientToken and ECS returns that worker instead of a second.
        self.ambiguous = ambiguous


@runtime_checkable
class Launcher(Protocol):
    """Starts and stops one worker per job."""

    def launch(self, request: LaunchRequest) -> str:
        """Start the worker for ``request``; return its task id (an ECS task ARN, ``local:<pid>``).

        Raises LaunchError when nothing was started.
        """
        ...

    def stop(self, task_id: str, reason: str) -> None:
        """Stop a worker started by this launcher (best effort; unknown ids are ignored)."""
        ...


# --- ECS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EcsConfig:
    """The RunTask parameters that do not depend on the job."""

    cluster: str
    task_definition: str
    container_name: str = "worker"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    #: Empty: launchType FARGATE. Otherwise e.g. FARGATE_SPOT, used as a capacity-provider strategy.
    capacity_provider: str = ""
    assign_public_ip: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EcsConfig:
        return cls(
            cluster=settings.ecs_cluster,
            task_definition=settings.ecs_task_definition,
            container_name=settings.ecs_container_name,
            subnets=settings.ecs_subnets,
            security_groups=settings.ecs_security_groups,
            capacity_provider=settings.ecs_capacity_provider,
            assign_public_ip=settings.ecs_assign_public_ip,
        )


class EcsLauncher:
    """Runs one Fargate task per job with ECS RunTask.

    ``client`` is a boto3 ECS client (``runtime.shared.aws.client("ecs", settings)``).
    """

    def __init__(self, config: EcsConfig, client: Any) -> None:
        self.config = config
        self.client = client

    def run_task_params(self, request: LaunchRequest) -> dict[str, Any]:
        """The RunTask request for one job (public so its shape can be checked in tests and docs)."""
        cfg = self.config
        params: dict[str, Any] = {
            "cluster": cfg.cluster,
            "taskDefinition": cfg.task_definition,
            "count": 1,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": list(cfg.subnets),
                    "securityGroups": list(cfg.security_groups),
                    "assignPublicIp": "ENABLED" if cfg.assign_public_ip else "DISABLED",
                }
            },
            "overrides": {
                "containerOverrides": [
                    {"name": cfg.container_name, "environment": [{"name": "JOB_ID", "value": request.job_id}]}
                ]
            },
            "tags": [{"key": "job-id", "value": request.job_id}, {"key": "user-id", "value": request.user_id}],
            "startedBy": "transcodex",
            "propagateTags": "TASK_DEFINITION",
            "enableECSManagedTags": True,
            "clientToken": request.client_token,
        }
        if cfg.capacity_provider:
            params["capacityProviderStrategy"] = [{"capacityProvider": cfg.capacity_provider, "weight": 1}]
        else:
            params["launchType"] = "FARGATE"
        return params

    def launch(self, request: LaunchRequest) -> str:
        try:
            response = self.client.run_task(**self.run_task_params(request))
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code") or "ClientError")
            message = str(error.get("Message") or err)
            throttled = code in THROTTLING_CODES or "rate exceeded" in message.lower()
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            raise LaunchError(code, message, throttled=throttled, ambiguous=status >= 500) from err
        except BotoCoreError as err:
            # Connection errors and read timeouts (after botocore's own retries): RunTask may
            # have started a task whose answer was lost.
            raise LaunchError(type(err).__name__, str(err), ambiguous=True) from err
        failures = response.get("failures") or []
        tasks = response.get("tasks") or []
        if failures or not tasks:
            # e.g. RESOURCE:MEMORY, AGENT, capacity unavailable: ECS started nothing.
            reasons = "; ".join(f"{f.get('reason')}{': ' + f['detail'] if f.get('detail') else ''}" for f in failures)
            raise LaunchError("RUN_TASK_FAILURES", reasons or "RunTask started no task", throttled=True)
        return str(tasks[0]["taskArn"])

    def stop(self, task_id: str, reason: str) -> None:
        try:
            self.client.stop_task(cluster=self.config.cluster, task=task_id, reason=reason[:255])
        except (ClientError, BotoCoreError):
            log.warning("could not stop task", exc_info=True, extra={"task_arn": task_id})


# --- local subprocesses -----------------------------------------------------------------------

LOCAL_PREFIX = "local:"
DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "runtime.worker", "--job-id", "{job_id}")


@dataclass(frozen=True)
class FinishedProcess:
    """A local worker that exited: feed it to ``core.task_stopped(db, stop.to_stopped_task())``."""

    job_id: str
    task_id: str
    exit_code: int

    def to_stopped_task(self) -> Any:
        from runtime.dispatcher.core import StoppedTask

        return StoppedTask.from_process_exit(job_id=self.job_id, task_id=self.task_id, exit_code=self.exit_code)


@dataclass
class _Running:
    job_id: str
    process: subprocess.Popen[bytes]


@dataclass
class LocalProcessLauncher:
    """Runs each job's worker as a subprocess, at most ``max_workers`` at once.

    The local platform should take a new message only while :attr:`free_slots` > 0, and call
    :meth:`poll` regularly (:meth:`wait` blocks until there is something to poll). Every exited
    worker comes back from poll() exactly once as a :class:`FinishedProcess`, to be passed to
    ``core.task_stopped`` so a worker that died (killed, crashed) without recording a result
    leaves its job FAILED, not RUNNING forever.
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

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> bool:
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
