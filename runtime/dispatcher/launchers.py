"""Where a claimed job's worker runs, behind :class:`Launcher`: one ECS Fargate task here.

The SQS Lambda and the local platform share the same claim-launch-record code
(:func:`runtime.dispatcher.core.dispatch`) and differ only in their launcher: this module's
:class:`EcsLauncher`, or the local platform's subprocesses (runtime.local.launcher, which is
not part of the Lambda bundle). A launcher only starts and stops workers; it never touches
the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
