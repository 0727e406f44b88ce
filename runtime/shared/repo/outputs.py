"""The ``job_outputs`` table: what a job produced in the output bucket, and its role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Re-exported: the table's column type, owned (with the statuses) by runtime.shared.status.
from runtime.shared.status import OutputRole as OutputRole

if TYPE_CHECKING:
    import psycopg

    from runtime.shared.db import Row


@dataclass(frozen=True)
class Output:
    """One object a job produced in the output bucket."""

    object_key: str
    role: OutputRole
    bytes: int
    mime: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None


COLUMNS = "object_key, role, bytes, mime, width, height, duration_seconds, bitrate"


def replace(conn: psycopg.Connection[Row], job_id: str, outputs: Sequence[Output]) -> None:
    """Make ``outputs`` the job's outputs, atomically: a re-run replaces, never duplicates."""
    with conn.transaction():
        conn.execute("DELETE FROM job_outputs WHERE job_id = %s", (job_id,))
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO job_outputs (job_id, {COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (job_id, o.object_key, o.role, o.bytes, o.mime, o.width, o.height, o.duration_seconds, o.bitrate)
                    for o in outputs
                ],
            )


def for_job(conn: psycopg.Connection[Row], job_id: str) -> list[Row]:
    """A job's outputs, by role then key."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM job_outputs WHERE job_id = %s ORDER BY role, object_key", (job_id,)
    ).fetchall()


def first_key(conn: psycopg.Connection[Row], job_id: str, role: OutputRole) -> str | None:
    """The first (by key) output of ``role``, e.g. a job's HLS master playlist."""
    row = conn.execute(
        "SELECT object_key FROM job_outputs WHERE job_id = %s AND role = %s ORDER BY object_key LIMIT 1",
        (job_id, role.value),
    ).fetchone()
    return None if row is None else str(row["object_key"])
