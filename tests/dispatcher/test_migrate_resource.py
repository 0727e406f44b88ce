"""The migrations custom resource (CloudFormation on_event) against a fresh real database."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from runtime.dispatcher import migrate
from runtime.shared.migrate import content_hash, discover


def test_given_a_fresh_database_when_created_updated_and_deleted_then_migrations_apply_once_and_data_stays(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database(f"cr_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TRANSCODEX_DATABASE_URL", url)

    created = migrate.handler({"RequestType": "Create", "RequestId": "r1"}, None)
    updated = migrate.handler(
        {"RequestType": "Update", "RequestId": "r2", "PhysicalResourceId": "transcodex-migrations"}, None
    )
    deleted = migrate.handler(
        {"RequestType": "Delete", "RequestId": "r3", "PhysicalResourceId": "transcodex-migrations"}, None
    )

    assert created == {
        "PhysicalResourceId": "transcodex-migrations",
        "Data": {"Applied": ",".join(m.version for m in discover())},
    }
    assert updated == {"PhysicalResourceId": "transcodex-migrations", "Data": {"Applied": ""}}
    assert deleted == {"PhysicalResourceId": "transcodex-migrations"}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_given_no_database_configured_when_created_then_the_deploy_fails_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRANSCODEX_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRANSCODEX_DATABASE_SECRET_ARN", raising=False)

    with pytest.raises(ValueError, match="TRANSCODEX_DATABASE_URL"):
        migrate.handler({"RequestType": "Create"}, None)


def test_given_a_rollback_carrying_an_old_hash_when_updated_then_nothing_is_applied_and_it_succeeds(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database(f"cr_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TRANSCODEX_DATABASE_URL", url)
    old = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:p", "MigrationsHash": "0" * 64}

    rolled_back = migrate.handler(
        {
            "RequestType": "Update",
            "RequestId": "r1",
            "PhysicalResourceId": "transcodex-migrations",
            "ResourceProperties": old,
            "OldResourceProperties": {**old, "MigrationsHash": content_hash()},
        },
        None,
    )

    assert rolled_back == {"PhysicalResourceId": "transcodex-migrations", "Data": {"Applied": ""}}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)


def test_given_the_shipped_hash_when_created_then_the_migrations_apply(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from constructs_lib.migrations import migrations_hash

    url = postgres_server.create_database(f"cr_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TRANSCODEX_DATABASE_URL", url)

    created = migrate.handler(
        {"RequestType": "Create", "RequestId": "r1", "ResourceProperties": {"MigrationsHash": migrations_hash()}},
        None,
    )

    assert created["Data"]["Applied"] == ",".join(m.version for m in discover())


def test_given_the_password_rotated_between_read_and_login_when_created_then_it_re_reads_the_secret_once(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database(f"cr_{uuid.uuid4().hex[:8]}")
    stale = url.replace(f":{postgres_server.password}@", ":a-rotated-away-password@")
    reads = iter([stale, url])  # what the secret held at the first read, then after the rotation
    monkeypatch.delenv("TRANSCODEX_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRANSCODEX_DATABASE_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db")
    monkeypatch.setenv("TRANSCODEX_DATABASE_SSLROOTCERT", __file__)  # stands for the RDS CA bundle
    monkeypatch.setattr(migrate, "database_url", lambda settings: next(reads))

    created = migrate.handler({"RequestType": "Create", "RequestId": "r1"}, None)

    assert created["Data"]["Applied"] == ",".join(m.version for m in discover())
    assert next(reads, None) is None  # read exactly twice
