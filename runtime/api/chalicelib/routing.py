"""Routes that enforce what they declare, and the OpenAPI document rendered from the declarations.

``@api.route(path, method, auth=..., params=..., body=...)`` registers a Chalice route whose
wrapper, before the view runs:

1. authenticates the request as the route's auth scheme says (``auth.py``; ``auth="none"``
   skips it);
2. canonicalises path ids (``*_id`` are UUIDs, else 400 INVALID_ID);
3. validates the declared query and header parameters from their schemas;
4. parses the JSON body and validates it against the declared schema;

then calls the view with whichever of ``principal``, the path parameters, the parameters (by
:attr:`Param.arg`) and ``body`` it names. A protected route's view must take ``principal`` and a
view naming anything its route does not provide fails at import, so a view cannot forget its
check. Domain errors become responses here (``errors.domain_response``), and any unexpected
exception a 500 in the same shape (never a stack trace). :meth:`Api.openapi` renders the same
records as OpenAPI 3.0.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Chalice, Response
from chalice.app import Request

from runtime.api.chalicelib import schemas
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.auth import SCHEMES, SECURITY_SCHEMES, Credential, Scheme, authenticate
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import DomainError
from runtime.api.chalicelib.errors import ApiError, domain_response, error_response, normalise
from runtime.api.chalicelib.requests import Param, json_body, parse_id, read_params
from runtime.shared.log import bind

log = logging.getLogger(__name__)


def path_params(path: str) -> tuple[str, ...]:
    return tuple(re.findall(r"{([^}]+)}", path))


def path_schema(name: str) -> dict[str, Any]:
    """Path parameters named ``*_id`` are UUIDs; the rest are plain strings."""
    return {"type": "string", "format": "uuid"} if name.endswith("_id") else {"type": "string"}


@dataclass(frozen=True)
class RouteDoc:
    """What a route declares: enforced by its wrapper and published in /openapi.json."""

    path: str
    method: str
    summary: str
    tag: str
    scheme: Scheme
    body: dict[str, Any] | None
    body_required: bool
    params: tuple[Param, ...]
    responses: dict[int, tuple[str, dict[str, Any] | None]]
    content_type: str = "application/json"
    #: Undeclared query parameters are refused (400 INVALID_QUERY) instead of ignored.
    strict_query: bool = False
    #: Published instead of ``body`` where a richer check follows the schema's (a job's
    #: operations: the contract answers them 422 INVALID_JOB naming operation, index and field).
    published_body: dict[str, Any] | None = None

    @property
    def path_params(self) -> tuple[str, ...]:
        return path_params(self.path)

    def provides(self) -> set[str]:
        """The keywords the wrapper can pass to the view."""
        names = set(self.path_params) | {p.arg for p in self.params}
        if not self.scheme.public:
            names.add("principal")
        if self.body is not None:
            names.add("body")
        return names


@dataclass
class Api:
    app: Chalice
    #: The process's dependencies (built on first use; tests install their own).
    deps: Callable[[], Deps]
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
        params: tuple[Param, ...] = (),
        strict_query: bool = False,
        published_body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        if auth not in SCHEMES:
            raise ValueError(f"{method} {path}: auth={auth!r} is none of {', '.join(SCHEMES)}")
        doc = RouteDoc(
            path=path,
            method=method,
            summary=summary,
            tag=tag,
            scheme=SCHEMES[auth],
            body=body,
            body_required=body_required,
            params=params,
            responses=responses,
            content_type=content_type,
            strict_query=strict_query,
            published_body=published_body,
        )
        if Credential.PLAYBACK_TOKEN in doc.scheme.accepts and "job_id" not in doc.path_params:
            raise ValueError(f"{method} {path}: a playback token admits one job, so the path needs {{job_id}}")

        def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
            wants = set(inspect.signature(view).parameters)
            needs = set(doc.path_params) | ({"principal"} if not doc.scheme.public else set())
            if wants - doc.provides() or needs - wants:
                raise TypeError(
                    f"{view.__name__} takes {sorted(wants)}; {method} {path} provides {sorted(doc.provides())} "
                    f"and its view must take {sorted(needs)}"
                )

            @functools.wraps(view)
            def wrapped(**uri: str) -> Response:
                request = self.app.current_request
                assert request is not None  # Chalice sets it before calling a view
                started = time.perf_counter()
                request_id = (request.context or {}).get("requestId") or uuid.uuid4().hex
                with bind(request_id=request_id, route=f"{method} {path}"):
                    set_cookie: str | None = None
                    try:
                        principal = None
                        if not doc.scheme.public:
                            principal = authenticate(doc.scheme, self.deps(), request, uri)
                            # Kept even when a later check fails: the refresh token it carries
                            # has already been rotated.
                            set_cookie = principal.set_cookie
                        arguments = self._arguments(doc, request, uri, principal)
                        response = view(**{k: v for k, v in arguments.items() if k in wants})
                    except DomainError as err:
                        response = domain_response(err)
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
                    if set_cookie and "Set-Cookie" not in response.headers:
                        response.headers["Set-Cookie"] = set_cookie
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
            self.docs.append(doc)
            return wrapped

        return decorator

    @staticmethod
    def _arguments(doc: RouteDoc, request: Request, uri: dict[str, str], principal: Principal | None) -> dict[str, Any]:
        """The rest of what the route declares, checked in order: path, parameters, body."""
        arguments: dict[str, Any] = {} if principal is None else {"principal": principal}
        for name in doc.path_params:
            arguments[name] = parse_id(uri[name], name) if name.endswith("_id") else uri[name]
        arguments.update(read_params(request, doc.params, strict_query=doc.strict_query))
        if doc.body is not None:
            arguments["body"] = json_body(request, doc.body, required=doc.body_required)
        return arguments

    def install_middleware(self) -> None:
        @self.app.middleware("http")
        def error_shape(event: Request, get_response: Callable[[Request], Response]) -> Response:
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
                "security": doc.scheme.security(),
                "responses": {},
            }
            params: list[dict[str, Any]] = [
                {"name": name, "in": "path", "required": True, "schema": path_schema(name)} for name in doc.path_params
            ]
            params += [
                {
                    "name": p.name,
                    "in": p.location,
                    "required": p.required,
                    "schema": p.schema,
                    "description": p.description,
                }
                for p in doc.params
            ]
            if params:
                operation["parameters"] = params
            if doc.body is not None:
                operation["requestBody"] = {
                    "required": doc.body_required,
                    "content": {"application/json": {"schema": doc.published_body or doc.body}},
                }
            for status, (description, schema) in sorted(doc.responses.items()):
                entry: dict[str, Any] = {"description": description}
                if schema is not None:
                    media = doc.content_type if status < 400 else "application/json"
                    entry["content"] = {media: {"schema": schema}}
                operation["responses"][str(status)] = entry
            default_errors = (
                {400: "invalid request", 401: "missing or invalid credentials"}
                if not doc.scheme.public
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
                "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
                "schemas": {"Error": schemas.ERROR, **schemas.COMPONENTS},
            },
        }
        if server_url:
            document["servers"] = [{"url": server_url}]
        return document
