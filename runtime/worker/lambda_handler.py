"""The worker as a Lambda function: the same image and the same runner as the container.

The image's ENTRYPOINT is replaced by the Lambda runtime interface client (awslambdaric,
constructs_lib.worker_function), which calls :func:`handler` with ``{"job_id": ...}`` (the
dispatcher's asynchronous Invoke, runtime.dispatcher.launchers.LambdaLauncher). The job is run
by :func:`runtime.worker.runner.run_job`, exactly as ``python -m runtime.worker`` runs it, so
claim, outcome, cancellation and cleanup are the container's. The settings and the database
pool are made once per execution environment and reused by warm invocations.

Failure modes: a job that cannot be recorded (database unreachable) raises, and so does a
timeout or a crash of the runtime; the function's invoke configuration retries nothing and
sends the failed invocation to the dead-letter queue, whose handler fails the job
(runtime.dispatcher.core.fail_dead_letter).

``{"probe_key": KEY}`` instead ffprobes the input object ``KEY`` (through a presigned URL, so
only the headers and an index are read) and returns ``{"probe": {...}}`` for POST
/media/process's work estimate (runtime.api.chalicelib.work): the API bundle has no ffmpeg.

The worker's own deadline
(``TRANSCODEX_WORKER_TIMEOUT_SECONDS``, set below the function timeout by the construct) makes
it record TIMEOUT itself first.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any, cast

from botocore.exceptions import ClientError

from runtime.shared import aws
from runtime.shared.contract import media
from runtime.shared.db import Database, open_database
from runtime.shared.estimate import Probe
from runtime.shared.log import configure
from runtime.shared.settings import Settings, load_settings, log_level
from runtime.worker import sandbox, video
from runtime.worker.errors import JobFailure
from runtime.worker.runner import JobNotFound, run_job

log = logging.getLogger("transcodex.worker")

_state: dict[str, Any] = {}
_lock = threading.Lock()


def _environment() -> tuple[Settings, Database]:
    with _lock:
        if "database" not in _state:
            configure(log_level())
            settings = load_settings(sections=["database", "storage", "limits"])
            _state["settings"] = settings
            _state["database"] = open_database(settings, max_size=2)
        return _state["settings"], _state["database"]


def reset() -> None:
    """Close the cached pool (tests; a configuration reload)."""
    with _lock:
        database = _state.pop("database", None)
        _state.clear()
    if database is not None:
        database.close()


#: Lifetime of the URL ffprobe reads the input through.
PROBE_URL_TTL_SECONDS = 300


def probe_object(key: str, settings: Settings) -> dict[str, Any] | None:
    """Duration, displayed size and frame rate of input ``key``; None when ffprobe cannot tell
    (the job's own run then fails it with the reason)."""
    s3 = aws.client("s3", settings)
    params = {"Bucket": settings.input_bucket, "Key": key}
    try:
        # The leading bytes pick (and pin) the demuxer, as for a job's scratch copy.
        leading = f"bytes=0-{media.HEAD_BYTES - 1}"
        head = s3.get_object(Bucket=settings.input_bucket, Key=key, Range=leading)["Body"].read()
    except ClientError as err:
        log.info("input could not be read", extra={"error": str(err)})
        return None
    url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=PROBE_URL_TTL_SECONDS)
    try:
        # ffprobe reads the URL as it reads a path
        info = video.probe(cast(Path, url), head=head, protocols=sandbox.REMOTE_PROTOCOLS)
    except JobFailure as failure:
        log.info("input could not be probed", extra={"error": failure.message})
        return None
    width, height = info.display_size
    return Probe(info.duration, int(width), int(height), float(info.fps)).to_json()


@aws.acting_as("worker")
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run the job ``event["job_id"]`` to a terminal status; return it.

    A malformed event or an unknown job returns without raising: there is nothing to record
    and nothing a retry would change. Anything else that stops the run raises (see above)."""
    if isinstance(event, dict) and "probe_key" in event:
        settings, _ = _environment()
        return {"probe": probe_object(str(event["probe_key"]), settings)}
    try:
        job_id = str(uuid.UUID(str(event.get("job_id"))))
    except (ValueError, AttributeError):
        log.error("a job id (UUID) is required in the event", extra={"received": str(event)[:200]})
        return {"status": "INVALID_EVENT"}
    settings, database = _environment()
    try:
        status = run_job(job_id, settings, database)
    except JobNotFound:
        log.error("no such job", extra={"job_id": job_id})
        return {"job_id": job_id, "status": "NOT_FOUND"}
    return {"job_id": job_id, "status": status.value}
