"""TranscodeX API: the Chalice app. Views are thin: call chalicelib, shape the answer.

Each route declares its auth, parameters and body; the route wrapper (chalicelib/routing.py)
authenticates and validates from those declarations and hands the view its ``principal``,
path ids, parameters and ``body``. Importing this module needs no environment and no network
(dependencies are built on the first request), and ``app.routes`` is complete at import:
``make runtime-interface`` copies it into constructs_lib/runtime_interface.json, from which
synth generates the REST API, one resource per route (no ``{proxy+}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response
from chalice.app import Request

from runtime.api.chalicelib import accounts, auth, deps, jobs, playback, schemas, uploads
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.domain import Unauthenticated
from runtime.api.chalicelib.errors import json_response
from runtime.api.chalicelib.requests import HeaderParam, QueryParam, base_url, client_ip, user_agent
from runtime.api.chalicelib.routing import Api
from runtime.shared import aws
from runtime.shared.status import JobStatus

app = Chalice(app_name="transcodex-api")
api = Api(app, deps.get)
api.install_middleware()


@app.middleware("http")
def _as_api(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Every request runs as the API component (its AWS calls are checked against its role)."""
    with aws.acting_as("api"):
        return get_response(event)


E = schemas.ERROR


def _request() -> Request:
    request = app.current_request
    assert request is not None  # Chalice sets it before calling a view
    return request


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
def media_health(principal: Principal) -> Response:
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
    responses={
        201: ("created (also the answer for an email that already has an account)", schemas.USER),
        409: ("username taken", E),
        429: ("too many sign-ups from this address lately", E),
    },
)
def create_user(body: dict[str, Any]) -> Response:
    user = accounts.create_user(
        deps.get(), body["name"], body["username"], body["email"], body["password"], client_ip(_request())
    )
    return json_response(201, user)


@api.route(
    "/users",
    "DELETE",
    summary="Delete the calling user and everything they own",
    tag="users",
    auth="session",
    responses={200: ("deleted", schemas.MESSAGE)},
)
def delete_user(principal: Principal) -> Response:
    accounts.delete_user(deps.get(), principal.user_id)
    return json_response(200, {"message": "user deleted"}, {"Set-Cookie": accounts.clear_cookie()})


# --- sessions -------------------------------------------------------------------------------


@api.route(
    "/sessions",
    "POST",
    summary="Log in: the seed's cookie (both tokens) and the access token in the body",
    tag="sessions",
    auth="none",
    body=schemas.CREATE_SESSION,
    responses={
        201: ("session created, cookies set", schemas.TOKENS),
        401: ("invalid credentials", E),
        429: ("too many failed logins lately (Retry-After)", E),
    },
)
def create_session(body: dict[str, Any]) -> Response:
    request = _request()
    d = deps.get()
    issued = accounts.login(d, body["email"], body["password"], user_agent(request), client_ip(request))
    return json_response(
        201,
        {
            "message": "session created, cookies set",
            **issued.body(with_refresh_token=bool(body.get("include_refresh_token"))),
        },
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
def refresh_session(body: dict[str, Any]) -> Response:
    d = deps.get()
    in_body = body.get("refresh_token")
    token = in_body or auth.cookie_tokens(_request())[1]
    if not token:
        raise Unauthenticated("UNAUTHENTICATED", "send refresh_token in the body or the authorization cookie")
    if not in_body:
        auth.check_origin(d, _request())  # a cookie rotated on a cross-site page's behalf: refused
    issued = accounts.refresh(d, token)
    # A client that sent its refresh token keeps the next one itself; a cookie client gets it
    # in the cookie alone.
    return json_response(
        200,
        {"message": "session refreshed", **issued.body(with_refresh_token=bool(in_body))},
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
def current_session(principal: Principal) -> Response:
    return json_response(200, accounts.get_session(deps.get(), principal))


@api.route(
    "/sessions/all",
    "GET",
    summary="All active sessions of the caller",
    tag="sessions",
    auth="session",
    responses={200: ("sessions", {"type": "array", "items": schemas.SESSION})},
)
def all_sessions(principal: Principal) -> Response:
    return json_response(200, accounts.list_sessions(deps.get(), principal))


@api.route(
    "/sessions",
    "DELETE",
    summary="Log out of this session (immediately)",
    tag="sessions",
    auth="session",
    responses={200: ("logged out", schemas.MESSAGE)},
)
def delete_session(principal: Principal) -> Response:
    accounts.revoke_session(deps.get(), principal)
    return json_response(
        200, {"message": "successfully logged out of this session"}, {"Set-Cookie": accounts.clear_cookie()}
    )


@api.route(
    "/sessions/all",
    "DELETE",
    summary="Log out everywhere (immediately); ?revoke_api_keys=true revokes every API key too",
    tag="sessions",
    auth="session",
    params=(
        QueryParam(
            "revoke_api_keys",
            {"type": "boolean"},
            "also revoke every API key of the user (and the playback tokens they minted); default false",
        ),
    ),
    responses={200: ("logged out", schemas.MESSAGE)},
)
def delete_all_sessions(principal: Principal, revoke_api_keys: bool | None) -> Response:
    revoked, keys = accounts.revoke_all_sessions(deps.get(), principal, api_keys=bool(revoke_api_keys))
    return json_response(
        200,
        {
            "message": "successfully logged out of all sessions for this user",
            "revoked": revoked,
            "revoked_api_keys": keys,
        },
        {"Set-Cookie": accounts.clear_cookie()},
    )


# --- API keys -------------------------------------------------------------------------------


@api.route(
    "/apikeys",
    "POST",
    summary="Create a named API key; the secret is shown once. Needs a login in the last 15 minutes",
    tag="apikeys",
    auth="session",
    body=schemas.CREATE_API_KEY,
    body_required=False,
    responses={
        200: ("the new key, with its secret", schemas.API_KEY),
        403: ("REAUTH_REQUIRED: the session's login is older than 15 minutes", E),
        409: ("too many active keys", E),
    },
)
def create_api_key(principal: Principal, body: dict[str, Any]) -> Response:
    d = deps.get()
    accounts.require_recent_login(d, principal)
    key = accounts.create_api_key(d, principal.user_id, body.get("name", "default"), body.get("expires_in_days"))
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
def list_api_keys(principal: Principal) -> Response:
    return json_response(200, {"keys": accounts.list_api_keys(deps.get(), principal.user_id)})


@api.route(
    "/apikeys",
    "DELETE",
    summary="Revoke the key sent in x-api-key (the seed's route)",
    tag="apikeys",
    auth="session",
    params=(
        HeaderParam(
            "x-api-key",
            {"type": "string", "minLength": 1},
            "the key to revoke (the caller authenticates with a session)",
            required=True,
            code="API_KEY_HEADER_REQUIRED",
            message="send the key to revoke in the x-api-key header",
        ),
    ),
    responses={200: ("revoked", schemas.MESSAGE), 404: ("no such active key", E)},
)
def revoke_api_key_by_header(principal: Principal, x_api_key: str) -> Response:
    revoked = accounts.revoke_api_key(deps.get(), principal.user_id, key=x_api_key)
    return json_response(200, {"message": "successfully revoked the api key", "key": revoked})


@api.route(
    "/apikeys/{key_id}",
    "DELETE",
    summary="Revoke one API key by id",
    tag="apikeys",
    auth="session",
    responses={200: ("revoked", schemas.MESSAGE), 404: ("no such active key", E)},
)
def revoke_api_key(principal: Principal, key_id: str) -> Response:
    revoked = accounts.revoke_api_key(deps.get(), principal.user_id, key_id=key_id)
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
        422: ("unsupported mime type, a bidi control in the name, or no size where one is required", E),
        429: ("a per-user limit (pending uploads, stored bytes) is reached; see Retry-After", E),
    },
)
def create_upload(principal: Principal, body: dict[str, Any]) -> Response:
    return json_response(201, uploads.create(deps.get(), principal, body))


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
def complete_upload(principal: Principal, upload_id: str, body: dict[str, Any]) -> Response:
    return json_response(200, uploads.complete(deps.get(), principal, upload_id, body))


@api.route(
    "/media/upload/{upload_id}/abort",
    "POST",
    summary="Abandon an upload (aborts a multipart upload)",
    tag="media",
    auth="media",
    responses={
        200: ("aborted", schemas.UPLOAD),
        404: ("not your upload", E),
        409: ("a job that has not finished uses the upload", E),
    },
)
def abort_upload(principal: Principal, upload_id: str) -> Response:
    return json_response(200, uploads.abort(deps.get(), principal, upload_id))


# --- jobs -----------------------------------------------------------------------------------


@api.route(
    "/media/process",
    "POST",
    summary="Process an upload; Idempotency-Key makes retries safe",
    tag="media",
    auth="media",
    body=schemas.PROCESS_ENVELOPE,
    published_body=schemas.PROCESS,
    params=(
        HeaderParam(
            "Idempotency-Key",
            {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
            "a retried request with the same key returns the same job",
            code="INVALID_IDEMPOTENCY_KEY",
            message="Idempotency-Key must be 1-255 printable ASCII characters",
        ),
    ),
    responses={
        201: ("job queued", schemas.JOB),
        200: ("the job of an earlier request with this key", schemas.JOB),
        404: ("not your upload", E),
        409: ("file not uploaded yet", E),
        413: ("file too large", E),
        422: ("invalid job", E),
        429: ("a per-user limit (active jobs, jobs per hour) is reached; see Retry-After", E),
        503: ("queue unavailable; the job was marked FAILED", E),
    },
)
def process(principal: Principal, body: dict[str, Any], idempotency_key: str | None) -> Response:
    job, created = jobs.process(deps.get(), principal, body, idempotency_key)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return json_response(201 if created else 200, jobs.public_job(job), headers)


@api.route(
    "/media/status/{job_id}",
    "GET",
    summary="A job's status, progress and error",
    tag="media",
    auth="media",
    responses={200: ("the job", schemas.JOB), 404: ("not your job", E)},
)
def job_status(principal: Principal, job_id: str) -> Response:
    return json_response(200, jobs.public_job(jobs.owned(deps.get(), principal, job_id)))


@api.route(
    "/media/download/{job_id}",
    "GET",
    summary="Presigned URLs of a finished job's outputs (+ HLS playback URL)",
    tag="media",
    auth="media",
    responses={200: ("outputs", schemas.DOWNLOAD), 404: ("not your job", E), 409: ("not finished", E)},
)
def download(principal: Principal, job_id: str) -> Response:
    d = deps.get()
    url = playback.playback_url(d, _base(), principal, job_id)
    return json_response(200, jobs.download(d, principal, job_id, url))


@api.route(
    "/media/jobs",
    "GET",
    summary="The caller's jobs, newest first (keyset pagination)",
    tag="media",
    auth="media",
    params=(
        QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100}, f"page size ({jobs.DEFAULT_PAGE_SIZE})"),
        QueryParam(
            "status",
            {"type": "string", "enum": [s.value for s in JobStatus]},
            "only jobs in this status (case-insensitive)",
            normalise=str.upper,
        ),
        QueryParam(
            "cursor",
            {"type": "string", "maxLength": 200},
            "next_cursor of the previous page",
            code="INVALID_CURSOR",
            message="cursor is not one this API returned",
        ),
    ),
    strict_query=True,
    responses={200: ("a page of jobs", schemas.JOB_LIST)},
)
def list_jobs(principal: Principal, limit: int | None, status: str | None, cursor: str | None) -> Response:
    return json_response(200, jobs.page(deps.get(), principal, limit, status, cursor))


@api.route(
    "/media/jobs/{job_id}/cancel",
    "POST",
    summary="Cancel a job that has not finished",
    tag="media",
    auth="media",
    responses={200: ("cancelled", schemas.JOB), 404: ("not your job", E), 409: ("already finished", E)},
)
def cancel_job(principal: Principal, job_id: str) -> Response:
    return json_response(200, jobs.public_job(jobs.cancel(deps.get(), principal, job_id)))


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


@api.route(
    "/media/playback/{job_id}/master.m3u8",
    "GET",
    summary="HLS master playlist; variant URIs point back here",
    tag="playback",
    auth="playback",
    params=_TOKEN,
    content_type=playback.CONTENT_TYPE,
    responses={
        200: ("master playlist", _PLAYLIST),
        404: ("not your job, or no HLS output", E),
        409: ("not finished", E),
    },
)
def playback_master(principal: Principal, job_id: str) -> Response:
    d = deps.get()
    # Called with credentials instead of a token: variant URLs still need one (players send no headers).
    token = principal.playback_token or playback.token_for(d, principal, job_id)
    return _playlist(playback.master(d, principal.user_id, job_id, _base(), token))


@api.route(
    "/media/playback/{job_id}/{variant}/index.m3u8",
    "GET",
    summary="HLS variant playlist with presigned segment URLs",
    tag="playback",
    auth="playback",
    params=_TOKEN,
    content_type=playback.CONTENT_TYPE,
    responses={200: ("variant playlist", _PLAYLIST), 404: ("not your job, or no such variant", E)},
)
def playback_variant(principal: Principal, job_id: str, variant: str) -> Response:
    return _playlist(playback.variant(deps.get(), principal.user_id, job_id, variant))
