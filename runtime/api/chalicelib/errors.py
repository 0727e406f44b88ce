"""One error shape for every answer the API gives: ``{"error": {"code", "message", "details"}}``.

The logic raises domain errors (``chalicelib.domain``); the route wrapper turns them into
responses with :func:`domain_response`, whose :data:`STATUS` is the one map from a kind of
refusal to an HTTP status. The HTTP middleware rewrites the errors Chalice produces itself
(405, 415, its own view errors) into the same shape, so a client parses exactly one format.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from chalice import Response

from runtime.api.chalicelib.domain import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Throttled,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)

#: The HTTP status of each kind of refusal.
STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unprocessable: 422,
    Throttled: 429,
    Unavailable: 503,
}


def status_of(err: DomainError) -> int:
    """The status of the nearest kind in the error's class hierarchy (a bare DomainError is a bug)."""
    for kind in type(err).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise TypeError(f"{type(err).__name__} is no kind of chalicelib.domain error with an HTTP status")


#: Longest ``details.problems`` list an answer carries; the rest are counted, not listed, so a
#: request cannot make an error answer many times its own size.
MAX_PROBLEMS = 20


def capped(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with at most :data:`MAX_PROBLEMS` problems and ``problems_omitted`` counting the rest."""
    problems = details.get("problems")
    if not isinstance(problems, list) or len(problems) <= MAX_PROBLEMS:
        return details
    return {**details, "problems": problems[:MAX_PROBLEMS], "problems_omitted": len(problems) - MAX_PROBLEMS}


def domain_response(err: DomainError, headers: dict[str, str] | None = None) -> Response:
    """The error's answer; a refusal naming ``retry_after_seconds`` also gets ``Retry-After``."""
    retry = err.details.get("retry_after_seconds")
    if isinstance(retry, int) and not isinstance(retry, bool):
        headers = {"Retry-After": str(max(1, retry)), **(headers or {})}
    return error_response(status_of(err), err.code, err.message, capped(err.details), headers)


class ApiError(Exception):
    """An error that names its HTTP status itself. Only playback.py still raises it (until its
    playlist rewrite lands); new code raises a kind from ``chalicelib.domain``."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    def to_response(self, headers: dict[str, str] | None = None) -> Response:
        return error_response(self.status, self.code, self.message, self.details, headers)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | uuid.UUID):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | set | frozenset | tuple):
        return list(value) if not isinstance(value, bytes) else value.decode("utf-8", "replace")
    return str(value)


def dumps(body: Any) -> str:
    """JSON for API bodies: datetimes as ISO 8601 (UTC ``Z``), UUIDs as strings."""
    return json.dumps(body, default=_default, separators=(",", ":"), ensure_ascii=False)


#: Response headers as Chalice takes them: a value is one string or a list (a repeated header).
Headers = Mapping[str, str | list[str]]

BASE_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def json_response(status: int, body: Any, headers: Headers | None = None) -> Response:
    return Response(body=dumps(body), status_code=status, headers={**BASE_HEADERS, **(headers or {})})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, headers: Headers | None = None
) -> Response:
    return json_response(status, error_body(code, message, details), headers)


#: Chalice's own error codes (``{"Code": ..., "Message": ...}``) -> ours.
_CHALICE_CODES = {
    "MethodNotAllowedError": "METHOD_NOT_ALLOWED",
    "UnsupportedMediaType": "UNSUPPORTED_MEDIA_TYPE",
    "BadRequestError": "BAD_REQUEST",
    "BadRequest": "BAD_REQUEST",
    "UnauthorizedError": "UNAUTHORIZED",
    "ForbiddenError": "FORBIDDEN",
    "NotFoundError": "NOT_FOUND",
    "ConflictError": "CONFLICT",
    "UnprocessableEntityError": "UNPROCESSABLE",
    "TooManyRequestsError": "TOO_MANY_REQUESTS",
    "RequestTimeoutError": "REQUEST_TIMEOUT",
    "InternalServerError": "INTERNAL_ERROR",
}


def normalise(response: Response) -> Response:
    """Rewrite a Chalice-generated error body into our shape (leaves ours untouched)."""
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = _CHALICE_CODES.get(str(body["Code"]), "ERROR")
        message = str(body["Message"])
        if code == "INTERNAL_ERROR":
            message = "an internal error occurred; it has been logged"
        details: dict[str, Any] = {}
        if "Allow" in response.headers:
            allow = response.headers["Allow"]
            methods = allow if isinstance(allow, list) else allow.split(",")
            details["allowed_methods"] = [m.strip() for m in methods]
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        return error_response(response.status_code, code, message, details, headers)
    return response


#: For API Gateway (gateway responses): an unknown path is API Gateway's MISSING_AUTHENTICATION_TOKEN
#: (403); answer it as 404 in the API's shape. ``$context.path`` is filled in by API Gateway.
GATEWAY_NOT_FOUND = {
    "response_type": "MISSING_AUTHENTICATION_TOKEN",
    "status_code": "404",
    "template": '{"error": {"code": "NOT_FOUND", "message": "no route matches $context.path", "details": {}}}',
}
