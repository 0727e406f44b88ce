"""HLS playback through the API: a player gets playlists from the API and segments straight
from S3.

The master playlist is served with every playlist URI it references (video variants, audio
renditions, I-frame playlists) rewritten to this API's variant route (by position in the
master, so any layout the worker writes works); such a playlist is served with every segment
URI (and ``EXT-X-MAP``/``EXT-X-KEY`` URIs) rewritten to a presigned S3 GET URL. Playlists are
read and written by runtime.shared.hls. Players cannot send headers, so both routes accept a
short-lived playback token in the query string, scoped to one job of one user and bound to the
session or API key that asked for it (``auth.py`` checks both).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api.chalicelib import tokens
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.errors import ApiError
from runtime.shared import hls, keys
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import PRESIGNED_URL_MAX_TTL_SECONDS, presigned_ttl
from runtime.shared.status import JobStatus
from runtime.shared.storage import is_missing

MAX_PLAYLIST_BYTES = 1024 * 1024
#: Segment URLs live as long as presigned URLs may (runtime.shared.settings); a viewing longer
#: than that reloads the playlist, while the playback token (settings.playback_token_ttl_seconds)
#: admits it.
SEGMENT_URL_TTL_SECONDS = presigned_ttl("SEGMENT_URL_TTL_SECONDS", PRESIGNED_URL_MAX_TTL_SECONDS)
CONTENT_TYPE = "application/vnd.apple.mpegurl"


def playback_path(job_id: str) -> str:
    return f"/media/playback/{job_id}/master.m3u8"


def token_for(deps: Deps, principal: Principal, job_id: str) -> str:
    """A playback token for one job, bound to the API key or session the caller used."""
    return tokens.playback_token(
        principal.user_id,
        job_id,
        deps.jwt_secret,
        deps.settings.playback_token_ttl_seconds,
        session_id=None if principal.api_key_id else principal.session_id,
        api_key_id=principal.api_key_id,
    )


def playback_url(deps: Deps, base: str, principal: Principal, job_id: str) -> str:
    token = token_for(deps, principal, job_id)
    return f"{base}{playback_path(job_id)}?token={quote(token, safe='')}"


def _resolve(job_prefix: str, playlist_key: str, uri: str) -> str | None:
    """The object key a relative URI names, if it stays inside the job's output folder."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), path))
    return key if key.startswith(job_prefix) else None


def _job_and_master(deps: Deps, user_id: str, job_id: str) -> tuple[dict[str, Any], str]:
    with deps.db.connection() as conn:
        job = jobs_repo.get(conn, job_id, user_id)
        if job is None:
            raise ApiError(404, "JOB_NOT_FOUND", "no playable job has this id", {"job_id": job_id})
        if job["status"] != JobStatus.SUCCEEDED.value:
            raise ApiError(
                409,
                "JOB_NOT_FINISHED",
                f"the job is {job['status']}; it plays once it has SUCCEEDED",
                {"status": job["status"]},
            )
        master = outputs_repo.first_key(conn, job_id, OutputRole.HLS_MASTER)
    if master is None:
        raise ApiError(404, "NO_HLS_OUTPUT", "this job produced no HLS stream", {"job_id": job_id})
    return job, master


def _read(deps: Deps, key: str) -> str:
    try:
        obj = deps.s3.get_object(Bucket=deps.settings.output_bucket, Key=key)
        if int(obj.get("ContentLength") or 0) > MAX_PLAYLIST_BYTES:
            raise ApiError(502, "PLAYLIST_TOO_LARGE", "the stored playlist is too large to serve")
        return obj["Body"].read(MAX_PLAYLIST_BYTES + 1).decode("utf-8", "replace")
    except ClientError as err:
        if is_missing(err):
            raise ApiError(404, "PLAYLIST_NOT_FOUND", "the playlist is missing from storage") from None
        raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None
    except BotoCoreError:
        raise ApiError(503, "STORAGE_UNAVAILABLE", "object storage is unavailable; retry shortly") from None


def _master_uris(text: str) -> list[str]:
    """Every relative playlist URI the master references, each once, in a stable order."""
    try:
        return [uri for uri in hls.uris(text) if hls.is_relative(uri)]
    except ValueError:
        raise ApiError(502, "INVALID_PLAYLIST", "the stored master playlist is not an HLS playlist") from None


def _rewritten(text: str, rewrite: Callable[[str], str]) -> str:
    try:
        return hls.rewrite(text, rewrite)
    except ValueError:
        raise ApiError(502, "INVALID_PLAYLIST", "the stored playlist is not an HLS playlist") from None


def master(deps: Deps, user_id: str, job_id: str, base: str, token: str) -> str:
    _job, master_key = _job_and_master(deps, user_id, job_id)
    text = _read(deps, master_key)
    index = {uri: n for n, uri in enumerate(_master_uris(text))}
    suffix = f"?token={quote(token, safe='')}" if token else ""
    return _rewritten(text, lambda uri: f"{base}/media/playback/{job_id}/{index[uri]}/index.m3u8{suffix}")


def variant(deps: Deps, user_id: str, job_id: str, number: str) -> str:
    job, master_key = _job_and_master(deps, user_id, job_id)
    if not number.isdigit() or len(number) > 4:
        raise ApiError(404, "PLAYLIST_NOT_FOUND", "no such variant playlist")
    uris = _master_uris(_read(deps, master_key))
    if int(number) >= len(uris):
        raise ApiError(404, "PLAYLIST_NOT_FOUND", "no such variant playlist", {"variants": len(uris)})
    prefix = keys.output_prefix(job["user_id"], job["id"])
    variant_key = _resolve(prefix, master_key, uris[int(number)])
    if variant_key is None:
        raise ApiError(404, "PLAYLIST_NOT_FOUND", "the variant playlist lies outside the job's outputs")
    text = _read(deps, variant_key)
    s3 = deps.s3
    bucket = deps.settings.output_bucket

    def presign(uri: str) -> str:
        key = _resolve(prefix, variant_key, uri)
        if key is None:
            return uri
        return str(
            s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=SEGMENT_URL_TTL_SECONDS
            )
        )

    return _rewritten(text, presign)
