"""What one user holds and has asked for lately, counted under a per-user lock.

:func:`lock_user` takes a transaction-scoped advisory lock on the user, so two requests of the
same user that check a limit and then insert run one after the other: the second counts the
first's row. Call it, count, and insert in ONE transaction (``with conn.transaction()``).
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg

from runtime.shared.db import Row
from runtime.shared.status import ACTIVE, UploadStatus

Connection = psycopg.Connection[Row]

#: Namespace of the per-user advisory locks (pg_advisory_xact_lock's first key).
_LOCK_NAMESPACE = 14_02
#: Days an uploaded input counts as stored: the input bucket's lifecycle
#: (constructs_lib.storage.StorageProps.input_expiration_days' default).
INPUT_RETENTION_DAYS = 7


def lock_user(conn: Connection, user_id: str) -> None:
    """Serialise this user's limit checks until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, str(user_id)))


class Count(NamedTuple):
    """How many (or how much) is used, and the seconds until the oldest counted item stops counting
    (None when nothing counted or when that depends on the user, e.g. a job finishing)."""

    used: int
    frees_in_seconds: int | None


def active_jobs(conn: Connection, user_id: str) -> Count:
    row = conn.execute(
        "SELECT count(*) AS n FROM jobs WHERE user_id = %s AND status = ANY(%s)",
        (user_id, sorted(s.value for s in ACTIVE)),
    ).fetchone()
    return Count(int(row["n"]) if row else 0, None)


def jobs_since(conn: Connection, user_id: str, window_seconds: int) -> Count:
    row = conn.execute(
        """SELECT count(*) AS n,
                  ceil(extract(epoch FROM min(created_at) + make_interval(secs => %(w)s) - now()))::int AS frees
           FROM jobs WHERE user_id = %(u)s AND created_at > now() - make_interval(secs => %(w)s)""",
        {"u": user_id, "w": window_seconds},
    ).fetchone()
    return Count(int(row["n"]), row["frees"]) if row else Count(0, None)


def pending_uploads(conn: Connection, user_id: str, url_ttl_seconds: int) -> Count:
    """PENDING uploads whose URLs are still live (older ones can no longer receive a file)."""
    row = conn.execute(
        """SELECT count(*) AS n,
                  ceil(extract(epoch FROM min(created_at) + make_interval(secs => %(w)s) - now()))::int AS frees
           FROM uploads WHERE user_id = %(u)s AND status = %(pending)s
             AND created_at > now() - make_interval(secs => %(w)s)""",
        {"u": user_id, "w": url_ttl_seconds, "pending": UploadStatus.PENDING.value},
    ).fetchone()
    return Count(int(row["n"]), row["frees"]) if row else Count(0, None)


def stored_bytes(conn: Connection, user_id: str, url_ttl_seconds: int, undeclared_bytes: int) -> Count:
    """Input bytes held: UPLOADED inputs within the bucket's lifecycle at their size, live PENDING
    uploads at their declared size (``undeclared_bytes`` when none was declared)."""
    row = conn.execute(
        """SELECT COALESCE(sum(CASE WHEN status = %(uploaded)s THEN COALESCE(size_bytes, declared_bytes)
                                    WHEN declared_bytes > 0 THEN declared_bytes
                                    ELSE %(undeclared)s END), 0)::bigint AS n,
                  ceil(extract(epoch FROM min(created_at) + make_interval(days => %(days)s) - now()))::int AS frees
           FROM uploads
           WHERE user_id = %(u)s
             AND ((status = %(uploaded)s AND created_at > now() - make_interval(days => %(days)s))
                  OR (status = %(pending)s AND created_at > now() - make_interval(secs => %(ttl)s)))""",
        {
            "u": user_id,
            "uploaded": UploadStatus.UPLOADED.value,
            "pending": UploadStatus.PENDING.value,
            "undeclared": undeclared_bytes,
            "days": INPUT_RETENTION_DAYS,
            "ttl": url_ttl_seconds,
        },
    ).fetchone()
    return Count(int(row["n"]), row["frees"]) if row else Count(0, None)
