"""The OpenAPI document: valid, complete (in step with the route table), and fuzzed by
schemathesis against the HTTP-served app with no server error allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from openapi_spec_validator import validate

from runtime.api.app import api, app
from runtime.api.chalicelib import schemas
from tests.api.conftest import Caller, upload_file

ROOT = Path(__file__).resolve().parents[2]


def test_given_the_app_when_rendering_openapi_then_it_documents_exactly_the_route_table(client: Any) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json_body
    validate(document)
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routed = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert documented == routed
    assert "{proxy+}" not in "".join(app.routes)


def test_given_the_seed_bodies_when_documented_then_the_schemas_are_the_validating_ones(client: Any) -> None:
    paths = client.get("/openapi.json").json_body["paths"]

    def body(path: str) -> dict[str, Any]:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body("/users") == schemas.CREATE_USER and set(schemas.CREATE_USER["required"]) == {
        "name",
        "username",
        "email",
        "password",
    }
    assert body("/sessions") == schemas.CREATE_SESSION
    assert body("/media/upload")["required"] == ["file_name", "file_type", "mime_type"]
    assert body("/media/process") == schemas.PROCESS


def test_given_the_declarations_when_documented_then_parameters_and_security_are_the_enforced_ones(
    client: Any,
) -> None:
    paths = client.get("/openapi.json").json_body["paths"]

    def parameters(path: str, method: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(p["in"], p["name"]): p for p in paths[path][method].get("parameters", [])}

    process = parameters("/media/process", "post")[("header", "Idempotency-Key")]
    assert process["schema"]["maxLength"] == 255 and not process["required"]
    assert parameters("/apikeys", "delete")[("header", "x-api-key")]["required"] is True
    assert set(parameters("/media/jobs", "get")) == {("query", "limit"), ("query", "status"), ("query", "cursor")}
    for doc in api.docs:
        assert paths[doc.path][doc.method.lower()]["security"] == doc.scheme.security(), doc.path
    assert paths["/media/playback/{job_id}/master.m3u8"]["get"]["security"][0] == {"playbackToken": []}
    assert paths["/sessions"]["get"]["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]


def test_given_no_environment_when_importing_the_app_then_it_loads_without_config_or_network() -> None:
    code = (
        "import runtime.api.app as m; from runtime.api.chalicelib import deps; "
        "assert deps._deps is None; print(len(m.app.routes))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(app.routes)


#: Destructive calls go last (deleting the user very last) so the rest keeps valid credentials.
_LAST = [("DELETE", "/apikeys"), ("DELETE", "/sessions"), ("DELETE", "/sessions/all"), ("DELETE", "/users")]


def _with_real_examples(document: dict[str, Any], ids: dict[str, str], process_body: dict[str, Any]) -> dict[str, Any]:
    """Point the explicit examples at real rows so fuzzing also reaches the deep code paths."""
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["name"] in ids:
                    param["example"] = ids[param["name"]]
            if path == "/media/process":
                operation["requestBody"]["content"]["application/json"]["example"] = process_body
    return document


def test_given_schemathesis_when_fuzzing_every_operation_then_no_server_error(
    alice: Caller, api_server: str, jpeg_for_fuzz: bytes
) -> None:
    upload = upload_file(alice, jpeg_for_fuzz)
    body = {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": {"ROTATE": "180"}}
    job = alice.call("POST", "/media/process", body).json_body
    key_id = alice.http.get("/apikeys", headers=alice.bearer).json_body["keys"][0]["id"]
    ids = {"job_id": job["job_id"], "upload_id": upload["upload_id"], "key_id": key_id}
    schema = schemathesis.openapi.from_dict(_with_real_examples(api.openapi(api_server), ids, body))
    operations = [result.ok() for result in schema.get_all_operations()]
    last = {op: n for n, op in enumerate(_LAST)}
    operations.sort(key=lambda op: last.get((op.method.upper(), op.path), -1))
    headers = {**alice.key, **alice.bearer}
    failures: list[str] = []
    statuses: dict[int, int] = {}

    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    # Destructive operations stay last in both modes.
    for operation, mode in [(op, mode) for op in operations for mode in modes]:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=10,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def run(case: Any) -> None:
            try:
                response = case.call(base_url=api_server, headers={**(case.headers or {}), **headers}, timeout=30)
            except requests.RequestException as err:  # a client-side encoding refusal is not a server error
                if "Invalid" in str(err) or "header" in str(err).lower():
                    return
                raise
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing to break in a parameterless route
    assert failures == []
    assert sum(statuses.values()) > 200
    # The run reached past authentication into real work, not only 401s.
    assert {200, 201, 400, 404} <= set(statuses)


@pytest.fixture(scope="module")
def jpeg_for_fuzz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.media import make_image

    return Path(make_image(tmp_path_factory.mktemp("fuzz") / "f.jpg", 32, 32)).read_bytes()


def test_given_the_http_server_when_a_path_is_unknown_then_404_in_our_shape(api_server: str) -> None:
    response = requests.get(f"{api_server}/no/such/route", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert requests.get(f"{api_server}/health", timeout=10).status_code == 200
    seed_style = requests.post(f"{api_server}/users/", json={}, timeout=10)  # the seed's trailing slash
    assert seed_style.status_code == 400 and seed_style.json()["error"]["code"] == "INVALID_BODY"
