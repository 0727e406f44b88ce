"""Settings fail fast and completely; messages are versioned; transitions are closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.shared.messages import JobMessage, MessageError, parse_message
from runtime.shared.settings import ConfigError, load_settings
from runtime.shared.status import TERMINAL, TRANSITIONS, JobStatus, can_transition, sources


def test_given_empty_env_when_loading_api_sections_then_every_missing_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, ["database", "storage", "queue", "auth"])
    text = str(caught.value)
    for name in (
        "TRANSCODEX_DATABASE_URL",
        "TRANSCODEX_INPUT_BUCKET",
        "TRANSCODEX_OUTPUT_BUCKET",
        "TRANSCODEX_QUEUE_URL",
        "TRANSCODEX_JWT_SECRET",
    ):
        assert name in text
    assert len(caught.value.problems) == 5


def test_given_malformed_values_when_loading_then_each_is_reported() -> None:
    env = {
        "TRANSCODEX_MAX_INPUT_BYTES": "lots",
        "TRANSCODEX_WORKER_TIMEOUT_SECONDS": "0",
        "TRANSCODEX_DATABASE_URL": "mysql://x",
        "TRANSCODEX_JWT_SECRET": "short",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    problems = " | ".join(caught.value.problems)
    assert "MAX_INPUT_BYTES must be a whole number, got 'lots'" in problems
    assert "WORKER_TIMEOUT_SECONDS must be >= 1, got 0" in problems
    assert "must start with postgresql://" in problems
    assert "at least 32 characters" in problems


def test_given_full_env_when_loading_then_typed_values() -> None:
    settings = load_settings(
        {
            "AWS_REGION": "eu-west-1",
            "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:db",
            "TRANSCODEX_DATABASE_SSLROOTCERT": __file__,  # any existing file stands for the RDS CA bundle
            "TRANSCODEX_ECS_CLUSTER": "c",
            "TRANSCODEX_ECS_TASK_DEFINITION": "td",
            "TRANSCODEX_ECS_SUBNETS": "subnet-a, subnet-b",
            "TRANSCODEX_ECS_SECURITY_GROUPS": "sg-1",
            "TRANSCODEX_MAX_IMAGE_PIXELS": "1000",
        },
        ["database", "ecs"],
    )
    assert settings.aws_region == "eu-west-1"
    assert settings.ecs_subnets == ("subnet-a", "subnet-b")
    assert settings.limits.max_image_pixels == 1000
    assert settings.database_url is None


def test_given_unknown_section_when_loading_then_value_error() -> None:
    with pytest.raises(ValueError, match="unknown settings sections"):
        load_settings({}, ["datbase"])


def test_given_message_when_round_tripped_then_job_id_is_canonical() -> None:
    body = JobMessage("6F9619FF-8B86-D011-B42D-00C04FC964FF").to_body()
    assert parse_message(body).job_id == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert parse_message('{"version":1,"job_id":"6f9619ff8b86d011b42d00c04fc964ff"}').job_id == (
        "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("", "not JSON"),
        ("[1]", "JSON object"),
        ('{"job_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}', "unsupported message version None"),
        ('{"version": 2, "job_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}', "version 2"),
        ('{"version": 1, "job_id": "42"}', "must be a UUID"),
        ('{"version": 1}', "must be a UUID"),
    ],
)
def test_given_malformed_message_when_parsed_then_message_error(body: str, fragment: str) -> None:
    with pytest.raises(MessageError, match=fragment):
        parse_message(body)


def test_given_terminal_status_then_nothing_leaves_it() -> None:
    for target, allowed in TRANSITIONS.items():
        assert not (allowed & TERMINAL), f"{target} reachable from a terminal status"
    assert can_transition(JobStatus.QUEUED, JobStatus.DISPATCHED)
    assert not can_transition(JobStatus.SUCCEEDED, JobStatus.RUNNING)
    assert sources(JobStatus.SUCCEEDED) == ["RUNNING"]


def test_given_a_lifetime_over_the_presigned_cap_when_validated_then_it_is_an_error_naming_it() -> None:
    from runtime.shared.settings import PRESIGNED_URL_MAX_TTL_SECONDS, ConfigError, presigned_ttl

    assert presigned_ttl("X_TTL", PRESIGNED_URL_MAX_TTL_SECONDS) == PRESIGNED_URL_MAX_TTL_SECONDS
    with pytest.raises(ConfigError, match="X_TTL must be between 1 and 3600"):
        presigned_ttl("X_TTL", PRESIGNED_URL_MAX_TTL_SECONDS + 1)


def test_given_the_api_when_it_signs_urls_then_every_lifetime_is_within_the_presigned_cap() -> None:
    from runtime.api.chalicelib import jobs, playback
    from runtime.shared.settings import PRESIGNED_URL_MAX_TTL_SECONDS, UPLOAD_URL_TTL_SECONDS

    for ttl in (UPLOAD_URL_TTL_SECONDS, jobs.DOWNLOAD_URL_TTL_SECONDS, playback.SEGMENT_URL_TTL_SECONDS):
        assert ttl <= PRESIGNED_URL_MAX_TTL_SECONDS


def test_given_the_rds_secret_and_no_ca_bundle_when_loading_then_the_missing_bundle_is_named(
    tmp_path: Path,
) -> None:
    from runtime.shared.settings import ConfigError, load_settings

    env = {
        "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        "TRANSCODEX_DATABASE_SSLROOTCERT": str(tmp_path / "absent.pem"),
    }
    with pytest.raises(ConfigError, match=r"absent\.pem is missing"):
        load_settings(env, ["database"])


def test_given_the_rds_secret_when_the_url_is_built_then_it_verifies_the_server_with_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.shared import aws
    from runtime.shared.db import database_url
    from runtime.shared.settings import load_settings

    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        "TRANSCODEX_DATABASE_SSLROOTCERT": str(bundle),
    }
    secret = {"username": "u", "password": "p@ss", "host": "db.example", "port": 5432, "dbname": "t"}
    monkeypatch.setattr(aws, "secret_json", lambda arn, settings: secret)

    url = database_url(load_settings(env, ["database"]))

    assert url == f"postgresql://u:p%40ss@db.example:5432/t?sslmode=verify-full&sslrootcert={bundle}"
