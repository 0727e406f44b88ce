"""A rotated database password: the pool re-reads the credentials on a refused login."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from runtime.shared.db import Database, is_auth_failure


def _role(postgres_server: Any, password: str) -> tuple[str, str]:
    name = f"rot_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.create_database(f"db_{name}"), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        admin.execute(f"GRANT ALL ON SCHEMA public TO {name}")
        dbname = admin.info.dbname
    base = f"postgresql://{name}:{{password}}@127.0.0.1:{postgres_server.port}/{dbname}"
    return name, base


def test_given_a_password_rotated_underneath_when_a_new_connection_is_made_then_it_succeeds_after_re_reading(
    postgres_server: Any,
) -> None:
    name, base = _role(postgres_server, "old-password")
    current = {"password": "old-password"}
    reads: list[str] = []

    def refresh() -> str:
        reads.append(current["password"])
        return base.format(password=current["password"])

    database = Database(base.format(password="old-password"), max_size=1, refresh=refresh)
    with psycopg.connect(postgres_server.create_database(f"admin_{name}"), autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {name} PASSWORD 'new-password'")  # the rotation
    current["password"] = "new-password"  # what the secret now holds
    try:
        with database.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == {"current_user": name}
    finally:
        database.close()

    assert reads == ["new-password"]  # re-read once


def test_given_no_refresh_when_the_password_is_wrong_then_the_login_error_is_an_auth_failure(
    postgres_server: Any,
) -> None:
    _, base = _role(postgres_server, "right")
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(base.format(password="wrong"))
    assert is_auth_failure(raised.value)
