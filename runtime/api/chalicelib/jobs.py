"""Jobs: create one from an upload (idempotently), read, list, cancel, and hand out its outputs.

Every query is scoped to the caller: another user's ids are not found. Refusals are domain
errors (``chalicelib.domain``); the route wrapper answers them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api.chalicelib import quotas, uploads, work
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import Conflict, Invalid, NotFound, Unavailable, Unprocessable
from runtime.shared import keys, prices
from runtime.shared.contract import ContractError, JobSpec, Problem, parse_job
from runtime.shared.log import bind
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import presigned_ttl
from runtime.shared.status import ErrorCode, JobStatus, UploadStatus, can_complete

log = logging.getLogger(__name__)

#: How long a presigned download URL stays valid.
DOWNLOAD_URL_TTL_SECONDS = presigned_ttl("DOWNLOAD_URL_TTL_SECONDS", 3600)
#: Jobs per page of GET /media/jobs when the caller names no limit.
DEFAULT_PAGE_SIZE = 20


def public_job(row: dict[str, Any]) -> dict[str, Any]:
    error = None
    if row.get("error_code") or row.get("error_message"):
        error = {"code": row.get("error_code"), "message": row.get("error_message")}
    return {
        "job_id": row["id"],
        "id": row["id"],
        "processing_job_id": row["id"],
        "media_id": row["id"],
        "upload_id": row["upload_id"],
        "job_type": row["job_type"],
        "operations": row["operations"],
        "status": row["status"],
        "progress": row["progress"],
        "error": error,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "dispatched_at": row["dispatched_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        **run_facts(row),
    }


def run_facts(row: dict[str, Any]) -> dict[str, Any]:
    """Where the job ran, on what, for how long, and what that cost at list prices
    (runtime.shared.prices), beside the estimate it was sized by (runtime.shared.estimate)."""
    price_class = row.get("price_class")
    cost = prices.job_cost(
        row.get("runner"),
        row.get("compute_seconds"),
        row.get("task_cpu"),
        row.get("task_memory_mib"),
        arm=price_class == "arm",
        spot=price_class == "spot",
    )
    return {
        "runner": row.get("runner"),
        "task_cpu": row.get("task_cpu"),
        "task_memory_mib": row.get("task_memory_mib"),
        "timeout_seconds": row.get("timeout_seconds"),
        "estimated_seconds": row.get("estimated_seconds"),
        "compute_seconds": row.get("compute_seconds"),
        "estimated_cost_usd": round(cost, 6) if cost is not None else None,
    }


def _request_hash(job_type: str, upload_id: str, spec: JobSpec) -> str:
    canonical = json.dumps(
        {"job_type": job_type, "upload_id": upload_id, "operations": spec.to_json()},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(row: dict[str, Any], request_hash: str) -> dict[str, Any]:
    if row["request_hash"] != request_hash:
        raise Unprocessable(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used for a different request; use a new key",
            {"job_id": row["id"]},
        )
    return row


def process(
    deps: Deps, principal: Principal, body: dict[str, Any], idempotency_key: str | None
) -> tuple[dict[str, Any], bool]:
    """Create (or, for a repeated Idempotency-Key, return) a job; (job, created)."""
    try:
        upload_id = str(uuid.UUID(str(body["upload_id"])))
    except ValueError:
        raise NotFound("UPLOAD_NOT_FOUND", "no upload of yours has this id", {"field": "upload_id"}) from None
    try:
        spec = parse_job(body["job_type"], body["operations"])
    except ContractError as err:
        more = len(err.problems) - 1
        message = err.problems[0].message + (f" (and {more} more problem(s))" if more > 0 else "")
        raise Unprocessable(err.code, f"the job is invalid: {message}", err.details()) from None
    upload = uploads.owned(deps, principal, upload_id)
    if upload["media_type"] != spec.job_type.value:
        problem = Problem(
            f"the upload is a {upload['media_type']} file; a {spec.job_type.value} job cannot process it",
            field="job_type",
            received=spec.job_type.value,
            allowed=[upload["media_type"]],
        )
        raise Unprocessable("INVALID_JOB", problem.message, ContractError([problem]).details())
    request_hash = _request_hash(spec.job_type.value, upload_id, spec)
    if idempotency_key:
        with deps.db.connection() as conn:
            existing = jobs_repo.find_by_idempotency_key(conn, principal.user_id, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash), False
    if not can_complete(UploadStatus(upload["status"])):
        raise uploads.aborted()
    if upload["multipart_upload_id"]:
        raise Conflict("UPLOAD_INCOMPLETE", "complete the multipart upload before processing it")
    size = uploads.uploaded_size(deps, upload)
    probe, estimated_cpu = work.check(deps.settings, deps.prober, spec, upload["object_key"], size)
    uploads.mark_uploaded(deps, upload_id, size)
    with deps.db.connection() as conn, conn.transaction():
        # Per-user limits: counted under the user's lock in the transaction that inserts the
        # job, so parallel requests cannot all pass. A replay of an earlier key is no new job.
        replayed = (
            jobs_repo.find_by_idempotency_key(conn, principal.user_id, idempotency_key) if idempotency_key else None
        )
        if replayed is None:
            quotas.check_job(conn, principal.user_id, deps.settings.limits)
            # Under the same lock as an abort: the upload was not aborted since it was read.
            current = uploads_repo.get(conn, upload_id, principal.user_id)
            if current is None or not can_complete(UploadStatus(current["status"])):
                raise uploads.aborted()
        job, created = jobs_repo.create(
            conn,
            user_id=principal.user_id,
            upload_id=upload_id,
            spec=spec,
            api_key_id=principal.api_key_id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            probe=probe,
            estimated_cpu_seconds=estimated_cpu,
        )
    if not created:
        return _replay(job, request_hash), False
    job_id = str(job["id"])
    with bind(job_id=job_id):
        try:
            deps.sqs.send_message(QueueUrl=deps.settings.queue_url, MessageBody=JobMessage(job_id).to_body())
        except (ClientError, BotoCoreError) as err:
            log.error("could not queue the job; marking it FAILED", extra={"error": str(err)})
            with deps.db.connection() as conn, conn.transaction():
                jobs_repo.transition(
                    conn,
                    job_id,
                    JobStatus.FAILED,
                    error_code=ErrorCode.DISPATCH_FAILED.value,
                    error_message="the job could not be queued; submit it again",
                )
                # Free the key so the client's retry creates a fresh job instead of replaying this one.
                jobs_repo.clear_idempotency_key(conn, job_id)
            raise Unavailable(
                "QUEUE_UNAVAILABLE",
                "the job queue is unavailable; the job was not started, retry shortly",
                {"job_id": job_id, "status": JobStatus.FAILED.value},
            ) from None
        log.info("job queued", extra={"upload_id": upload_id, "job_type": spec.job_type.value})
    return job, True


def owned(deps: Deps, principal: Principal, job_id: str) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = jobs_repo.get(conn, job_id, principal.user_id)
    if row is None:
        raise NotFound("JOB_NOT_FOUND", "no job of yours has this id", {"job_id": job_id})
    return row


def cancel(deps: Deps, principal: Principal, job_id: str) -> dict[str, Any]:
    owned(deps, principal, job_id)
    with deps.db.connection() as conn:
        row = jobs_repo.transition(conn, job_id, JobStatus.CANCELLED)
        if row is None:
            current = jobs_repo.get(conn, job_id, principal.user_id)
            assert current is not None
            raise Conflict(
                "JOB_FINISHED",
                f"the job already finished ({current['status']}); it cannot be cancelled",
                {"status": current["status"]},
            )
    with bind(job_id=job_id):
        log.info("job cancelled")
    return row


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        return datetime.fromisoformat(stamp), str(uuid.UUID(ident))
    except (ValueError, UnicodeDecodeError):
        raise Invalid("INVALID_CURSOR", "cursor is not one this API returned", {"field": "cursor"}) from None


def page(deps: Deps, principal: Principal, limit: int | None, status: str | None, cursor: str | None) -> dict[str, Any]:
    """Keyset pagination, newest first, optionally one status (uses the (user, [status,] created, id)
    indexes). The route validated ``limit`` and ``status``; ``cursor`` is checked here."""
    limit = DEFAULT_PAGE_SIZE if limit is None else limit
    before = _decode_cursor(cursor) if cursor else None
    with deps.db.connection() as conn:
        rows = jobs_repo.page_for_user(
            conn, principal.user_id, limit + 1, status=JobStatus(status) if status else None, before=before
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [public_job(r) for r in rows], "next_cursor": _encode_cursor(rows[-1]) if more else None}


def download(deps: Deps, principal: Principal, job_id: str, playback_url: str | None) -> dict[str, Any]:
    """Presigned GET URLs for every output; HLS outputs also get the API playback URL."""
    job = owned(deps, principal, job_id)
    if job["status"] != JobStatus.SUCCEEDED.value:
        raise Conflict(
            "JOB_NOT_FINISHED",
            f"the job is {job['status']}; outputs exist once it has SUCCEEDED",
            {"status": job["status"], "progress": job["progress"], "error": public_job(job)["error"]},
        )
    with deps.db.connection() as conn:
        rows = outputs_repo.for_job(conn, job_id)
    s3 = deps.s3
    outputs = []
    has_hls = False
    for row in rows:
        if row["role"] == OutputRole.HLS_SEGMENT:
            continue
        item = {
            "role": row["role"],
            "name": keys.relative_name(job["user_id"], job["id"], row["object_key"]),
            "url": s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": deps.settings.output_bucket, "Key": row["object_key"]},
                ExpiresIn=DOWNLOAD_URL_TTL_SECONDS,
            ),
            "mime": row["mime"],
            "bytes": row["bytes"],
            "width": row["width"],
            "height": row["height"],
            "duration_seconds": row["duration_seconds"],
            "bitrate": row["bitrate"],
        }
        if row["role"] == OutputRole.HLS_MASTER:
            has_hls = True
            item["playback_url"] = playback_url
        outputs.append(item)
    primary = next((o for o in outputs if o["role"] in (OutputRole.IMAGE, OutputRole.MP4)), None)
    result_url = playback_url if has_hls else (primary or (outputs[0] if outputs else {})).get("url")
    return {
        "job_id": job["id"],
        "processing_job_id": job["id"],
        "status": job["status"],
        "job_type": job["job_type"],
        "expires_in": DOWNLOAD_URL_TTL_SECONDS,
        "result_url": result_url,
        "playback_url": playback_url if has_hls else None,
        "outputs": outputs,
    }
