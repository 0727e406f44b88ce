"""The ``media_deletions`` table: a deleted user's media, queued for the sweeper.

:func:`request` runs in the transaction that deletes the user. The sweeper :func:`claim_due`
rows (a lease: a crashed sweeper's row is due again when it lapses), deletes, and records
either :func:`record_pass` or :func:`record_failure` (retried with backoff). A row finishes
only after a pass that began once no worker of the user can still be writing outputs.
"""

from __future__ import annotations

from runtime.shared.db import Connection, Row

#: Longest wait between two attempts of a failing deletion.
MAX_BACKOFF_SECONDS = 3600


def request(conn: Connection, user_id: str) -> None:
    conn.execute("INSERT INTO media_deletions (user_id) VALUES (%s)", (user_id,))


def claim_due(conn: Connection, limit: int, lease_seconds: float, settle_seconds: float) -> list[Row]:
    """Up to ``limit`` due rows, leased for ``lease_seconds``; ``settled`` says whether no worker
    of the user can still write (``settle_seconds`` after the request)."""
    return conn.execute(
        """WITH due AS MATERIALIZED (
               SELECT id FROM media_deletions WHERE finished_at IS NULL AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
           UPDATE media_deletions d SET attempts = attempts + 1,
                  next_attempt_at = now() + make_interval(secs => %(lease)s)
           FROM due WHERE d.id = due.id
           RETURNING d.id, d.user_id, d.attempts,
                     d.requested_at + make_interval(secs => %(settle)s) <= now() AS settled""",
        {"limit": limit, "lease": float(lease_seconds), "settle": float(settle_seconds)},
    ).fetchall()


def record_pass(
    conn: Connection, deletion_id: int, deleted: int, *, done: bool, settled: bool, settle_seconds: float
) -> None:
    """After a pass without error: finished when ``done`` and ``settled``; else due again now
    (objects left) or once settled (a late worker's outputs are deleted by that pass)."""
    conn.execute(
        """UPDATE media_deletions SET objects_deleted = objects_deleted + %(deleted)s, last_error = NULL,
                  attempts = 0,
                  finished_at = CASE WHEN %(finished)s THEN now() END,
                  next_attempt_at = CASE WHEN %(done)s
                      THEN GREATEST(now(), requested_at + make_interval(secs => %(settle)s)) ELSE now() END
           WHERE id = %(id)s""",
        {
            "deleted": deleted,
            "finished": done and settled,
            "done": done,
            "settle": float(settle_seconds),
            "id": deletion_id,
        },
    )


def record_failure(conn: Connection, deletion_id: int, error: str, attempts: int) -> None:
    """Keep the error and retry after 1, 2, 4… minutes (at most an hour)."""
    backoff = min(MAX_BACKOFF_SECONDS, 60 * 2 ** min(attempts - 1, 10))
    conn.execute(
        """UPDATE media_deletions SET last_error = %s, next_attempt_at = now() + make_interval(secs => %s)
           WHERE id = %s""",
        (error[:1000], backoff, deletion_id),
    )


def pending(conn: Connection) -> list[Row]:
    """Every unfinished deletion (operators, tests)."""
    return conn.execute("SELECT * FROM media_deletions WHERE finished_at IS NULL ORDER BY requested_at").fetchall()
