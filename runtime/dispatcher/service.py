"""The dispatcher as one object: its database, launcher, job queue, input bucket and thresholds,
with one method per thing that happens to a job between the API and the worker.

The Lambda handlers (runtime.dispatcher.handler) and the local platform's loop
(runtime.local.dispatch_loop) both call these methods, and add only what their transport
needs: an event parsed into :class:`QueueMessage` and the result mapped to
``batchItemFailures``, or ReceiveMessage before and DeleteMessage after. The decisions are
runtime.dispatcher.core's (one message, one stopped task) and runtime.dispatcher.sweeper's.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from runtime.dispatcher import core
from runtime.dispatcher.launchers import Launcher
from runtime.dispatcher.sweeper import (
    DeleteInput,
    DeleteMedia,
    ObjectSize,
    SweepConfig,
    SweepReport,
    s3_delete_input,
    s3_media_deleter,
    s3_object_size,
    sweep,
)
from runtime.shared import aws, estimate
from runtime.shared.db import Database, Row, open_database
from runtime.shared.log import bind
from runtime.shared.settings import DISPATCH_CLAIM_TIMEOUT_ENV, ConfigError, Settings
from runtime.shared.sqs import QueueMessage, SqsQueue

log = logging.getLogger(__name__)

#: Seconds after which a claim with no task recorded is taken over (see repo.jobs.reclaim_stale_claim);
#: constructs_lib.dispatcher sets it above the function timeout and below the queue's visibility.
CLAIM_TIMEOUT_ENV = DISPATCH_CLAIM_TIMEOUT_ENV
#: Time kept in hand per invocation: one RunTask with botocore's throttling retries fits in it.
RESERVE_MS = 15_000

_T = TypeVar("_T")


@dataclass(frozen=True)
class DispatcherConfig:
    """The thresholds the dispatcher's decisions depend on."""

    claim_timeout_seconds: float = core.DEFAULT_CLAIM_TIMEOUT_SECONDS
    #: The worker's container in the task definition: its exit explains a stopped task.
    container_name: str = "worker"
    sweep: SweepConfig = field(default_factory=SweepConfig)
    #: A batch hands back the records not started before the last this many milliseconds.
    reserve_ms: float = RESERVE_MS
    #: Where jobs may run and on what sizes (runtime.shared.estimate); None: the launcher's defaults.
    bounds: estimate.Bounds | None = None
    #: The list price a run is costed at: "x86", "arm" or "spot".
    price_class: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> DispatcherConfig:
        """The claim timeout from ``settings``; ``TRANSCODEX_SWEEP_*`` from ``env`` (default: this process's)."""
        env = os.environ if env is None else env
        return cls(
            claim_timeout_seconds=float(settings.dispatch_claim_timeout_seconds or core.DEFAULT_CLAIM_TIMEOUT_SECONDS),
            container_name=settings.ecs_container_name,
            sweep=SweepConfig.from_env(settings, env),
            bounds=estimate.bounds(settings),
            price_class=price_class(settings),
        )


@dataclass(frozen=True)
class Settled:
    """What a batch of messages came to: the handled ones (delete them) and the ones SQS must
    deliver again (a retry, or the dead-letter queue once the receive count runs out)."""

    handled: tuple[QueueMessage, ...] = ()
    retry: tuple[QueueMessage, ...] = ()


@dataclass
class DispatcherService:
    """The parts are optional because each deployed function has only its own: the queue
    function a launcher, the sweeper the queue and the input bucket, the others the database."""

    db: Database
    config: DispatcherConfig = field(default_factory=DispatcherConfig)
    launcher: Launcher | None = None
    #: The job queue, where the sweeper sends a stale job's message again.
    queue: SqsQueue | None = None
    #: HEAD of an input object (the sweeper's check of a stale upload).
    object_size: ObjectSize | None = None
    #: DELETE of an input object (a stale upload over the input limit).
    delete_input: DeleteInput | None = None
    #: Deletes a deleted account's objects in both buckets.
    delete_media: DeleteMedia | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        launcher: Launcher | None = None,
        queue: bool = False,
        storage: bool = False,
        pool_size: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> DispatcherService:
        """A service on ``settings``: a pool of ``pool_size``, the job queue when ``queue``, the
        input bucket when ``storage``. Raises ConfigError before opening anything."""
        if queue and not settings.queue_url:
            raise ConfigError(["TRANSCODEX_QUEUE_URL is required"])
        if storage and not settings.input_bucket:
            raise ConfigError(["TRANSCODEX_INPUT_BUCKET is required"])
        config = DispatcherConfig.from_settings(settings, env)
        s3 = aws.client("s3", settings) if storage else None
        return cls(
            db=open_database(settings, max_size=pool_size),
            config=config,
            launcher=launcher,
            queue=SqsQueue(aws.client("sqs", settings), settings.queue_url) if queue else None,
            object_size=s3_object_size(s3, settings.input_bucket) if s3 else None,
            delete_input=s3_delete_input(s3, settings.input_bucket) if s3 else None,
            delete_media=(
                s3_media_deleter(s3, settings.input_bucket, settings.output_bucket)
                if s3 and settings.output_bucket
                else None
            ),
        )

    # --- the job queue ----------------------------------------------------------------------

    @aws.acting_as("dispatcher")
    def dispatch_batch(
        self, messages: Iterable[QueueMessage], time_left_ms: Callable[[], float] | None = None
    ) -> Settled:
        """Dispatch every job message (:func:`core.dispatch`).

        With ``time_left_ms`` (the Lambda context's clock), records not started before the last
        ``reserve_ms`` (at most a quarter of the time there was at the start) are handed back
        untouched, so a slow, throttled RunTask cannot make the invocation time out mid-claim.
        An unexpected error (a database outage) retries that message only.
        """
        launcher = _required(self.launcher, "a launcher")
        clock = time_left_ms or (lambda: math.inf)
        reserve_ms = min(self.config.reserve_ms, clock() / 4)
        handled: list[QueueMessage] = []
        retry: list[QueueMessage] = []
        for message in messages:
            with bind(message_id=message.message_id, receive_count=message.receive_count):
                if clock() < reserve_ms:
                    log.warning("too little time left to dispatch; handing the message back")
                    retry.append(message)
                    continue
                try:
                    outcome = core.dispatch(
                        self.db,
                        launcher,
                        message.body,
                        message_id=message.message_id,
                        claim_timeout_seconds=self.config.claim_timeout_seconds,
                        bounds=self.config.bounds,
                        price_class=self.config.price_class,
                    )
                except Exception:  # a database outage must not lose the other records' results
                    log.exception("dispatch failed unexpectedly; the message will be retried")
                    retry.append(message)
                    continue
                log.info("message handled", extra={"outcome": outcome.value})
                (retry if outcome.retry else handled).append(message)
        return Settled(tuple(handled), tuple(retry))

    @aws.acting_as("dead-letter")
    def fail_dead_letters(self, messages: Iterable[QueueMessage]) -> Settled:
        """Fail the job of every dead-lettered message (:func:`core.fail_dead_letter`); a
        database error retries that message only."""
        handled: list[QueueMessage] = []
        retry: list[QueueMessage] = []
        for message in messages:
            with bind(message_id=message.message_id):
                try:
                    core.fail_dead_letter(self.db, message.body, message_id=message.message_id)
                except Exception:
                    log.exception("could not record a dead-lettered job; retrying")
                    retry.append(message)
                    continue
                handled.append(message)
        return Settled(tuple(handled), tuple(retry))

    # --- workers and the sweeper --------------------------------------------------------------

    @aws.acting_as("task-state")
    def task_stopped(self, stopped: core.StoppedTask) -> Row | None:
        """A worker stopped: its non-terminal job ends FAILED (:func:`core.task_stopped`)."""
        return core.task_stopped(self.db, stopped)

    @aws.acting_as("sweeper")
    def sweep(self, now: datetime | None = None) -> SweepReport:
        """One sweep (runtime.dispatcher.sweeper): stale QUEUED jobs get their message again,
        lost workers' jobs end FAILED (TIMEOUT), stale uploads end UPLOADED or EXPIRED."""
        queue = _required(self.queue, "the job queue")
        return sweep(
            self.db,
            self.config.sweep,
            send_job=queue.send,
            object_size=_required(self.object_size, "the input bucket"),
            delete_input=self.delete_input,
            delete_media=self.delete_media,
            now=now,
        )

    def close(self) -> None:
        self.db.close()


def price_class(settings: Settings) -> str:
    """Which list price the deployment's runs are costed at (runtime.shared.prices)."""
    if settings.ecs_capacity_provider == "FARGATE_SPOT":
        return "spot"
    return "arm" if settings.runners.worker_architecture == "ARM64" else "x86"


def _required(part: _T | None, name: str) -> _T:
    if part is None:
        raise ConfigError([f"this dispatcher was built without {name}"])
    return part
