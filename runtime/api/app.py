"""TranscodeX API: the Chalice app. Views are thin: parse, call chalicelib, map the result.

Importing this module needs no environment and no network (dependencies are built on the
first request), and ``app.routes`` is complete at import: the CDK app reads it at synth to
generate the REST API, one resource per route (no ``{proxy+}``).
"""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Response

from runtime.api.chalicelib import accounts, deps, media, playback, schemas, tokens
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.errors import ApiError, json_response
from runtime.api.chalicelib.requests import (
    base_url,
    client_ip,
    header,
    json_body,
    parse_id,
    query,
    user_agent,
)
from runtime.api.chalicelib.routing import Api, QueryParam, pending_cookie
from runtime.shared import aws

app = Chalice(app_name="transcodex-api")
api = Api(app)
api.install_middleware()


@app.middleware("http")
def _as_api(event: Any, get_response: Any) -> Response:
    """Every request runs as the API component (its AWS calls are checked against its role)."""
    with aws.acting_as("api"):
        return get_response(event)


E = schemas.ERROR


def _request() -> Any:
    return app.current_request


def _auth(*, session: bool = True, api_key: bool = False) -> Principal:
    principal = accounts.authenticate(deps.get(), _request(), session=session, api_key=api_key)
    if principal.set_cookie:
        pending_cookie.set(principal.set_cookie)
    return principal


def _media_auth() -> Principal:
    return _auth(session=True, api_key=True)


def _base() -> str:
    return base_url(_request(), deps.get().public_base_url)


# --- health -------------------------------------------------------------------------------


@api.route("/health", "GET", summary="Liveness", tag="health", auth="none", responses={200: ("ok", schemas.HEALTH)})
def health() -> Response:
    return json_response(200, {"status": "ok"})


def _register_area_health(area: str) -> None:
    """The seed's per-area liveness routes (``/users/health`` …)."""

    def area_health() -> Response:
        return json_response(200, {"status": "ok", "area": area})

    area_health.__name__ = f"{area}_health"
    api.route(
        f"/{area}/health",
        "GET",
        summary=f"Liveness of /{area} (the seed's route)",
        tag="health",
        auth="none",
        responses={200: ("ok", schemas.HEALTH)},
    )(area_health)


for _area in ("users", "sessions", "apikeys"):
    _register_area_health(_area)


@api.route(
    "/media/health",
    "GET",
    summary="Liveness of /media; checks the API key like the seed",
    tag="health",
    auth="media",
    responses={200: ("ok", schemas.HEALTH)},
)
def media_health() -> Response:
    _media_auth()
    return json_response(200, {"status": "ok", "area": "media"})


@api.route(
    "/openapi.json",
    "GET",
    summary="This document",
    tag="health",
    auth="none",
    responses={200: ("OpenAPI 3 document", {"type": "object"})},
)
def openapi_document() -> Response:
    return json_response(200, api.openapi(base_url(_request())), {"Cache-Control": "public, max-age=300"})


# --- users ----------------------------------------------------------------------------------


@api.route(
    "/users",
    "POST",
    summary="Create a user (the seed's body)",
    tag="users",
    auth="none",
    body=schemas.CREATE_USER,
    responses={201: ("created", schemas.USER), 409: ("email or username taken", E)},
)
def create_user() -> Response:
    body = json_body(_request(), schemas.CREATE_USER)
    user = accounts.create_user(deps.get(), body["name"], body["username"], body["email"], body["password"])
    return json_response(201, user)


@api.route(
    "/users",
    "DELETE",
    summary="Delete the calling user and everything they own",
    tag="users",
    auth="session",
    responses={200: ("deleted", schemas.MESSAGE)},
)
def delete_user() -> Response:
    principal = _auth()
    accounts.delete_user(deps.get(), principal.user_id)
    return json_response(200, {"message": "user deleted"}, {"Set-Cookie": accounts.clear_cookie()})


# --- sessions -------------------------------------------------------------------------------


@api.route(
    "/sessions",
    "POST",
    summary="Log in: access + refresh tokens, also as the seed's cookie",
    tag="sessions",
    auth="none",
    body=schemas.CREATE_SESSION,
    responses={
        201: ("session created, cookies set", schemas.TOKENS),
        401: ("invalid credentials", E),
        429: ("too many failed logins lately", E),
    },
)
def create_session() -> Response:
    request = _request()
    body = json_body(request, schemas.CREATE_SESSION)
    d = deps.get()
    issued = accounts.login(d, body["email"], body["password"], user_agent(request), client_ip(request))
    return json_response(
        201,
        {"message": "session created, cookies set", **issued.body()},
        {"Set-Cookie": issued.cookie(d.settings.refresh_token_ttl_seconds)},
    )


@api.route(
    "/sessions/refresh",
    "POST",
    summary="Rotate the refresh token (body or cookie); reuse revokes the session",
    tag="sessions",
    auth="none",
    body=schemas.REFRESH_SESSION,
    body_required=False,
    responses={200: ("new tokens", schemas.TOKENS), 401: ("invalid, revoked or reused refresh token", E)},
)
def refresh_session() -> Response:
    request = _request()
    body = json_body(request, schemas.REFRESH_SESSION, required=False)
    token = body.get("refresh_token") or accounts.cookie_tokens(request)[1]
    if not token:
        raise ApiError(401, "UNAUTHENTICATED", "send refresh_token in the body or the authorization cookie")
    d = deps.get()
    issued = accounts.refresh(d, token)
    return json_response(
        200,
        {"message": "session refreshed", **issued.body()},
        {"Set-Cookie": issued.cookie(d.settings.refresh_token_ttl_seconds)},
    )


@api.route(
    "/sessions",
    "GET",
    summary="The current session",
    tag="sessions",
    auth="session",
    responses={200: ("the session", schemas.SESSION)},
)
def current_session() -> Response:
    return json_response(200, accounts.get_session(deps.get(), _auth()))


@api.route(
    "/sessions/all",
    "GET",
    summary="All active sessions of the caller",
    tag="sessions",
    auth="session",
    responses={200: ("sessions", {"type": "array", "items": schemas.SESSION})},
)
def all_sessions() -> Response:
    return json_response(200, accounts.list_sessions(deps.get(), _auth()))


@api.route(
    "/sessions",
    "DELETE",
    summary="Log out of this session (immediately)",
    tag="sessions",
    auth="session",
    responses={200: ("logged out", schemas.MESSAGE)},
)
def delete_session() -> Response:
    accounts.revoke_session(deps.get(), _auth())
    return json_response(
        200, {"message": "successfully logged out of this session"}, {"Set-Cookie": accounts.clear_cookie()}
    )


@api.route(
    "/sessions/all",
    "DELETE",
    summary="Log out everywhere (immediately)",
    tag="sessions",
    auth="session",
    responses={200: ("logged out", schemas.MESSAGE)},
)
def delete_all_sessions() -> Response:
    revoked = accounts.revoke_all_sessions(deps.get(), _auth())
    return json_response(
        200,
        {"message": "successfully logged out of all sessions for this user", "revoked": revoked},
        {"Set-Cookie": accounts.clear_cookie()},
    )


# --- API keys -------------------------------------------------------------------------------


@api.route(
    "/apikeys",
    "POST",
    summary="Create a named API key; the secret is shown once",
    tag="apikeys",
    auth="session",
    body=schemas.CREATE_API_KEY,
    body_required=False,
    responses={200: ("the new key, with its secret", schemas.API_KEY), 409: ("too many active keys", E)},
)
def create_api_key() -> Response:
    principal = _auth()
    body = json_body(_request(), schemas.CREATE_API_KEY, required=False)
    key = accounts.create_api_key(
        deps.get(), principal.user_id, body.get("name", "default"), body.get("expires_in_days")
    )
    # 200 like the seed (its clients check for it).
    return json_response(200, key)


@api.route(
    "/apikeys",
    "GET",
    summary="The caller's active API keys (never their secrets)",
    tag="apikeys",
    auth="session",
    responses={200: ("keys", {"type": "object", "properties": {"keys": {"type": "array", "items": schemas.API_KEY}}})},
)
def list_api_keys() -> Response:
    return json_response(200, {"keys": accounts.list_api_keys(deps.get(), _auth().user_id)})


@api.route(
    "/apikeys",
    "DELETE",
    summary="Revoke the key sent in x-api-key (the seed's route)",
    tag="apikeys",
    auth="session+key",
    responses={200: ("revoked", schemas.MESSAGE), 404: ("no such active key", E)},
)
def revoke_api_key_by_header() -> Response:
    principal = _auth()
    key = header(_request(), "x-api-key")
    if not key:
        raise ApiError(400, "API_KEY_HEADER_REQUIRED", "send the key to revoke in the x-api-key header")
    revoked = accounts.revoke_api_key(deps.get(), principal.user_id, key=key)
    return json_response(200, {"message": "successfully revoked the api key", "key": revoked})


@api.route(
    "/apikeys/{key_id}",
    "DELETE",
    summary="Revoke one API key by id",
    tag="apikeys",
    auth="session",
    responses={200: ("revoked", schemas.MESSAGE), 404: ("no such active key", E)},
)
def revoke_api_key(key_id: str) -> Response:
    principal = _auth()
    revoked = accounts.revoke_api_key(deps.get(), principal.user_id, key_id=parse_id(key_id, "key_id"))
    return json_response(200, {"message": "successfully revoked the api key", "key": revoked})


# --- uploads --------------------------------------------------------------------------------


@api.route(
    "/media/upload",
    "POST",
    summary="Start an upload: a presigned PUT (or POST form, or multipart parts)",
    tag="media",
    auth="media",
    body=schemas.CREATE_UPLOAD,
    responses={
        201: ("upload created", schemas.UPLOAD),
        413: ("declared size over the limit", E),
        422: ("unsupported mime type", E),
    },
)
def create_upload() -> Response:
    principal = _media_auth()
    body = json_body(_request(), schemas.CREATE_UPLOAD)
    return json_response(201, media.create_upload(deps.get(), principal, body))


@api.route(
    "/media/upload/{upload_id}/complete",
    "POST",
    summary="Mark an upload done (completes a multipart upload)",
    tag="media",
    auth="media",
    body=schemas.COMPLETE_UPLOAD,
    body_required=False,
    responses={
        200: ("uploaded", schemas.UPLOAD),
        404: ("not your upload", E),
        409: ("not uploaded yet", E),
        413: ("file over the limit", E),
    },
)
def complete_upload(upload_id: str) -> Response:
    principal = _media_auth()
    body = json_body(_request(), schemas.COMPLETE_UPLOAD, required=False)
    return json_response(200, media.complete_upload(deps.get(), principal, parse_id(upload_id, "upload_id"), body))


@api.route(
    "/media/upload/{upload_id}/abort",
    "POST",
    summary="Abandon an upload (aborts a multipart upload)",
    tag="media",
    auth="media",
    responses={200: ("aborted", schemas.UPLOAD), 404: ("not your upload", E)},
)
def abort_upload(upload_id: str) -> Response:
    principal = _media_auth()
    return json_response(200, media.abort_upload(deps.get(), principal, parse_id(upload_id, "upload_id")))


# --- jobs -----------------------------------------------------------------------------------


@api.route(
    "/media/process",
    "POST",
    summary="Process an upload; Idempotency-Key makes retries safe",
    tag="media",
    auth="media",
    body=schemas.PROCESS,
    responses={
        201: ("job queued", schemas.JOB),
        200: ("the job of an earlier request with this key", schemas.JOB),
        404: ("not your upload", E),
        409: ("file not uploaded yet", E),
        413: ("file too large", E),
        422: ("invalid job", E),
        503: ("queue unavailable; the job was marked FAILED", E),
    },
)
def process() -> Response:
    principal = _media_auth()
    request = _request()
    key = header(request, "idempotency-key")
    if key is not None and (len(key) > 255 or any(not 0x21 <= ord(c) <= 0x7E for c in key)):
        raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-255 printable ASCII characters")
    body = json_body(request, schemas.PROCESS_ENVELOPE)
    job, created = media.process(deps.get(), principal, body, key)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return json_response(201 if created else 200, media.job_body(job), headers)


@api.route(
    "/media/status/{job_id}",
    "GET",
    summary="A job's status, progress and error",
    tag="media",
    auth="media",
    responses={200: ("the job", schemas.JOB), 404: ("not your job", E)},
)
def job_status(job_id: str) -> Response:
    principal = _media_auth()
    return json_response(200, media.job_body(media.owned_job(deps.get(), principal, parse_id(job_id, "job_id"))))


@api.route(
    "/media/download/{job_id}",
    "GET",
    summary="Presigned URLs of a finished job's outputs (+ HLS playback URL)",
    tag="media",
    auth="media",
    responses={200: ("outputs", schemas.DOWNLOAD), 404: ("not your job", E), 409: ("not finished", E)},
)
def download(job_id: str) -> Response:
    principal = _media_auth()
    d = deps.get()
    ident = parse_id(job_id, "job_id")
    url = playback.playback_url(d, _base(), principal.user_id, ident)
    return json_response(200, media.download(d, principal, ident, url))


@api.route(
    "/media/jobs",
    "GET",
    summary="The caller's jobs, newest first (keyset pagination)",
    tag="media",
    auth="media",
    query=(
        QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "page size (20)"),
        QueryParam(
            "status",
            {"type": "string", "enum": ["QUEUED", "DISPATCHED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]},
        ),
        QueryParam("cursor", {"type": "string", "maxLength": 200}, "next_cursor of the previous page"),
    ),
    responses={200: ("a page of jobs", schemas.JOB_LIST)},
)
def list_jobs() -> Response:
    principal = _media_auth()
    return json_response(200, media.list_jobs(deps.get(), principal, query(_request())))


@api.route(
    "/media/jobs/{job_id}/cancel",
    "POST",
    summary="Cancel a job that has not finished",
    tag="media",
    auth="media",
    responses={200: ("cancelled", schemas.JOB), 404: ("not your job", E), 409: ("already finished", E)},
)
def cancel_job(job_id: str) -> Response:
    principal = _media_auth()
    return json_response(200, media.job_body(media.cancel(deps.get(), principal, parse_id(job_id, "job_id"))))


# --- HLS playback ---------------------------------------------------------------------------

_TOKEN = (QueryParam("token", {"type": "string", "maxLength": 4096}, "playback token from GET /media/download"),)
_PLAYLIST = {"type": "string"}


def _playlist(text: str) -> Response:
    return Response(
        body=text,
        status_code=200,
        headers={
            "Content-Type": playback.CONTENT_TYPE,
            "Cache-Control": "private, max-age=60",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _playback_user(job_id: str) -> tuple[str, str]:
    request = _request()
    token = query(request).get("token")
    principal = None if token else _auth(session=True, api_key=True)
    return playback.authorise(deps.get(), job_id, token, principal), token or ""


@api.route(
    "/media/playback/{job_id}/master.m3u8",
    "GET",
    summary="HLS master playlist; variant URIs point back here",
    tag="playback",
    auth="playback",
    query=_TOKEN,
    content_type=playback.CONTENT_TYPE,
    responses={
        200: ("master playlist", _PLAYLIST),
        404: ("not your job, or no HLS output", E),
        409: ("not finished", E),
    },
)
def playback_master(job_id: str) -> Response:
    ident = parse_id(job_id, "job_id")
    user_id, token = _playback_user(ident)
    d = deps.get()
    # Called with credentials instead of a token: variant URLs still need one (players send no headers).
    token = token or tokens.playback_token(user_id, ident, d.jwt_secret)
    return _playlist(playback.master(d, user_id, ident, _base(), token))


@api.route(
    "/media/playback/{job_id}/{variant}/index.m3u8",
    "GET",
    summary="HLS variant playlist with presigned segment URLs",
    tag="playback",
    auth="playback",
    query=_TOKEN,
    content_type=playback.CONTENT_TYPE,
    responses={200: ("variant playlist", _PLAYLIST), 404: ("not your job, or no such variant", E)},
)
def playback_variant(job_id: str, variant: str) -> Response:
    ident = parse_id(job_id, "job_id")
    user_id, _token = _playback_user(ident)
    return _playlist(playback.variant(deps.get(), user_id, ident, variant))
