"""Uploads: presigned single PUT/POST or multipart uploads, their completion and abort, and the
size checks a job's input passes. Every query is scoped to the caller: another user's ids are
not found. Refusals are domain errors (``chalicelib.domain``); the route wrapper answers them.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api.chalicelib import quotas
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import Conflict, Invalid, NotFound, TooLarge, Unavailable, Unprocessable
from runtime.shared import keys
from runtime.shared.contract import MIME_ALIASES, MIME_TYPES
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.repo import usage
from runtime.shared.settings import UPLOAD_URL_TTL_SECONDS
from runtime.shared.status import UploadStatus, can_complete
from runtime.shared.storage import error_code, head_size

log = logging.getLogger(__name__)

#: Declared sizes above this use S3 multipart upload (and above S3's single-PUT limit, always).
MULTIPART_THRESHOLD_BYTES = 100 * 1024**2
S3_SINGLE_PUT_LIMIT = 5 * 1024**3
MIN_PART_BYTES = 16 * 1024**2
MAX_PARTS = 10_000


def public_upload(row: dict[str, Any]) -> dict[str, Any]:
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


def _presign(deps: Deps, key: str, mime: str, size: int | None, multipart_id: str | None) -> dict[str, Any]:
    """The upload instructions, each bounded by S3 itself, never by our word alone:

    * a declared size: a PUT URL signing Content-Type and the exact Content-Length, plus a POST
      policy with ``content-length-range`` [1, size];
    * no declared size (the seed's body): only the POST policy, [1, ``max_input_bytes``], as
      ``presigned_url`` with ``method`` POST and its form ``fields``. S3 cannot bound a PUT by
      a maximum, so an unsized PUT URL is never signed;
    * multipart: one URL per part, each signing its Content-Length."""
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
    post = s3.generate_presigned_post(
        Bucket=s.input_bucket,
        Key=key,
        Fields={"Content-Type": mime},
        Conditions=[{"Content-Type": mime}, ["content-length-range", 1, size or s.limits.max_input_bytes]],
        ExpiresIn=UPLOAD_URL_TTL_SECONDS,
    )
    if size is None:
        return {
            "presigned_url": post["url"],
            "method": "POST",
            "headers": {},
            "fields": post["fields"],
            "presigned_post": post,
            "multipart": None,
        }
    params = {"Bucket": s.input_bucket, "Key": key, "ContentType": mime, "ContentLength": size}
    return {
        "presigned_url": s3.generate_presigned_url("put_object", Params=params, ExpiresIn=UPLOAD_URL_TTL_SECONDS),
        "method": "PUT",
        "headers": {"Content-Type": mime, "Content-Length": str(size)},
        "presigned_post": post,
        "multipart": None,
    }


#: Bidirectional embedding, override and isolate controls: they make ``evil\u202egpj.exe`` read
#: as ``evilexe.jpg`` wherever the name is shown, so a name carrying one is refused.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_file_name(name: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in name if c in BIDI_CONTROLS})
    if found:
        raise Unprocessable(
            "INVALID_FILE_NAME",
            "file_name must not contain bidirectional control characters",
            {"field": "file_name", "characters": found},
        )


def create(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    s = deps.settings
    check_file_name(str(body["file_name"]))
    file_type = str(body["file_type"]).upper()
    declared = str(body["mime_type"]).strip().lower()
    mime = MIME_ALIASES.get(declared, declared)
    if declared not in MIME_TYPES[file_type]:
        raise Unprocessable(
            "UNSUPPORTED_MEDIA_TYPE",
            f"mime_type {declared!r} is not an accepted {file_type} type",
            {"field": "mime_type", "allowed": list(MIME_TYPES[file_type])},
        )
    size = body.get("size_bytes")
    if size is None and s.limits.require_upload_size:
        raise Unprocessable(
            "SIZE_REQUIRED",
            "declare the file's size_bytes: every upload URL signs its exact length",
            {"field": "size_bytes", "max_bytes": s.limits.max_input_bytes},
        )
    if size is not None and size > s.limits.max_input_bytes:
        raise TooLarge(
            "FILE_TOO_LARGE",
            f"the file is {size} bytes; the largest accepted input is {s.limits.max_input_bytes} bytes",
            {"field": "size_bytes", "max_bytes": s.limits.max_input_bytes},
        )
    multipart = bool(body.get("multipart")) or (size is not None and size > MULTIPART_THRESHOLD_BYTES)
    if multipart and size is None:
        raise Invalid("INVALID_BODY", "a multipart upload needs size_bytes", {"field": "size_bytes"})
    upload_id = str(uuid.uuid4())
    key = keys.upload_key(principal.user_id, upload_id, str(body["file_name"]))
    # The row first: whatever happens in S3 afterwards, the upload has a record. Per-user
    # limits are counted under the user's lock in the same transaction.
    with deps.db.connection() as conn, conn.transaction():
        quotas.check_upload(conn, principal.user_id, s.limits, size)
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
        raise Unavailable("STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    with deps.db.connection() as conn:
        row = uploads_repo.set_multipart_id(conn, upload_id, multipart_id)
    assert row is not None
    if instructions["multipart"] is not None:
        instructions["multipart"]["complete_path"] = f"/media/upload/{upload_id}/complete"
        instructions["multipart"]["abort_path"] = f"/media/upload/{upload_id}/abort"
    return {
        **public_upload(row),
        "expires_in": UPLOAD_URL_TTL_SECONDS,
        "max_bytes": size or s.limits.max_input_bytes,
        **instructions,
    }


def aborted() -> Conflict:
    return Conflict("UPLOAD_ABORTED", "this upload was aborted or expired; create a new one")


def owned(deps: Deps, principal: Principal, upload_id: str) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = uploads_repo.get(conn, upload_id, principal.user_id)
    if row is None:
        raise NotFound("UPLOAD_NOT_FOUND", "no upload of yours has this id", {"upload_id": upload_id})
    return row


def stored_size(deps: Deps, key: str) -> int | None:
    """The object's size, or None when it does not exist."""
    try:
        return head_size(deps.s3, deps.settings.input_bucket, key)
    except (ClientError, BotoCoreError):
        raise Unavailable("STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None


def check_size(deps: Deps, size: int | None, upload: dict[str, Any]) -> int:
    limit = deps.settings.limits.max_input_bytes
    if size is None:
        raise Conflict(
            "UPLOAD_INCOMPLETE",
            "the file has not been uploaded yet; PUT it to presigned_url (or complete the multipart upload) first",
            {"upload_id": upload["id"]},
        )
    if size == 0:
        raise Unprocessable("EMPTY_FILE", "the uploaded file is empty", {"upload_id": upload["id"]})
    if size > limit:
        raise TooLarge(
            "FILE_TOO_LARGE",
            f"the uploaded file is {size} bytes; the limit is {limit} bytes",
            {"upload_id": upload["id"], "size_bytes": size, "max_bytes": limit},
        )
    return size


def uploaded_size(deps: Deps, upload: dict[str, Any]) -> int:
    """The stored object's size once checked (:func:`check_size`). An object over the limit is
    deleted here, wherever the check runs (``complete``, ``process``): an undeclared size gets
    a PUT URL that S3 does not bound, so the object may be larger than we allow."""
    size = stored_size(deps, upload["object_key"])
    try:
        return check_size(deps, size, upload)
    except TooLarge:
        try:
            deps.s3.delete_object(Bucket=deps.settings.input_bucket, Key=upload["object_key"])
        except (ClientError, BotoCoreError) as err:  # the sweeper and the lifecycle remain
            log.error("could not delete an oversized upload", extra={"upload_id": upload["id"], "error": str(err)})
        else:
            log.warning("oversized upload deleted", extra={"upload_id": upload["id"], "size_bytes": size})
        raise


def mark_uploaded(deps: Deps, upload_id: str, size: int) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = uploads_repo.mark_uploaded(conn, upload_id, size)
    if row is None:
        raise aborted()
    return row


def _completed_before(deps: Deps, upload: dict[str, Any]) -> bool:
    """Whether an earlier CompleteMultipartUpload of this upload succeeded: the object exists
    with the declared size (every part URL was signed with its exact Content-Length)."""
    size = stored_size(deps, upload["object_key"])
    return size is not None and size == upload["declared_bytes"]


def complete(deps: Deps, principal: Principal, upload_id: str, body: dict[str, Any]) -> dict[str, Any]:
    upload = owned(deps, principal, upload_id)
    if not can_complete(UploadStatus(upload["status"])):
        raise aborted()
    s = deps.settings
    if upload["multipart_upload_id"]:
        parts = body.get("parts")
        if not parts:
            raise Invalid("INVALID_BODY", "completing a multipart upload needs 'parts'", {"field": "parts"})
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
                raise Invalid("INVALID_PARTS", f"S3 refused the parts: {code}", {"s3_error": code}) from None
            else:
                raise Unavailable("STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    return public_upload(mark_uploaded(deps, upload_id, uploaded_size(deps, upload)))


def abort(deps: Deps, principal: Principal, upload_id: str) -> dict[str, Any]:
    """ABORTED, then its object deleted; refused (409) while a job not finished needs the input.

    The row changes first, under the user's lock that job creation also takes (``quotas``), so
    no job can be created for the upload between the check and the deletion; a failed S3 call
    leaves it ABORTED (the multipart id recorded) and a retried abort finishes the cleanup."""
    upload = owned(deps, principal, upload_id)
    s = deps.settings
    with deps.db.connection() as conn, conn.transaction():
        usage.lock_user(conn, principal.user_id)
        busy = jobs_repo.active_for_upload(conn, upload_id)
        if busy:
            raise Conflict(
                "UPLOAD_IN_USE",
                "a job that has not finished uses this upload; cancel it or wait for it to finish",
                {"upload_id": upload_id, "job_ids": busy},
            )
        uploads_repo.abort(
            conn, upload_id, user_id=principal.user_id, multipart_upload_id=upload["multipart_upload_id"]
        )
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
        raise Unavailable("STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    with deps.db.connection() as conn:
        row = uploads_repo.abort(conn, upload_id, user_id=principal.user_id)
    assert row is not None
    return public_upload(row)
