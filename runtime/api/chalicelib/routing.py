"""Route registration that keeps the OpenAPI document in step with the app.

``@api.route(...)`` registers a Chalice route, wraps the view so every ApiError and every
unexpected exception becomes our error shape (never a stack trace), and records what the
route takes and returns; :meth:`Api.openapi` renders those records as OpenAPI 3.0.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Chalice, Response

from runtime.api.chalicelib import schemas
from runtime.api.chalicelib.errors import ApiError, error_response, normalise
from runtime.shared.log import bind

log = logging.getLogger(__name__)

#: Who may call a route: documented per route, enforced by the view itself.
AUTH_SCHEMES = {
    "none": [],
    "session": [{"bearerAuth": []}, {"cookieAuth": []}],
    "media": [{"apiKeyAuth": []}, {"bearerAuth": []}, {"cookieAuth": []}],
    "session+key": [{"bearerAuth": [], "apiKeyAuth": []}, {"cookieAuth": [], "apiKeyAuth": []}],
    "playback": [{"playbackToken": []}, {"apiKeyAuth": []}, {"bearerAuth": []}],
}

#: A Set-Cookie header a view wants added (a cookie refreshed while authenticating).
pending_cookie: contextvars.ContextVar[str | None] = contextvars.ContextVar("pending_cookie", default=None)


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass
class RouteDoc:
    path: str
    method: str
    summary: str
    tag: str
    auth: str
    body: dict[str, Any] | None
    body_required: bool
    query: tuple[QueryParam, ...]
    responses: dict[int, tuple[str, dict[str, Any] | None]]
    content_type: str = "application/json"


@dataclass
class Api:
    app: Chalice
    docs: list[RouteDoc] = field(default_factory=list)

    def route(
        self,
        path: str,
        method: str,
        *,
        summary: str,
        tag: str,
        auth: str,
        responses: dict[int, tuple[str, dict[str, Any] | None]],
        body: dict[str, Any] | None = None,
        body_required: bool = True,
        query: tuple[QueryParam, ...] = (),
        content_type: str = "application/json",
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        assert auth in AUTH_SCHEMES, auth

        def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
            @functools.wraps(view)
            def wrapped(**kwargs: Any) -> Response:
                token = pending_cookie.set(None)
                started = time.perf_counter()
                request_id = (self.app.current_request.context or {}).get("requestId") or uuid.uuid4().hex
                with bind(request_id=request_id, route=f"{method} {path}"):
                    try:
                        response = view(**kwargs)
                    except ApiError as err:
                        response = err.to_response()
                    except Exception:
                        log.exception("unhandled error")
                        response = error_response(
                            500,
                            "INTERNAL_ERROR",
                            "an internal error occurred; it has been logged",
                            {"request_id": request_id},
                        )
                    response.headers.setdefault("X-Request-Id", request_id)
                    cookie = pending_cookie.get()
                    if cookie and "Set-Cookie" not in response.headers:
                        response.headers["Set-Cookie"] = cookie
                    pending_cookie.reset(token)
                    log.info(
                        "request",
                        extra={
                            "status": response.status_code,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )
                    return response

            # Bodies are JSON; routes without a body accept any (absent) content type.
            content_types = ["application/json"] if body is not None else ["*/*"]
            self.app.route(path, methods=[method], content_types=content_types)(wrapped)
            self.docs.append(
                RouteDoc(path, method, summary, tag, auth, body, body_required, query, responses, content_type)
            )
            return wrapped

        return decorator

    def install_middleware(self) -> None:
        @self.app.middleware("http")
        def error_shape(event: Any, get_response: Callable[[Any], Response]) -> Response:
            """Chalice's own errors (405, 415, …) in our shape; nothing escapes as a stack trace."""
            try:
                return normalise(get_response(event))
            except Exception:
                log.exception("unhandled error outside a view")
                return error_response(500, "INTERNAL_ERROR", "an internal error occurred; it has been logged")

    def openapi(self, server_url: str | None = None) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for doc in self.docs:
            operation: dict[str, Any] = {
                "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{doc.method}_{doc.path}").strip("_").lower(),
                "summary": doc.summary,
                "tags": [doc.tag],
                "security": AUTH_SCHEMES[doc.auth],
                "responses": {},
            }
            params = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"} if name.endswith("_id") else {"type": "string"},
                }
                for name in re.findall(r"{([^}]+)}", doc.path)
            ]
            params += [
                {
                    "name": q.name,
                    "in": "query",
                    "required": q.required,
                    "schema": q.schema,
                    "description": q.description,
                }
                for q in doc.query
            ]
            if doc.path == "/media/process":
                params.append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
                        "description": "a retried request with the same key returns the same job",
                    }
                )
            if params:
                operation["parameters"] = params
            if doc.body is not None:
                operation["requestBody"] = {
                    "required": doc.body_required,
                    "content": {"application/json": {"schema": doc.body}},
                }
            for status, (description, schema) in sorted(doc.responses.items()):
                entry: dict[str, Any] = {"description": description}
                if schema is not None:
                    media = doc.content_type if status < 400 else "application/json"
                    entry["content"] = {media: {"schema": schema}}
                operation["responses"][str(status)] = entry
            default_errors = (
                {400: "invalid request", 401: "missing or invalid credentials"}
                if doc.auth != "none"
                else {400: "invalid request"}
            )
            for status, description in default_errors.items():
                operation["responses"].setdefault(
                    str(status),
                    {"description": description, "content": {"application/json": {"schema": schemas.ERROR}}},
                )
            paths.setdefault(doc.path, {})[doc.method.lower()] = operation
        document: dict[str, Any] = {
            "openapi": "3.0.3",
            "info": {
                "title": "TranscodeX API",
                "version": "1.0.0",
                "description": "Users, sessions, API keys, uploads and media jobs. Every error is "
                '{"error": {"code", "message", "details"}}.',
            },
            "paths": paths,
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "authorization"},
                    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                    "playbackToken": {"type": "apiKey", "in": "query", "name": "token"},
                },
                "schemas": {"Error": schemas.ERROR, **schemas.COMPONENTS},
            },
        }
        if server_url:
            document["servers"] = [{"url": server_url}]
        return document
