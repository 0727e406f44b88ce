"""Where a claimed job's worker runs, behind :class:`Launcher`: an ECS Fargate task sized for
the job (:class:`EcsLauncher`), an asynchronous invocation of the worker Lambda
(:class:`LambdaLauncher`), chosen per job by :class:`RoutingLauncher` from the placement the
dispatcher computed (runtime.shared.estimate).

The SQS Lambda and the local platform share the same claim-launch-record code
(:func:`runtime.dispatcher.core.dispatch`) and differ only in their launcher: this module's
:class:`EcsLauncher`, or the local platform's subprocesses (runtime.local.launcher, which is
not part of the Lambda bundle). A launcher only starts and stops workers; it never touches
the database.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from botocore.exceptions import BotoCoreError, ClientError

from runtime.shared.estimate import Placement
from runtime.shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import KeyValuePairTypeDef, RunTaskRequestTypeDef, TaskOverrideTypeDef
    from mypy_boto3_lambda import LambdaClient

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
    #: Where and on what size it runs (None: the launcher's default).
    placement: Placement | None = None

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

    def __init__(self, config: EcsConfig, client: ECSClient) -> None:
        self.config = config
        self.client = client

    def run_task_params(self, request: LaunchRequest) -> RunTaskRequestTypeDef:
        """The RunTask request for one job (public so its shape can be checked in tests and docs)."""
        cfg = self.config
        environment: list[KeyValuePairTypeDef] = [{"name": "JOB_ID", "value": request.job_id}]
        overrides: TaskOverrideTypeDef = {
            "containerOverrides": [{"name": cfg.container_name, "environment": environment}]
        }
        placement = request.placement
        if placement is not None and placement.runner == "fargate":
            # Task-level overrides (Fargate accepts any valid cpu/memory pair at RunTask), and the
            # worker's own deadline so it records TIMEOUT before the sweeper has to.
            if placement.cpu:
                overrides["cpu"] = str(placement.cpu)
                overrides["memory"] = str(placement.memory_mib)
            environment.append({"name": "TRANSCODEX_WORKER_TIMEOUT_SECONDS", "value": str(placement.timeout_seconds)})
        params: RunTaskRequestTypeDef = {
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
            "overrides": overrides,
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
        except (ClientError, BotoCoreError) as err:
            raise _launch_error(err) from err
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


def _launch_error(err: ClientError | BotoCoreError) -> LaunchError:
    """A refused or unanswered start: throttling marked, a 5xx or lost answer ambiguous (the
    request may have started a worker)."""
    if isinstance(err, BotoCoreError):
        # Connection errors and read timeouts (after botocore's own retries).
        return LaunchError(type(err).__name__, str(err), ambiguous=True)
    error = err.response.get("Error", {})
    code = str(error.get("Code") or "ClientError")
    message = str(error.get("Message") or err)
    throttled = code in THROTTLING_CODES or "rate exceeded" in message.lower()
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return LaunchError(code, message, throttled=throttled, ambiguous=status >= 500)


# --- the worker Lambda ----------------------------------------------------------------------

#: Task ids of jobs on the worker Lambda: this prefix and the invocation's request id, which the
#: on-failure destination's record names again (``requestContext.requestId``).
LAMBDA_TASK_PREFIX = "lambda:"


class LambdaLauncher:
    """Invokes the worker Lambda asynchronously (InvocationType Event) with ``{"job_id": ...}``.

    Asynchronous, so the dispatcher does not wait for the job; the function's invoke
    configuration (constructs_lib.worker_function) retries nothing and sends a failed or
    expired invocation to the dead-letter queue, whose handler fails the job
    (runtime.dispatcher.core.fail_dead_letter), so a job on the Lambda is never left running.
    """

    def __init__(self, function_name: str, client: LambdaClient) -> None:
        self.function_name = function_name
        self.client = client

    def launch(self, request: LaunchRequest) -> str:
        payload = {"job_id": request.job_id, "attempt": request.attempt}
        try:
            response = self.client.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        except (ClientError, BotoCoreError) as err:
            raise _launch_error(err) from err
        # botocore always parses ResponseMetadata; a stubbed answer may leave it out
        request_id = str(response.get("ResponseMetadata", {}).get("RequestId") or "")
        if int(response.get("StatusCode") or 0) != 202 or not request_id:
            raise LaunchError("INVOKE_NOT_ACCEPTED", f"Invoke answered {response.get('StatusCode')}", ambiguous=True)
        return LAMBDA_TASK_PREFIX + request_id

    def stop(self, task_id: str, reason: str) -> None:
        """An invocation cannot be stopped: the worker sees the job is no longer RUNNING at its
        next progress write (or refuses to claim it) and ends."""
        log.info("a Lambda run cannot be stopped; its worker will notice", extra={"task_arn": task_id})


class RoutingLauncher:
    """Sends each job where its placement says: the worker Lambda or a Fargate task."""

    def __init__(self, fargate: Launcher, worker_function: Launcher | None = None) -> None:
        self.fargate = fargate
        self.worker_function = worker_function

    def _for(self, runner: str | None) -> Launcher:
        return self.worker_function if runner == "lambda" and self.worker_function is not None else self.fargate

    def launch(self, request: LaunchRequest) -> str:
        return self._for(request.placement.runner if request.placement else None).launch(request)

    def stop(self, task_id: str, reason: str) -> None:
        self._for("lambda" if task_id.startswith(LAMBDA_TASK_PREFIX) else None).stop(task_id, reason)
