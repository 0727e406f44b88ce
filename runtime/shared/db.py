"""Database access on psycopg 3: the connection string and a pool every part shares.

The queries live in the repositories (runtime/shared/repo: jobs, uploads, outputs) and, for
accounts, in runtime/api/chalicelib/accounts.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from runtime.shared.settings import Settings

#: A row as the pool's connections return it (``dict_row``): column name -> value.
Row = dict[str, Any]
#: A connection of the pool: the type every repository function takes.
Connection = psycopg.Connection[Row]


def database_url(settings: Settings) -> str:
    """The connection string, from the URL or from the RDS-generated secret."""
    if settings.database_url:
        return settings.database_url
    if not settings.database_secret_arn:
        raise ValueError("no database configured: set TRANSCODEX_DATABASE_URL or TRANSCODEX_DATABASE_SECRET_ARN")
    from runtime.shared.aws import secret_json

    secret = secret_json(settings.database_secret_arn, settings)
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    dbname = secret.get("dbname", "transcodex")
    tls = f"sslmode={settings.database_sslmode}"
    if settings.database_sslmode.startswith("verify-"):
        tls += f"&sslrootcert={quote(settings.database_sslrootcert, safe='/')}"
    return f"postgresql://{user}:{password}@{secret['host']}:{secret.get('port', 5432)}/{dbname}?{tls}"


#: SQLSTATEs of a refused login: invalid_password, invalid_authorization_specification.
AUTH_FAILURE_SQLSTATES = ("28P01", "28000")


def is_auth_failure(error: BaseException) -> bool:
    """Whether ``error`` is the server refusing the credentials (e.g. after a rotation)."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    if getattr(error, "sqlstate", None) in AUTH_FAILURE_SQLSTATES:
        return True
    # libpq reports a failed login at connect time as text only (no SQLSTATE attached).
    return "password authentication failed" in str(error) or "authentication failed" in str(error)


class Database:
    """A lazily opened connection pool; connections are autocommit, rows are dicts.

    ``refresh`` returns a fresh connection string (re-reading the rotated secret): a new
    connection refused for its credentials is retried once with it, and every later
    connection of the pool uses it. Open connections survive a rotation (PostgreSQL checks
    the password at login only), so only new connections need the new password.
    """

    def __init__(self, conninfo: str, max_size: int = 4, refresh: Callable[[], str] | None = None) -> None:
        self.conninfo = conninfo
        self._refresh = refresh
        database = self

        class _Connection(Connection):
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                try:
                    return super().connect(database.conninfo, **kwargs)
                except psycopg.OperationalError as error:
                    if database._refresh is None or not is_auth_failure(error):
                        raise
                    database.conninfo = database._refresh()
                    return super().connect(database.conninfo, **kwargs)

        self._pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            connection_class=_Connection,
            min_size=0,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            check=ConnectionPool.check_connection,
        )
        self._opened = False

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def open_database(settings: Settings, max_size: int = 4) -> Database:
    """A pool on the configured database; with a Secrets Manager secret, one that re-reads it
    when a login is refused (the password was rotated)."""
    refresh = (lambda: database_url(settings)) if settings.database_secret_arn and not settings.database_url else None
    return Database(database_url(settings), max_size=max_size, refresh=refresh)
