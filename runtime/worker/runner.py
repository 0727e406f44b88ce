"""The job state machine: claim -> download -> limits -> process -> upload -> record -> finish.

Every way a run can end is decided here, in one place: SUCCEEDED with its outputs recorded
atomically, FAILED with an error code and a message a user can act on, or CANCELLED when the
API cancelled the job while we worked. Scratch space is always removed.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.shared import aws, keys
from runtime.shared import db as jobs_db
from runtime.shared.contract import ContractError, JobSpec, JobType, parse_job
from runtime.shared.log import bind
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import Settings
from runtime.shared.status import TERMINAL, ErrorCode, JobStatus
from runtime.worker import iframes, ladder_check, sandbox
from runtime.worker import image as image_ops
from runtime.worker import video as video_ops
from runtime.worker.errors import Cancelled, JobFailure, Stopped
from runtime.worker.outputs import LocalOutput
from runtime.worker.storage import ObjectMissing, S3Storage, Upload, cache_control_for

log = logging.getLogger("transcodex.worker")

#: Share of the progress bar for each stage (download, processing, upload).
DOWNLOADED, PROCESSED = 0.03, 0.92
UNEXPECTED = (
    "an unexpected error stopped processing; try again, and contact support with the job id if it happens again"
)


class JobNotFound(LookupError):
    """No job has this id (a wrong --job-id): nothing to record, a configuration error."""


class ProgressReporter:
    """Writes progress at a bounded rate and turns a status other than RUNNING into Cancelled.

    A write happens when the percentage changed and ``min_interval`` passed, or at least every
    ``check_interval`` (so a long silent stage still notices a cancel).
    """

    def __init__(
        self,
        database: jobs_db.Database,
        job_id: str,
        min_interval: float = 2.0,
        check_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.job_id = job_id
        self.min_interval = min_interval
        self.check_interval = check_interval
        self.clock = clock
        self.last_pct = -1
        self.last_write = float("-inf")
        self.writes = 0

    def __call__(self, fraction: float) -> None:
        pct = max(0, min(99, int(fraction * 100)))  # 100 is written by the SUCCEEDED transition
        elapsed = self.clock() - self.last_write
        if (pct != self.last_pct and elapsed >= self.min_interval) or elapsed >= self.check_interval:
            self._write(pct)

    def check(self, fraction: float | None = None) -> None:
        """Write now (stage boundaries): the cheapest moment to notice a cancel."""
        self._write(self.last_pct if fraction is None else max(0, min(99, int(fraction * 100))))

    def _write(self, pct: int) -> None:
        with self.database.connection() as conn:
            status = jobs_repo.set_progress(conn, self.job_id, max(pct, 0))
        self.writes += 1
        self.last_write = self.clock()
        self.last_pct = max(pct, self.last_pct)
        if status != JobStatus.RUNNING:
            raise Cancelled(f"job is {status}")


@aws.acting_as("worker")
def run_job(
    job_id: str,
    settings: Settings,
    database: jobs_db.Database,
    progress_interval: float = 2.0,
    check_interval: float = 5.0,
) -> JobStatus:
    """Run one job to a terminal status and return it (or RUNNING if another worker has it).

    ``progress_interval``/``check_interval`` bound progress writes (see ProgressReporter)."""
    with bind(job_id=job_id):
        with database.connection() as conn:
            job = jobs_repo.get(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            if JobStatus(job["status"]) in TERMINAL:
                log.info("job already finished; nothing to do", extra={"status": job["status"]})
                return JobStatus(job["status"])
            claimed = jobs_repo.transition(conn, job_id, JobStatus.RUNNING)
        if claimed is None:
            return _current(database, job_id, "job was not claimable")
        log.info("job claimed", extra={"job_type": job["job_type"]})
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix="transcodex-job-"))
        reporter = ProgressReporter(database, job_id, progress_interval, check_interval)
        try:
            outputs = _execute(claimed, settings, database, scratch, reporter, started)
            return _succeed(database, job_id, outputs, started)
        except Cancelled:
            log.info("job cancelled while running; stopped")
            return _current(database, job_id, "cancelled")
        except JobFailure as failure:
            return _fail(database, job_id, failure.code, failure.message)
        except Stopped:
            return _fail(
                database,
                job_id,
                ErrorCode.INTERNAL_ERROR,
                "the worker was stopped before the job finished (task stopped); submit the job again",
            )
        except Exception:
            log.exception("unexpected error")
            return _fail(database, job_id, ErrorCode.INTERNAL_ERROR, UNEXPECTED)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            _record_compute(database, job_id, time.monotonic() - started)


def _execute(
    job: dict[str, Any],
    settings: Settings,
    database: jobs_db.Database,
    scratch: Path,
    reporter: ProgressReporter,
    started: float,
) -> list[LocalOutput]:
    limits = settings.limits
    deadline = started + limits.worker_timeout_seconds
    try:
        spec = parse_job(job["job_type"], job["operations"])
    except ContractError as err:
        raise JobFailure(ErrorCode.INVALID_JOB, f"the job's operations are invalid: {err}") from err
    with database.connection() as conn:
        upload = uploads_repo.get(conn, str(job["upload_id"]))
    if upload is None:
        raise JobFailure(ErrorCode.INPUT_MISSING, "the job's upload no longer exists; upload the file again")
    storage = S3Storage(settings)
    key = upload["object_key"]
    try:
        size = storage.input_size(key)
    except ObjectMissing as err:
        raise JobFailure(
            ErrorCode.INPUT_MISSING, "the uploaded file was not found in storage; upload it again and resubmit"
        ) from err
    if size == 0:
        raise JobFailure(ErrorCode.INPUT_UNREADABLE, "the uploaded file is empty (0 bytes); upload it again")
    if size > limits.max_input_bytes:
        raise JobFailure(
            ErrorCode.LIMIT_EXCEEDED, f"the input is {size:,} bytes; the limit is {limits.max_input_bytes:,} bytes"
        )
    source = scratch / ("input" + _safe_suffix(upload.get("filename") or key))
    reporter.check(0.0)
    t0 = time.monotonic()
    storage.download(key, source, size)
    log.info("input downloaded", extra={"bytes": size, "seconds": round(time.monotonic() - t0, 3)})
    reporter.check(DOWNLOADED)
    work = scratch / "out"
    work.mkdir()
    t0 = time.monotonic()
    outputs = _process(spec, source, work, settings, reporter, deadline)
    log.info("processed", extra={"outputs": len(outputs), "seconds": round(time.monotonic() - t0, 3)})
    reporter.check(PROCESSED)
    if time.monotonic() > deadline:
        raise JobFailure(ErrorCode.TIMEOUT, "processing took longer than the worker's time limit")
    _publish(storage, job, outputs)
    return outputs


def _process(
    spec: JobSpec, source: Path, work: Path, settings: Settings, reporter: ProgressReporter, deadline: float
) -> list[LocalOutput]:
    def stage(fraction: float) -> None:
        reporter(DOWNLOADED + (PROCESSED - DOWNLOADED) * fraction)

    sandbox.restrict_loaders()  # for the whole process: no libvips call may guess a loader
    if spec.job_type == JobType.IMAGE:
        result = image_ops.process_image(source, work, spec, settings.limits, stage, deadline)
        return [LocalOutput(result.path, result.path.name, OutputRole.IMAGE, result.mime, result.width, result.height)]
    outputs = video_ops.process_video(source, work, spec.operations, settings.limits, stage, deadline)
    return outputs + _finish_ladders(source, outputs, deadline)


def _finish_ladders(source: Path, outputs: list[LocalOutput], deadline: float) -> list[LocalOutput]:
    """Give every HLS ladder its I-frame playlists, then check it: a ladder that fails the check
    raises JobFailure(PROCESSING_FAILED) here, so it is never published."""
    added: list[LocalOutput] = []
    for master in (o for o in outputs if o.role == OutputRole.HLS_MASTER):
        added += iframes.add_iframe_playlists(master)
        ladder_check.check_ladder(master.path, source, video_ops.available_cpus(), deadline)
    return added


def _publish(storage: S3Storage, job: dict[str, Any], outputs: list[LocalOutput]) -> None:
    """Upload everything, the master playlist last (it never points at missing objects), then
    delete what an earlier run of this job left that this run did not produce."""
    prefix = keys.output_prefix(job["user_id"], job["id"])
    uploads = [Upload(o.path, prefix + o.key, o.mime, cache_control_for(o.mime)) for o in outputs]
    t0 = time.monotonic()
    storage.upload_all(u for u, o in zip(uploads, outputs, strict=True) if o.role != OutputRole.HLS_MASTER)
    storage.upload_all(u for u, o in zip(uploads, outputs, strict=True) if o.role == OutputRole.HLS_MASTER)
    pruned = storage.prune(prefix, {u.key for u in uploads})
    log.info(
        "outputs uploaded",
        extra={"objects": len(uploads), "pruned": pruned, "seconds": round(time.monotonic() - t0, 3)},
    )


def _safe_suffix(name: str) -> str:
    suffix = Path(str(name)).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


class _NotRunning(Exception):
    pass


def _succeed(database: jobs_db.Database, job_id: str, outputs: list[LocalOutput], started: float) -> JobStatus:
    """Record outputs and SUCCEEDED in one transaction (a cancel in between records nothing)."""
    with database.connection() as conn:
        job = jobs_repo.get(conn, job_id)
        assert job is not None
        rows = [
            outputs_repo.Output(
                object_key=keys.output_key(job["user_id"], job["id"], o.key),
                role=o.role,
                bytes=o.path.stat().st_size,
                mime=o.mime,
                width=o.width,
                height=o.height,
                duration_seconds=o.duration,
                bitrate=o.bitrate,
            )
            for o in outputs
            if o.role is not None
        ]
        try:
            with conn.transaction():
                outputs_repo.replace(conn, job_id, rows)
                if jobs_repo.transition(conn, job_id, JobStatus.SUCCEEDED, from_statuses=[JobStatus.RUNNING]) is None:
                    raise _NotRunning
        except _NotRunning:
            return _current(database, job_id, "job left RUNNING before it could succeed")
    log.info(
        "job succeeded",
        extra={"outputs": len(rows), "seconds": round(time.monotonic() - started, 3)},
    )
    return JobStatus.SUCCEEDED


def _fail(database: jobs_db.Database, job_id: str, code: ErrorCode, message: str) -> JobStatus:
    with database.connection() as conn:
        row = jobs_repo.transition(
            conn,
            job_id,
            JobStatus.FAILED,
            from_statuses=[JobStatus.RUNNING],
            error_code=code.value,
            error_message=message,
        )
    if row is None:
        return _current(database, job_id, "job left RUNNING before it could be marked failed")
    log.warning("job failed", extra={"error_code": code.value, "error_message": message})
    return JobStatus.FAILED


def _record_compute(database: jobs_db.Database, job_id: str, seconds: float) -> None:
    """Best effort: a lost measurement must not change the job's outcome."""
    try:
        with database.connection() as conn:
            jobs_repo.record_compute(conn, job_id, seconds)
    except Exception:
        log.warning("could not record the job's compute seconds", exc_info=True)


def _current(database: jobs_db.Database, job_id: str, why: str) -> JobStatus:
    with database.connection() as conn:
        job = jobs_repo.get(conn, job_id)
    status = JobStatus(job["status"]) if job else JobStatus.FAILED
    log.info(why, extra={"status": status.value})
    return status
