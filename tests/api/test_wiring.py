"""How the app is wired on Lambda and locally: settings and the JWT secret from the
environment (or Secrets Manager, on moto), URLs built from the caller's Host and stage, and
storage failures answered 503 without losing the upload's record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runtime.api.chalicelib import deps as api_deps
from runtime.shared.aws import client as aws_client
from runtime.shared.settings import ConfigError
from tests.api.conftest import Caller


def _env(settings: Any) -> dict[str, str]:
    return {
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TRANSCODEX_DATABASE_URL": settings.database_url,
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
        "TRANSCODEX_QUEUE_URL": settings.queue_url,
        "TRANSCODEX_ARGON2_MEMORY_KIB": "1024",
        "TRANSCODEX_ARGON2_TIME_COST": "1",
    }


def test_given_a_secret_arn_when_building_from_env_then_the_jwt_secret_comes_from_secrets_manager(
    settings: Any,
) -> None:
    arn = aws_client("secretsmanager", settings).create_secret(Name="jwt-test", SecretString="s" * 64)["ARN"]
    built = api_deps.from_env({**_env(settings), "TRANSCODEX_JWT_SECRET_ARN": arn})
    try:
        assert built.jwt_secret == "s" * 64
        assert built.hasher.memory_cost == 1024 and built.hasher.time_cost == 1
        assert built.public_base_url is None
    finally:
        built.db.close()


def test_given_missing_settings_when_building_from_env_then_every_problem_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        api_deps.from_env({})
    text = str(caught.value)
    for name in ("DATABASE_URL", "INPUT_BUCKET", "QUEUE_URL", "JWT_SECRET"):
        assert name in text


def test_given_the_default_hasher_when_unconfigured_then_it_uses_owasp_argon2id_parameters() -> None:
    hasher = api_deps.password_hasher({})
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (2, 19456, 1)


def _lambda_event(method: str, resource: str, path: str, params: dict[str, str], headers: dict[str, str]) -> dict:
    """An API Gateway (REST, Lambda proxy) event as AWS sends it, stage ``v1``."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "stage": "v1",
            "path": f"/v1{path}",
            "requestId": "req-1",
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def test_given_an_api_gateway_event_when_downloading_then_the_playback_url_carries_host_and_stage(
    alice: Caller, deps: Any, db: Any, settings: Any
) -> None:
    import json

    from runtime.api.app import app
    from tests.api.test_playback import _finished_hls_job, _ladder_files

    job_id = _finished_hls_job(alice, settings, db, _ladder_files())
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    event = _lambda_event(
        "GET",
        "/media/download/{job_id}",
        f"/media/download/{job_id}",
        {"job_id": job_id},
        {"Host": host, "X-Forwarded-Proto": "https", **alice.key},
    )
    response = app(event, None)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["playback_url"].startswith(f"https://{host}/v1/media/playback/{job_id}/master.m3u8?token=")
    custom = alice.call(
        "GET", f"/media/download/{job_id}", headers={"Host": "media.example.com", "X-Forwarded-Proto": "https"}
    ).json_body
    assert custom["playback_url"].startswith(f"https://media.example.com/media/playback/{job_id}/")
    deps.public_base_url = "https://api.example.org/v2"
    pinned = alice.call("GET", f"/media/download/{job_id}").json_body
    assert pinned["playback_url"].startswith(f"https://api.example.org/v2/media/playback/{job_id}/")


def test_given_storage_failing_when_starting_an_upload_then_503_and_the_record_is_kept_aborted(
    alice: Caller, deps: Any, database_url: str
) -> None:
    import psycopg

    from runtime.local.postgres import free_port

    # nothing listens there: S3 is unreachable (SeaweedFS, unlike S3, would create a missing bucket)
    deps.settings = replace(deps.settings, aws_endpoint_url_s3=f"http://127.0.0.1:{free_port()}")
    response = alice.call(
        "POST",
        "/media/upload",
        {"file_name": "a.mp4", "file_type": "VIDEO", "mime_type": "video/mp4", "size_bytes": 1000, "multipart": True},
    )
    assert response.status_code == 503 and response.json_body["error"]["code"] == "STORAGE_UNAVAILABLE"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status FROM uploads WHERE user_id = %s", (alice.user["id"],)).fetchall()
    assert rows == [("ABORTED",)]
