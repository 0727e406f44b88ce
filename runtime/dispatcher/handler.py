"""Lambda entry points: each parses its event, calls the DispatcherService, maps the result.

* ``handle_sqs`` — the job queue's event source (ReportBatchItemFailures): returns the
  records SQS must deliver again.
* ``handle_dlq`` — the dead-letter queue's event source: the jobs end FAILED (DISPATCH_FAILED).
* ``handle_task_state_change`` — EventBridge "ECS Task State Change" (STOPPED) events.
* ``handle_sweep`` — an EventBridge schedule: settles stuck jobs and stale uploads.

Each function's service (runtime.dispatcher.service) is built at its first invocation with
only the parts that function's role may use, and reused while the execution environment lives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from runtime.dispatcher.core import StoppedTask
from runtime.dispatcher.launchers import EcsConfig, EcsLauncher, LambdaLauncher, RoutingLauncher
from runtime.dispatcher.service import DispatcherService, Settled
from runtime.shared import aws
from runtime.shared.log import configure
from runtime.shared.settings import load_settings
from runtime.shared.sqs import QueueMessage

#: Database pool per execution environment (stacks/quotas.py counts connections with these).
DISPATCHER_POOL_SIZE = 2
SWEEPER_POOL_SIZE = 1

_services: dict[str, DispatcherService] = {}
_lock = threading.Lock()


#: The settings sections each role validates at start-up (the rest need the database only).
_SECTIONS = {"dispatcher": ("database", "ecs"), "sweeper": ("database", "queue")}


def _build(component: str) -> DispatcherService:
    settings = load_settings(sections=_SECTIONS.get(component, ("database",)))
    configure(settings.log_level)
    if component == "dispatcher":
        fargate = EcsLauncher(EcsConfig.from_settings(settings), aws.client("ecs", settings))
        function = settings.runners.worker_function
        launcher = RoutingLauncher(
            fargate, LambdaLauncher(function, aws.client("lambda", settings)) if function else None
        )
        return DispatcherService.from_settings(settings, launcher=launcher, pool_size=DISPATCHER_POOL_SIZE)
    if component == "sweeper":
        return DispatcherService.from_settings(settings, queue=True, storage=True, pool_size=SWEEPER_POOL_SIZE)
    return DispatcherService.from_settings(settings, pool_size=DISPATCHER_POOL_SIZE)


def service(component: str) -> DispatcherService:
    """The service of ``component`` (an aws.COMPONENTS name), built on first use: its AWS clients
    are made, and their calls recorded, under that component."""
    with _lock:
        if component not in _services:
            with aws.acting_as(component):
                _services[component] = _build(component)
        return _services[component]


def reset() -> None:
    """Forget the cached services (closes the pools): for tests and configuration reloads."""
    with _lock:
        for built in _services.values():
            built.close()
        _services.clear()


def _messages(event: dict[str, Any]) -> list[QueueMessage]:
    return [QueueMessage.from_event_record(record) for record in event.get("Records") or []]


def _batch_item_failures(settled: Settled) -> dict[str, list[dict[str, str]]]:
    return {"batchItemFailures": [{"itemIdentifier": m.message_id} for m in settled.retry]}


def _clock(context: object) -> Callable[[], float] | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: float(getter())) if callable(getter) else None


@aws.acting_as("dispatcher")
def handle_sqs(event: dict[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    """Dispatch every record; report the ones to retry as batch item failures."""
    settled = service("dispatcher").dispatch_batch(_messages(event), time_left_ms=_clock(context))
    return _batch_item_failures(settled)


@aws.acting_as("dead-letter")
def handle_dlq(event: dict[str, Any], context: object) -> dict[str, list[dict[str, str]]]:
    """Fail the job of every dead-lettered message; a database error retries that record only."""
    return _batch_item_failures(service("dead-letter").fail_dead_letters(_messages(event)))


@aws.acting_as("task-state")
def handle_task_state_change(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Fail the non-terminal job of a STOPPED task. Errors raise, so EventBridge retries."""
    svc = service("task-state")
    detail = event.get("detail") or {}
    if detail.get("lastStatus") != "STOPPED":
        return {"failed": False, "ignored": f"lastStatus {detail.get('lastStatus')!r}"}
    stopped = StoppedTask.from_ecs_event(detail, svc.config.container_name)
    job = svc.task_stopped(stopped)
    return {"failed": job is not None, "job_id": str(job["id"]) if job else stopped.job_id}


@aws.acting_as("sweeper")
def handle_sweep(event: dict[str, Any], context: object) -> dict[str, Any]:
    """One sweep (scheduled): returns the counts; a database error raises (the next schedule
    tries again)."""
    return service("sweeper").sweep().as_dict()
