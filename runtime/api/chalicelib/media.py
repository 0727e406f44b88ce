"""Uploads and jobs: presigned uploads (single PUT/POST or multipart), process, status, list,
download and cancel. Every query is scoped to the caller: another user's ids are 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import uuid
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.errors import ApiError
from runtime.shared import keys
from runtime.shared.contract import ContractError, JobSpec, Problem, parse_job
from runtime.shared.log import bind
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import UPLOAD_URL_TTL_SECONDS, presigned_ttl
from runtime.shared.status import ErrorCode, JobStatus, UploadStatus, can_complete
from runtime.shared.storage import error_code, head_size

log = logging.getLogger(__name__)

#: How long a presigned upload or download URL stays valid.
DOWNLOAD_URL_TTL_SECONDS = presigned_ttl("DOWNLOAD_URL_TTL_SECONDS", 3600)
#: Declared sizes above this use S3 multipart upload (and above S3's single-PUT limit, always).
MULTIPART_THRESHOLD_BYTES = 100 * 1024**2
S3_SINGLE_PUT_LIMIT = 5 * 1024**3
MIN_PART_BYTES = 16 * 1024**2
MAX_PARTS = 10_000

MIME_TYPES: dict[str, tuple[str, ...]] = {
    "IMAGE": (
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/png",
        "image/webp",
        "image/avif",
        "image/gif",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/bmp",
    ),
    "VIDEO": (
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/mpeg",
        "video/ogg",
        "video/3gpp",
        "video/x-m4v",
        "video/mp2t",
        "video/x-flv",
    ),
}


# --- uploads -------------------------------------------------------------------------------


def _upload_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "upload_id": row["id"],
        "id": row["id"],
        "file_name": row["filename"],
        "file_type": row["media_type"],
        "mime_type": row["content_type"],
        "status": row["status"],
        "declared_bytes": row["declared_bytes"],
        "size_bytes": row["size_bytes"],
        "key": row["object_key"],
        "created_at": row["created_at"],
        "completed_at": row["completed_at"],
    }


#: Non-standard names clients send (the seed's own example uses image/jpg) -> what browsers send.
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "video/x-m4v": "video/mp4"}


def _presign(deps: Deps, key: str, mime: str, size: int | None, multipart_id: str | None) -> dict[str, Any]:
    """The upload instructions: a PUT URL signing Content-Type (and Content-Length when the size
    is declared) plus a POST policy bounding both, or one signed URL per multipart part."""
    s = deps.settings
    s3 = deps.s3
    if multipart_id is not None:
        assert size is not None
        part_size = max(MIN_PART_BYTES, math.ceil(size / MAX_PARTS))
        parts = []
        for number in range(1, max(1, math.ceil(size / part_size)) + 1):
            length = min(part_size, size - (number - 1) * part_size)
            url = s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": s.input_bucket,
                    "Key": key,
                    "UploadId": multipart_id,
                    "PartNumber": number,
                    "ContentLength": length,
                },
                ExpiresIn=UPLOAD_URL_TTL_SECONDS,
            )
            parts.append({"part_number": number, "url": url, "size_bytes": length})
        return {
            "presigned_url": None,
            "method": "PUT",
            "headers": {},
            "presigned_post": None,
            "multipart": {"part_size": part_size, "parts": parts},
        }
    params: dict[str, Any] = {"Bucket": s.input_bucket, "Key": key, "ContentType": mime}
    headers = {"Content-Type": mime}
    if size is not None:
        params["ContentLength"] = size
        headers["Content-Length"] = str(size)
    post = s3.generate_presigned_post(
        Bucket=s.input_bucket,
        Key=key,
        Fields={"Content-Type": mime},
        Conditions=[{"Content-Type": mime}, ["content-length-range", 1, size or s.limits.max_input_bytes]],
        ExpiresIn=UPLOAD_URL_TTL_SECONDS,
    )
    return {
        "presigned_url": s3.generate_presigned_url("put_object", Params=params, ExpiresIn=UPLOAD_URL_TTL_SECONDS),
        "method": "PUT",
        "headers": headers,
        "presigned_post": post,
        "multipart": None,
    }


def create_upload(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    s = deps.settings
    file_type = str(body["file_type"]).upper()
    declared = str(body["mime_type"]).strip().lower()
    mime = MIME_ALIASES.get(declared, declared)
    if declared not in MIME_TYPES[file_type]:
        raise ApiError(
            422,
            "UNSUPPORTED_MEDIA_TYPE",
            f"mime_type {declared!r} is not an accepted {file_type} type",
            {"field": "mime_type", "allowed": list(MIME_TYPES[file_type])},
        )
    size = body.get("size_bytes")
    if size is not None and size > s.limits.max_input_bytes:
        raise ApiError(
            413,
            "FILE_TOO_LARGE",
            f"the file is {size} bytes; the largest accepted input is {s.limits.max_input_bytes} bytes",
            {"field": "size_bytes", "max_bytes": s.limits.max_input_bytes},
        )
    multipart = bool(body.get("multipart")) or (size is not None and size > MULTIPART_THRESHOLD_BYTES)
    if multipart and size is None:
        raise ApiError(400, "INVALID_BODY", "a multipart upload needs size_bytes", {"field": "size_bytes"})
    upload_id = str(uuid.uuid4())
    key = keys.upload_key(principal.user_id, upload_id, str(body["file_name"]))
    # The row first: whatever happens in S3 afterwards, the upload has a record.
    with deps.db.connection() as conn:
        uploads_repo.create(
            conn,
            upload_id=upload_id,
            user_id=principal.user_id,
            api_key_id=principal.api_key_id,
            object_key=key,
            filename=str(body["file_name"])[:255],
            content_type=mime,
            media_type=file_type,
            declared_bytes=size or 0,
        )
    multipart_id: str | None = None
    try:
        if multipart:
            multipart_id = deps.s3.create_multipart_upload(Bucket=s.input_bucket, Key=key, ContentType=mime)["UploadId"]
        instructions = _presign(deps, key, mime, size, multipart_id)
    except (ClientError, BotoCoreError) as err:
        log.error("presigning failed", extra={"error": str(err), "upload_id": upload_id})
        with deps.db.connection() as conn:
            uploads_repo.abort(conn, upload_id, multipart_upload_id=multipart_id)
        raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    with deps.db.connection() as conn:
        row = uploads_repo.set_multipart_id(conn, upload_id, multipart_id)
    assert row is not None
    if instructions["multipart"] is not None:
        instructions["multipart"]["complete_path"] = f"/media/upload/{upload_id}/complete"
        instructions["multipart"]["abort_path"] = f"/media/upload/{upload_id}/abort"
    return {
        **_upload_body(row),
        "expires_in": UPLOAD_URL_TTL_SECONDS,
        "max_bytes": size or s.limits.max_input_bytes,
        **instructions,
    }


def _owned_upload(deps: Deps, principal: Principal, upload_id: str) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = uploads_repo.get(conn, upload_id, principal.user_id)
    if row is None:
        raise ApiError(404, "UPLOAD_NOT_FOUND", "no upload of yours has this id", {"upload_id": upload_id})
    return row


def _head(deps: Deps, key: str) -> int | None:
    """The object's size, or None when it does not exist."""
    try:
        return head_size(deps.s3, deps.settings.input_bucket, key)
    except (ClientError, BotoCoreError):
        raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None


def _check_size(deps: Deps, size: int | None, upload: dict[str, Any]) -> int:
    limit = deps.settings.limits.max_input_bytes
    if size is None:
        raise ApiError(
            409,
            "UPLOAD_INCOMPLETE",
            "the file has not been uploaded yet; PUT it to presigned_url (or complete the multipart upload) first",
            {"upload_id": upload["id"]},
        )
    if size == 0:
        raise ApiError(422, "EMPTY_FILE", "the uploaded file is empty", {"upload_id": upload["id"]})
    if size > limit:
        raise ApiError(
            413,
            "FILE_TOO_LARGE",
            f"the uploaded file is {size} bytes; the limit is {limit} bytes",
            {"upload_id": upload["id"], "size_bytes": size, "max_bytes": limit},
        )
    return size


def _mark_uploaded(deps: Deps, upload_id: str, size: int) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = uploads_repo.mark_uploaded(conn, upload_id, size)
    if row is None:
        raise ApiError(409, "UPLOAD_ABORTED", "this upload was aborted or expired; create a new one")
    return row


def _completed_before(deps: Deps, upload: dict[str, Any]) -> bool:
    """Whether an earlier CompleteMultipartUpload of this upload succeeded: the object exists
    with the declared size (every part URL was signed with its exact Content-Length)."""
    size = _head(deps, upload["object_key"])
    return size is not None and size == upload["declared_bytes"]


def complete_upload(deps: Deps, principal: Principal, upload_id: str, body: dict[str, Any]) -> dict[str, Any]:
    upload = _owned_upload(deps, principal, upload_id)
    if not can_complete(UploadStatus(upload["status"])):
        raise ApiError(409, "UPLOAD_ABORTED", "this upload was aborted or expired; create a new one")
    s = deps.settings
    if upload["multipart_upload_id"]:
        parts = body.get("parts")
        if not parts:
            raise ApiError(400, "INVALID_BODY", "completing a multipart upload needs 'parts'", {"field": "parts"})
        ordered = sorted(parts, key=lambda p: p["part_number"])
        try:
            deps.s3.complete_multipart_upload(
                Bucket=s.input_bucket,
                Key=upload["object_key"],
                UploadId=upload["multipart_upload_id"],
                MultipartUpload={"Parts": [{"PartNumber": p["part_number"], "ETag": p["etag"]} for p in ordered]},
            )
        except ClientError as err:
            code = error_code(err)
            if code == "NoSuchUpload" and _completed_before(deps, upload):
                pass  # a retry after API Gateway's 29 s timeout: S3 finished the first request
            elif code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload", "MalformedXML"):
                raise ApiError(400, "INVALID_PARTS", f"S3 refused the parts: {code}", {"s3_error": code}) from None
            else:
                raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    size = _head(deps, upload["object_key"])
    try:
        _check_size(deps, size, upload)
    except ApiError as err:
        if err.code == "FILE_TOO_LARGE":
            deps.s3.delete_object(Bucket=s.input_bucket, Key=upload["object_key"])
        raise
    assert size is not None
    return _upload_body(_mark_uploaded(deps, upload_id, size))


def abort_upload(deps: Deps, principal: Principal, upload_id: str) -> dict[str, Any]:
    upload = _owned_upload(deps, principal, upload_id)
    s = deps.settings
    try:
        if upload["multipart_upload_id"]:
            try:
                deps.s3.abort_multipart_upload(
                    Bucket=s.input_bucket, Key=upload["object_key"], UploadId=upload["multipart_upload_id"]
                )
            except ClientError as err:
                if error_code(err) != "NoSuchUpload":
                    raise
        deps.s3.delete_object(Bucket=s.input_bucket, Key=upload["object_key"])
    except (ClientError, BotoCoreError):
        raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    with deps.db.connection() as conn:
        row = uploads_repo.abort(conn, upload_id, user_id=principal.user_id)
    assert row is not None
    return _upload_body(row)


# --- jobs -----------------------------------------------------------------------------------


def job_body(row: dict[str, Any]) -> dict[str, Any]:
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
        raise ApiError(
            422,
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
        raise ApiError(404, "UPLOAD_NOT_FOUND", "no upload of yours has this id", {"field": "upload_id"}) from None
    try:
        spec = parse_job(body["job_type"], body["operations"])
    except ContractError as err:
        raise ApiError(422, err.code, f"the job is invalid: {err}", err.details()) from None
    upload = _owned_upload(deps, principal, upload_id)
    if upload["media_type"] != spec.job_type.value:
        problem = Problem(
            f"the upload is a {upload['media_type']} file; a {spec.job_type.value} job cannot process it",
            field="job_type",
            received=spec.job_type.value,
            allowed=[upload["media_type"]],
        )
        raise ApiError(422, "INVALID_JOB", problem.message, ContractError([problem]).details())
    request_hash = _request_hash(spec.job_type.value, upload_id, spec)
    if idempotency_key:
        with deps.db.connection() as conn:
            existing = jobs_repo.find_by_idempotency_key(conn, principal.user_id, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash), False
    if not can_complete(UploadStatus(upload["status"])):
        raise ApiError(409, "UPLOAD_ABORTED", "this upload was aborted or expired; create a new one")
    if upload["multipart_upload_id"]:
        raise ApiError(409, "UPLOAD_INCOMPLETE", "complete the multipart upload before processing it")
    size = _check_size(deps, _head(deps, upload["object_key"]), upload)
    _mark_uploaded(deps, upload_id, size)
    with deps.db.connection() as conn:
        job, created = jobs_repo.create(
            conn,
            user_id=principal.user_id,
            upload_id=upload_id,
            spec=spec,
            api_key_id=principal.api_key_id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
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
            raise ApiError(
                503,
                "QUEUE_UNAVAILABLE",
                "the job queue is unavailable; the job was not started, retry shortly",
                {"job_id": job_id, "status": JobStatus.FAILED.value},
            ) from None
        log.info("job queued", extra={"upload_id": upload_id, "job_type": spec.job_type.value})
    return job, True


def owned_job(deps: Deps, principal: Principal, job_id: str) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = jobs_repo.get(conn, job_id, principal.user_id)
    if row is None:
        raise ApiError(404, "JOB_NOT_FOUND", "no job of yours has this id", {"job_id": job_id})
    return row


def cancel(deps: Deps, principal: Principal, job_id: str) -> dict[str, Any]:
    owned_job(deps, principal, job_id)
    with deps.db.connection() as conn:
        row = jobs_repo.transition(conn, job_id, JobStatus.CANCELLED)
        if row is None:
            current = jobs_repo.get(conn, job_id, principal.user_id)
            assert current is not None
            raise ApiError(
                409,
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
        raise ApiError(400, "INVALID_CURSOR", "cursor is not one this API returned", {"field": "cursor"}) from None


def list_jobs(deps: Deps, principal: Principal, params: dict[str, str]) -> dict[str, Any]:
    """Keyset pagination, newest first, optionally one status (uses the (user, [status,] created, id) indexes)."""
    unknown = set(params) - {"limit", "status", "cursor"}
    if unknown:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"unknown query parameter(s): {', '.join(sorted(unknown))}",
            {"allowed": ["limit", "status", "cursor"]},
        )
    raw_limit = params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise ApiError(400, "INVALID_QUERY", "limit must be an integer from 1 to 100", {"field": "limit"})
    limit = int(raw_limit)
    status: JobStatus | None = None
    if params.get("status") is not None:
        if params["status"].upper() not in JobStatus.__members__:
            raise ApiError(
                400,
                "INVALID_QUERY",
                f"status must be one of {', '.join(JobStatus)}",
                {"field": "status", "allowed": list(JobStatus)},
            )
        status = JobStatus(params["status"].upper())
    before = _decode_cursor(params["cursor"]) if params.get("cursor") else None
    with deps.db.connection() as conn:
        rows = jobs_repo.page_for_user(conn, principal.user_id, limit + 1, status=status, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [job_body(r) for r in rows], "next_cursor": _encode_cursor(rows[-1]) if more else None}


def download(deps: Deps, principal: Principal, job_id: str, playback_url: str | None) -> dict[str, Any]:
    """Presigned GET URLs for every output; HLS outputs also get the API playback URL."""
    job = owned_job(deps, principal, job_id)
    if job["status"] != JobStatus.SUCCEEDED.value:
        raise ApiError(
            409,
            "JOB_NOT_FINISHED",
            f"the job is {job['status']}; outputs exist once it has SUCCEEDED",
            {"status": job["status"], "progress": job["progress"], "error": job_body(job)["error"]},
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
