"""What the constructs know of the runtime, read from a checked-in file so synth imports no runtime.

The runtime owns its route table, the environment variables it reads, its error shape and its
migrations; the constructs need a copy of each to generate the REST API and configure the
functions. Importing the runtime for them would make synth need Chalice, psycopg and argon2, so
``runtime_interface.json`` beside this module holds the copy, regenerated from the runtime by
``make runtime-interface`` (``python -m constructs_lib._generate_interface``). A unit test
(tests/unit/test_runtime_interface.py) fails while the file and the runtime differ.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: The generated file: sorted keys, two-space indent, a trailing newline.
INTERFACE_FILE = Path(__file__).with_name("runtime_interface.json")

#: Module and attribute of the Chalice application object.
APP_MODULE = "runtime.api.app"
APP_ATTRIBUTE = "app"


@dataclass(frozen=True)
class Route:
    """One route of the Chalice app: a path pattern, its methods and its CORS preflight headers."""

    path: str
    methods: tuple[str, ...]
    cors: Mapping[str, str] | None = None


@dataclass(frozen=True)
class AppSpec:
    """What the REST API needs to know of the Chalice app."""

    routes: tuple[Route, ...]
    binary_media_types: tuple[str, ...]

    @classmethod
    def from_chalice(cls, app: ChaliceApp) -> AppSpec:
        """Read ``app.routes`` (path -> {method: RouteEntry}) and the binary types of a Chalice app."""
        routes: list[Route] = []
        for path, entries in sorted(app.routes.items()):
            cors: dict[str, str] | None = None
            for entry in entries.values():
                if entry.cors:
                    cors = dict(entry.cors.get_access_control_headers())
            routes.append(Route(path=path, methods=tuple(sorted(entries)), cors=cors))
        return cls(routes=tuple(routes), binary_media_types=tuple(str(t) for t in app.api.binary_types))


class _CorsConfig(Protocol):
    def get_access_control_headers(self) -> Mapping[str, str]: ...


class _RouteEntry(Protocol):
    @property
    def cors(self) -> _CorsConfig | None: ...


class _ApiGateway(Protocol):
    @property
    def binary_types(self) -> Sequence[str]: ...


class ChaliceApp(Protocol):
    """The part of ``chalice.Chalice`` that :meth:`AppSpec.from_chalice` reads."""

    @property
    def routes(self) -> Mapping[str, Mapping[str, _RouteEntry]]: ...

    @property
    def api(self) -> _ApiGateway: ...


@dataclass(frozen=True)
class GatewayResponse:
    """An answer API Gateway gives itself, in the app's error shape."""

    response_type: str
    status_code: str
    template: str


@dataclass(frozen=True)
class JobMetrics:
    """The job-status metric the runtime emits: ``<namespace>/Jobs{Status}``."""

    namespace: str
    statuses: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeInterface:
    """The runtime facts the constructs build on (see the module docstring for their owners)."""

    #: Routes and binary media types of the Chalice app (runtime/api/app.py).
    app: AppSpec
    #: Headers of every API answer (runtime.api.chalicelib.errors.BASE_HEADERS).
    response_headers: Mapping[str, str]
    #: The gateway's answer to an unknown path (runtime.api.chalicelib.errors.GATEWAY_NOT_FOUND).
    not_found: GatewayResponse
    #: Variable that sizes the API's connection pool (runtime.api.chalicelib.deps).
    api_pool_size_env: str
    #: Variable of the dispatcher's claim timeout (runtime.dispatcher.service).
    claim_timeout_env: str
    #: Hash of the SQL migrations the handler ships (runtime.shared.migrate.content_hash).
    migrations_hash: str
    #: Namespace of the job metrics (runtime.shared.log) and the statuses (runtime.shared.status).
    job_metrics: JobMetrics


def render(data: Mapping[str, Any]) -> str:
    """The file's exact text, so a regeneration with no change leaves no diff."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def parse(data: Mapping[str, Any]) -> RuntimeInterface:
    api = data["api"]
    routes = tuple(
        Route(path=r["path"], methods=tuple(r["methods"]), cors=dict(r["cors"]) if r["cors"] is not None else None)
        for r in api["routes"]
    )
    return RuntimeInterface(
        app=AppSpec(routes=routes, binary_media_types=tuple(api["binary_media_types"])),
        response_headers=dict(api["response_headers"]),
        not_found=GatewayResponse(**api["not_found"]),
        api_pool_size_env=api["pool_size_env"],
        claim_timeout_env=data["dispatcher"]["claim_timeout_env"],
        migrations_hash=data["migrations"]["hash"],
        job_metrics=JobMetrics(namespace=data["metrics"]["namespace"], statuses=tuple(data["metrics"]["job_statuses"])),
    )


@functools.cache
def runtime_interface() -> RuntimeInterface:
    """The checked-in interface (read once per process)."""
    return parse(json.loads(INTERFACE_FILE.read_text()))
