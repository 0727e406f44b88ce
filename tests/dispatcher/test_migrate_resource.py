"""The migrations custom resource (CloudFormation on_event) against a fresh real database."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from runtime.dispatcher import migrate
from runtime.shared.migrate import discover


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
