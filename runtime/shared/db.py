"""Database access on psycopg 3: a connection pool and the job queries every part shares.

Every status change is ONE guarded UPDATE (``WHERE id = %s AND status = ANY(%s)
RETURNING …``): two processes racing for a job cannot both win, and no code reads a status
and then writes based on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from runtime.shared.log import job_status_metric
from runtime.shared.settings import Settings
from runtime.shared.status import TERMINAL, JobStatus, sources

if TYPE_CHECKING:  # the dispatcher imports this module; the contract (pydantic) is not in its bundle
    from runtime.shared.contract import JobSpec

Row = dict[str, Any]
JOB_COLUMNS = (
    "id, user_id, upload_id, api_key_id, job_type, operations, status, progress, error_code, "
    "error_message, task_arn, dispatch_count, idempotency_key, request_hash, created_at, "
    "updated_at, dispatched_at, started_at, finished_at"
)


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

        class _Connection(psycopg.Connection):  # type: ignore[type-arg]
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
                try:
                    return super().connect(database.conninfo, **kwargs)
                except psycopg.OperationalError as error:
                    if database._refresh is None or not is_auth_failure(error):
                        raise
                    database.conninfo = database._refresh()
                    return super().connect(database.conninfo, **kwargs)

        self._pool = ConnectionPool(
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
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection() as conn:
            yield conn  # type: ignore[misc]

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


def open_database(settings: Settings, max_size: int = 4) -> Database:
    """A pool on the configured database; with a Secrets Manager secret, one that re-reads it
    when a login is refused (the password was rotated)."""
    refresh = (lambda: database_url(settings)) if settings.database_secret_arn and not settings.database_url else None
    return Database(database_url(settings), max_size=max_size, refresh=refresh)


# --- jobs ------------------------------------------------------------------------------


def create_job(
    conn: psycopg.Connection[Row],
    *,
    user_id: str,
    upload_id: str,
    spec: JobSpec,
    api_key_id: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> tuple[Row, bool]:
    """Insert a QUEUED job; return (job, created). With an idempotency key already used by
    this user, return the existing job and ``created=False`` instead of a duplicate."""
    row = conn.execute(
        f"""INSERT INTO jobs (user_id, upload_id, api_key_id, job_type, operations, idempotency_key, request_hash)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {JOB_COLUMNS}""",
        (user_id, upload_id, api_key_id, spec.job_type.value, Jsonb(spec.to_json()), idempotency_key, request_hash),
    ).fetchone()
    if row is not None:
        job_status_metric(row["status"])
        return row, True
    existing = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = %s AND idempotency_key = %s",
        (user_id, idempotency_key),
    ).fetchone()
    assert existing is not None
    return existing, False


def get_job(conn: psycopg.Connection[Row], job_id: str, user_id: str | None = None) -> Row | None:
    """A job by id; with ``user_id``, only if that user owns it."""
    if user_id is None:
        return conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND user_id = %s", (job_id, user_id)).fetchone()


_STAMP = {
    JobStatus.DISPATCHED: ", dispatched_at = now(), dispatch_count = dispatch_count + 1",
    JobStatus.RUNNING: ", started_at = now(), progress = 0",
    JobStatus.QUEUED: ", task_arn = NULL, dispatched_at = NULL",
    JobStatus.SUCCEEDED: ", finished_at = now(), progress = 100",
    JobStatus.FAILED: ", finished_at = now()",
    JobStatus.CANCELLED: ", finished_at = now()",
}
_SETTABLE = ("task_arn", "error_code", "error_message")


def transition(
    conn: psycopg.Connection[Row],
    job_id: str,
    target: JobStatus,
    *,
    from_statuses: Iterable[JobStatus] | None = None,
    **fields: Any,
) -> Row | None:
    """Move a job to ``target`` if (and only if) it is in an allowed source status.

    Returns the updated job, or None when the guard did not match (someone else moved it,
    or it was never in a source status). ``from_statuses`` narrows the legal sources.
    """
    unknown = set(fields) - set(_SETTABLE)
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} in a transition; allowed: {list(_SETTABLE)}")
    allowed = sources(target)
    if from_statuses is not None:
        narrowed = sorted(s.value for s in from_statuses)
        if not set(narrowed) <= set(allowed):
            raise ValueError(f"{narrowed} -> {target} is not a legal transition; legal sources: {allowed}")
        allowed = narrowed
    assignments = "".join(f", {name} = %({name})s" for name in fields)
    row = conn.execute(
        f"""UPDATE jobs SET status = %(target)s, updated_at = now(){_STAMP[target]}{assignments}
            WHERE id = %(id)s AND status = ANY(%(sources)s)
            RETURNING {JOB_COLUMNS}""",
        {"target": target.value, "id": job_id, "sources": allowed, **fields},
    ).fetchone()
    if row is not None:
        job_status_metric(target.value)
    return row


def set_task_arn(conn: psycopg.Connection[Row], job_id: str, task_arn: str) -> Row | None:
    """Record the task started for a DISPATCHED job (it may already be RUNNING)."""
    return conn.execute(
        f"""UPDATE jobs SET task_arn = %s, updated_at = now()
            WHERE id = %s AND status IN ('DISPATCHED', 'RUNNING') RETURNING {JOB_COLUMNS}""",
        (task_arn, job_id),
    ).fetchone()


def set_progress(conn: psycopg.Connection[Row], job_id: str, progress: int) -> str | None:
    """Write progress of a RUNNING job (never backwards); return the job's current status.

    The returned status doubles as the worker's cancellation check: anything but RUNNING
    means stop.
    """
    progress = max(0, min(100, int(progress)))
    row = conn.execute(
        """UPDATE jobs SET progress = GREATEST(progress, %s), updated_at = now()
           WHERE id = %s AND status = 'RUNNING' RETURNING status""",
        (progress, job_id),
    ).fetchone()
    if row is not None:
        return str(row["status"])
    current = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return None if current is None else str(current["status"])


def find_job_by_task_arn(conn: psycopg.Connection[Row], task_arn: str) -> Row | None:
    return conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE task_arn = %s", (task_arn,)).fetchone()


def is_terminal(job: Row) -> bool:
    return JobStatus(job["status"]) in TERMINAL


# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One object a job produced in the output bucket."""

    object_key: str
    role: str
    bytes: int
    mime: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None


OUTPUT_COLUMNS = "object_key, role, bytes, mime, width, height, duration_seconds, bitrate"


def replace_outputs(conn: psycopg.Connection[Row], job_id: str, outputs: Sequence[Output]) -> None:
    """Make ``outputs`` the job's outputs, atomically: a re-run replaces, never duplicates."""
    with conn.transaction():
        conn.execute("DELETE FROM job_outputs WHERE job_id = %s", (job_id,))
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO job_outputs (job_id, {OUTPUT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (job_id, o.object_key, o.role, o.bytes, o.mime, o.width, o.height, o.duration_seconds, o.bitrate)
                    for o in outputs
                ],
            )


def list_outputs(conn: psycopg.Connection[Row], job_id: str) -> list[Row]:
    return conn.execute(
        f"SELECT {OUTPUT_COLUMNS} FROM job_outputs WHERE job_id = %s ORDER BY role, object_key", (job_id,)
    ).fetchall()


def get_upload(conn: psycopg.Connection[Row], upload_id: str, user_id: str | None = None) -> Row | None:
    if user_id is None:
        return conn.execute("SELECT * FROM uploads WHERE id = %s", (upload_id,)).fetchone()
    return conn.execute("SELECT * FROM uploads WHERE id = %s AND user_id = %s", (upload_id, user_id)).fetchone()


def dumps(value: Any) -> str:
    """JSON for log lines and API bodies: datetimes and UUIDs as strings."""
    return json.dumps(value, default=str, separators=(",", ":"))
