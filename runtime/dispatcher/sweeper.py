"""The sweeper: finds jobs and uploads that no event will ever settle, and settles them.

Three passes, each bounded per run and each change one guarded UPDATE (so concurrent
sweepers, a late worker or a late API call cannot be overwritten):

* **requeue** — a job QUEUED for longer than ``requeue_after_seconds`` may have no message
  (the API died between inserting the job and sending it): a fresh job message is sent.
  ``updated_at`` is bumped by the same UPDATE that selects the job, so one job gets at most
  one extra message per interval; the dispatcher's guarded claim makes a duplicate harmless.
* **timeout** — a job RUNNING longer than the worker's wall time plus a grace period (or
  DISPATCHED with a task for that long) lost its worker without an ECS event: it ends FAILED
  with ``TIMEOUT``.
* **uploads** — an upload PENDING for longer than the presigned URL lifetime plus a grace
  period can no longer be uploaded to: it becomes UPLOADED if the object is in S3 (the client
  never called ``/complete`` or ``/process``), else EXPIRED. An object over the input limit
  (an unsized PUT is not bounded by S3) is deleted and the upload EXPIRED.
* **media deletions** — a deleted account's objects under ``input/{user}/`` and
  ``output/{user}/`` are deleted (runtime.shared.repo.deletions): a bounded number per run,
  failures recorded and retried with backoff, and a last pass once no worker of the user can
  still be writing.

The AWS side (SQS, S3) comes in as callables; runtime.dispatcher.service.DispatcherService.sweep
passes its job queue and input bucket, for the scheduled Lambda and the local platform's loop alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from runtime.shared import aws
from runtime.shared import db as dbm
from runtime.shared.keys import INPUT_PREFIX, OUTPUT_PREFIX
from runtime.shared.log import bind
from runtime.shared.messages import JobMessage
from runtime.shared.repo import deletions as deletions_repo
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.settings import UPLOAD_URL_TTL_SECONDS, ConfigError, Limits, Settings, read_int
from runtime.shared.status import ErrorCode, UploadStatus
from runtime.shared.storage import head_size

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

#: Environment variables of the thresholds (seconds, except the limit); see :class:`SweepConfig`.
ENV_REQUEUE_AFTER = "TRANSCODEX_SWEEP_REQUEUE_AFTER_SECONDS"
ENV_RUNNING_GRACE = "TRANSCODEX_SWEEP_RUNNING_GRACE_SECONDS"
ENV_UPLOAD_TTL = "TRANSCODEX_SWEEP_UPLOAD_URL_TTL_SECONDS"
ENV_UPLOAD_GRACE = "TRANSCODEX_SWEEP_UPLOAD_GRACE_SECONDS"
ENV_BATCH_LIMIT = "TRANSCODEX_SWEEP_BATCH_LIMIT"

#: Sends one job message body to the job queue.
SendJob = Callable[[str], None]
#: The size of an input object, or None when it does not exist (raises when unknown).
ObjectSize = Callable[[str], "int | None"]
#: Deletes one input object (a missing one is no error).
DeleteInput = Callable[[str], None]
#: Deletes up to ``limit`` objects of a user in both buckets: (how many, whether none is left).
DeleteMedia = Callable[[str, int], "tuple[int, bool]"]


@dataclass(frozen=True)
class SweepConfig:
    """Thresholds of one sweep."""

    #: A job QUEUED (not touched) for longer than this gets its message sent again.
    requeue_after_seconds: int = 600
    #: The worker's wall time (``TRANSCODEX_WORKER_TIMEOUT_SECONDS``).
    worker_timeout_seconds: int = 3600
    #: Added to the wall time before a RUNNING job is declared lost (upload of outputs, clock skew).
    running_grace_seconds: int = 600
    #: Lifetime of the API's presigned upload URLs.
    upload_url_ttl_seconds: int = UPLOAD_URL_TTL_SECONDS
    #: Added to the URL lifetime: a PUT started just before expiry may still be transferring.
    upload_grace_seconds: int = 3600
    #: Most changes per pass and run (the next run takes the rest).
    batch_limit: int = 100
    #: Largest accepted input (``TRANSCODEX_MAX_INPUT_BYTES``): a stale upload's larger object is deleted.
    max_input_bytes: int = Limits.max_input_bytes
    #: Objects deleted per account deletion and run (the next run deletes more).
    media_objects_per_run: int = 10_000
    #: How long a claimed account deletion stays with its sweeper before another may retry it.
    media_lease_seconds: int = 900

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> SweepConfig:
        """Thresholds from ``TRANSCODEX_SWEEP_*`` (defaults above); the wall time from the settings."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def number(name: str, default: int, minimum: int) -> int:
            return read_int(env, name, default, problems, minimum)

        config = cls(
            requeue_after_seconds=number(ENV_REQUEUE_AFTER, cls.requeue_after_seconds, 60),
            worker_timeout_seconds=settings.limits.worker_timeout_seconds,
            max_input_bytes=settings.limits.max_input_bytes,
            running_grace_seconds=number(ENV_RUNNING_GRACE, cls.running_grace_seconds, 0),
            upload_url_ttl_seconds=number(ENV_UPLOAD_TTL, cls.upload_url_ttl_seconds, 1),
            upload_grace_seconds=number(ENV_UPLOAD_GRACE, cls.upload_grace_seconds, 0),
            batch_limit=number(ENV_BATCH_LIMIT, cls.batch_limit, 1),
        )
        if problems:
            raise ConfigError(problems)
        return config


@dataclass
class SweepReport:
    """What one sweep changed (ids), and how many items it could not settle this time."""

    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    uploads_completed: list[str] = field(default_factory=list)
    uploads_expired: list[str] = field(default_factory=list)
    #: Oversized objects of stale uploads deleted (their uploads are in ``uploads_expired``).
    oversized_deleted: list[str] = field(default_factory=list)
    #: Objects of deleted accounts removed, and the accounts whose deletion finished.
    media_objects_deleted: int = 0
    media_deletions_finished: list[str] = field(default_factory=list)
    errors: int = 0

    @property
    def changed(self) -> int:
        return (
            len(self.requeued)
            + len(self.timed_out)
            + len(self.uploads_completed)
            + len(self.uploads_expired)
            + self.media_objects_deleted
            + len(self.media_deletions_finished)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "requeued": len(self.requeued),
            "timed_out": len(self.timed_out),
            "uploads_completed": len(self.uploads_completed),
            "uploads_expired": len(self.uploads_expired),
            "oversized_deleted": len(self.oversized_deleted),
            "media_objects_deleted": self.media_objects_deleted,
            "media_deletions_finished": len(self.media_deletions_finished),
            "errors": self.errors,
        }


@aws.acting_as("sweeper")
def sweep(
    db: dbm.Database,
    config: SweepConfig,
    *,
    send_job: SendJob,
    object_size: ObjectSize,
    delete_input: DeleteInput | None = None,
    delete_media: DeleteMedia | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """Run the passes once. ``now`` (default: the database's clock) dates the thresholds.

    A failed send, HEAD or delete is logged and counted in ``errors``; the item is retried by a
    later run. A database error propagates. Without ``delete_media`` (a sweeper built without
    the output bucket) the media deletions wait for one that has it.
    """
    report = SweepReport()
    _requeue(db, config, send_job, now, report)
    _time_out(db, config, now, report)
    _settle_uploads(db, config, object_size, delete_input, now, report)
    if delete_media is not None:
        _delete_media(db, config, delete_media, report)
    if report.changed or report.errors:
        log.info("sweep done", extra=report.as_dict())
    return report


# --- passes ----------------------------------------------------------------------------------


def _requeue(
    db: dbm.Database, config: SweepConfig, send_job: SendJob, now: datetime | None, report: SweepReport
) -> None:
    with db.connection() as conn:
        job_ids = jobs_repo.touch_stale_queued(conn, config.requeue_after_seconds, config.batch_limit, now)
    for job_id in job_ids:
        with bind(job_id=job_id):
            try:
                send_job(JobMessage(job_id).to_body())
            except Exception as err:  # the job is picked up again after another interval
                report.errors += 1
                log.error("could not re-send a stale queued job's message", extra={"error": str(err)})
                continue
            report.requeued.append(job_id)
            log.warning(
                "job queued too long; its message was sent again",
                extra={"queued_for_more_than_seconds": config.requeue_after_seconds},
            )


def timeout_message(config: SweepConfig) -> str:
    return (
        f"The worker did not record a result within the {config.worker_timeout_seconds}-second processing "
        f"time limit (plus {config.running_grace_seconds} s of grace): it stopped without reporting, for "
        "example because its task was lost. Submit the job again; if it times out again, try a shorter or "
        "smaller input, or ask the platform operator for a longer worker time limit."
    )


def _time_out(db: dbm.Database, config: SweepConfig, now: datetime | None, report: SweepReport) -> None:
    with db.connection() as conn:
        rows = jobs_repo.fail_lost(
            conn,
            config.worker_timeout_seconds + config.running_grace_seconds,
            config.batch_limit,
            now,
            ErrorCode.TIMEOUT,
            timeout_message(config),
        )
    for row in rows:
        report.timed_out.append(str(row["id"]))
        log.error(
            "job failed: its worker exceeded the time limit without reporting",
            extra={"job_id": str(row["id"]), "task_arn": row["task_arn"], "error_code": ErrorCode.TIMEOUT.value},
        )


def _settle_uploads(
    db: dbm.Database,
    config: SweepConfig,
    object_size: ObjectSize,
    delete_input: DeleteInput | None,
    now: datetime | None,
    report: SweepReport,
) -> None:
    age = config.upload_url_ttl_seconds + config.upload_grace_seconds
    with db.connection() as conn:
        stale = uploads_repo.stale_pending(conn, age, config.batch_limit, now)
    for upload in stale:
        upload_id = str(upload["id"])
        try:
            size = object_size(str(upload["object_key"]))
        except Exception as err:  # unknown: decide on a later run, after the rows not tried yet
            report.errors += 1
            log.error("could not check a stale upload's object", extra={"upload_id": upload_id, "error": str(err)})
            with db.connection() as conn:
                uploads_repo.mark_checked(conn, upload_id)
            continue
        if size is not None and size > config.max_input_bytes:
            try:
                if delete_input is None:
                    raise RuntimeError("this sweeper cannot delete input objects")
                delete_input(str(upload["object_key"]))
            except Exception as err:  # kept PENDING: the next run tries again
                report.errors += 1
                log.error("could not delete an oversized upload", extra={"upload_id": upload_id, "error": str(err)})
                with db.connection() as conn:
                    uploads_repo.mark_checked(conn, upload_id)
                continue
            report.oversized_deleted.append(upload_id)
            log.warning("oversized upload deleted", extra={"upload_id": upload_id, "size_bytes": size})
            size = None
        with db.connection() as conn:
            if size is None:
                row = uploads_repo.expire(conn, upload_id)
                target = report.uploads_expired
            else:
                row = uploads_repo.mark_uploaded(conn, upload_id, size, from_statuses=[UploadStatus.PENDING])
                target = report.uploads_completed
        if row is not None:
            target.append(upload_id)
            log.info(
                "stale upload settled",
                extra={
                    "upload_id": upload_id,
                    "status": (UploadStatus.EXPIRED if size is None else UploadStatus.UPLOADED).value,
                },
            )


def _delete_media(db: dbm.Database, config: SweepConfig, delete_media: DeleteMedia, report: SweepReport) -> None:
    settle = config.worker_timeout_seconds + config.running_grace_seconds
    with db.connection() as conn:
        due = deletions_repo.claim_due(conn, config.batch_limit, config.media_lease_seconds, settle)
    for row in due:
        user_id = str(row["user_id"])
        with bind(user_id=user_id):
            try:
                deleted, done = delete_media(user_id, config.media_objects_per_run)
            except Exception as err:  # recorded, retried with backoff
                report.errors += 1
                log.error("could not delete a deleted account's media", extra={"error": str(err)})
                with db.connection() as conn:
                    deletions_repo.record_failure(conn, row["id"], str(err), row["attempts"])
                continue
            with db.connection() as conn:
                deletions_repo.record_pass(
                    conn, row["id"], deleted, done=done, settled=bool(row["settled"]), settle_seconds=settle
                )
            report.media_objects_deleted += deleted
            if done and row["settled"]:
                report.media_deletions_finished.append(user_id)
                log.info("deleted account's media deleted", extra={"objects": deleted})


# --- AWS adapters ------------------------------------------------------------------------------


def s3_object_size(s3: S3Client, bucket: str) -> ObjectSize:
    """HEAD objects of ``bucket``: the size, None on 404; anything else raises."""
    return partial(head_size, s3, bucket)


def s3_delete_input(s3: S3Client, bucket: str) -> DeleteInput:
    """DeleteObject in ``bucket`` (S3 answers a missing key with success)."""

    def delete(key: str) -> None:
        s3.delete_object(Bucket=bucket, Key=key)

    return delete


def s3_media_deleter(s3: S3Client, input_bucket: str, output_bucket: str) -> DeleteMedia:
    """Deletes a user's objects under ``input/{user}/`` and ``output/{user}/``, a page of at
    most 1000 keys at a time (ListObjectsV2 + DeleteObjects); a key S3 could not delete raises."""

    def delete(user_id: str, limit: int) -> tuple[int, bool]:
        deleted = 0
        for bucket, prefix in (
            (input_bucket, f"{INPUT_PREFIX}{user_id}/"),
            (output_bucket, f"{OUTPUT_PREFIX}{user_id}/"),
        ):
            while True:
                if deleted >= limit:
                    return deleted, False
                page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=min(1000, limit - deleted))
                objects: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not objects:
                    break
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise RuntimeError(
                        f"S3 did not delete {len(answer['Errors'])} objects: {first.get('Code')} {first.get('Key')}"
                    )
                deleted += len(objects)
        return deleted, True

    return delete
