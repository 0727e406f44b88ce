"""API fixtures: the real Chalice app through Chalice's test client, wired to the real
PostgreSQL and moto (S3, SQS) fixtures of tests/conftest.py, and helpers that walk the seed's
flow (sign up, log in, create an API key, upload)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher
from chalice.test import Client

from runtime.api.app import app
from runtime.api.chalicelib import deps as api_deps
from runtime.api.chalicelib.deps import Deps

#: argon2id kept cheap in tests (production uses OWASP's m=19 MiB, t=2).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture()
def deps(settings: Any, db: Any) -> Iterator[Deps]:
    installed = Deps(settings=settings, db=db, jwt_secret=settings.jwt_secret, hasher=FAST_HASHER)
    previous = api_deps.install(installed)
    try:
        yield installed
    finally:
        api_deps.install(previous)
        with db.connection() as conn:  # the API's own table, not in the shared truncation list
            conn.execute("TRUNCATE login_failures, signup_attempts")


@pytest.fixture()
def limited(deps: Deps) -> Iterator[Any]:
    """Install Deps whose limits a test chooses: ``limited(max_active_jobs_per_user=3)``."""
    previous: list[Any] = []

    def install(**limits: int | bool) -> Deps:
        changed = replace(deps, settings=replace(deps.settings, limits=replace(deps.settings.limits, **limits)))
        previous.append(api_deps.install(changed))
        return changed

    yield install
    if previous:
        api_deps.install(previous[0])


@pytest.fixture()
def client(deps: Deps) -> Iterator[Any]:
    with Client(app) as test_client:
        yield test_client.http


@dataclass
class Caller:
    """One signed-up user with a session and an API key."""

    http: Any
    user: dict[str, Any]
    email: str
    password: str
    tokens: dict[str, Any]
    api_key: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    @property
    def key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        all_headers = {"Content-Type": "application/json", **self.key, **(headers or {})}
        data = None if body is None else json.dumps(body)
        return getattr(self.http, method.lower())(path, headers=all_headers, body=data)


#: The Origin a browser on the API's own pages sends (the test client's Host is none: localhost);
#: cookie-authenticated POST/PUT/PATCH/DELETE need it (CSRF).
SAME_ORIGIN = {"Origin": "http://localhost"}


def post_json(http: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return http.post(path, headers={"Content-Type": "application/json", **(headers or {})}, body=json.dumps(body))


def sign_up(http: Any, prefix: str = "user") -> Caller:
    suffix = uuid.uuid4().hex[:8]
    email, password = f"{prefix}-{suffix}@example.com", f"pw-{suffix}-secret"
    created = post_json(
        http,
        "/users",
        {"name": f"{prefix} {suffix}", "username": f"{prefix[:6]}_{suffix}", "email": email, "password": password},
    )
    assert created.status_code == 201, created.body
    # A client that keeps its refresh token itself asks for it in the body.
    session = post_json(http, "/sessions", {"email": email, "password": password, "include_refresh_token": True})
    assert session.status_code == 201, session.body
    tokens = session.json_body
    key = http.post("/apikeys", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert key.status_code == 200, key.body
    return Caller(http, created.json_body, email, password, tokens, key.json_body["key"])


@pytest.fixture()
def alice(client: Any) -> Caller:
    return sign_up(client, "alice")


@pytest.fixture()
def bob(client: Any) -> Caller:
    return sign_up(client, "bob")


def upload_file(
    caller: Caller,
    data: bytes,
    file_type: str = "IMAGE",
    mime: str = "image/jpeg",
    name: str = "photo.jpg",
    sized: bool = True,
) -> dict[str, Any]:
    """POST /media/upload (declaring ``size_bytes`` unless ``sized`` is false: the seed's body)
    then PUT the bytes to the presigned URL over HTTP."""
    request: dict[str, Any] = {"file_name": name, "file_type": file_type, "mime_type": mime}
    if sized:
        request["size_bytes"] = len(data)
    created = caller.call("POST", "/media/upload", request)
    assert created.status_code == 201, created.body
    body = created.json_body
    if body["method"] == "POST":  # no size declared: the POST policy form
        sent = requests.post(body["presigned_url"], data=body["fields"], files={"file": data}, timeout=30)
    else:
        sent = requests.put(body["presigned_url"], data=data, headers=body["headers"], timeout=30)
    assert sent.status_code in (200, 204), sent.text
    return body


@pytest.fixture(scope="session")
def api_server() -> Iterator[str]:
    """The same app served over real HTTP on 127.0.0.1 (Chalice's local server, threaded), for
    players (ffmpeg) and schemathesis. Requests use whatever Deps a test has installed."""
    import threading

    from chalice.config import Config

    from runtime.local.api_server import create_server
    from runtime.local.postgres import free_port

    port = free_port()
    server = create_server(app, Config.create(chalice_stage="local", app_name=app.app_name), "127.0.0.1", port)
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)
