"""Per-user limits: a lock and the shape of a count. :func:`lock_user` takes a
transaction-scoped advisory lock on the user, so two requests of one user that check a limit
and then insert run one after the other: the second counts the first's row. Lock, count
(``repo.jobs.count_*``, ``repo.uploads.count_*``, each a :class:`Count`) and insert in ONE
transaction (``with conn.transaction()``).
"""

from __future__ import annotations

from typing import NamedTuple

from runtime.shared.db import Connection

#: Namespace of the per-user advisory locks (pg_advisory_xact_lock's first key).
_LOCK_NAMESPACE = 14_02


def lock_user(conn: Connection, user_id: str) -> None:
    """Serialise this user's limit checks until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, str(user_id)))


class Count(NamedTuple):
    """How many (or how much) is used, and the seconds until the oldest counted item stops counting
    (None when nothing counted or when that depends on the user, e.g. a job finishing)."""

    used: int
    frees_in_seconds: int | None
