"""Per-user limits (``Settings.limits``): each check runs inside the transaction that inserts
the row it limits, after :func:`runtime.shared.repo.usage.lock_user`, so parallel requests of
one user cannot all pass a count that none of them has added to yet. Over a limit is
:class:`OverLimit` (429) with the code, the limit, what is used and ``retry_after_seconds``
(also the ``Retry-After`` header)."""

from __future__ import annotations

from runtime.api.chalicelib.domain import Throttled
from runtime.shared.db import Connection
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import uploads as uploads_repo
from runtime.shared.repo import usage
from runtime.shared.repo.usage import Count
from runtime.shared.settings import UPLOAD_URL_TTL_SECONDS, Limits

HOUR_SECONDS = 3600
#: Retry-After when what frees the limit is up to the user (a job finishing, a file expiring).
DEFAULT_RETRY_AFTER_SECONDS = 60


class OverLimit(Throttled):
    """A per-user limit is reached."""


def _refuse(code: str, what: str, limit: int, count: Count, unit: str = "") -> OverLimit:
    retry = max(1, count.frees_in_seconds or DEFAULT_RETRY_AFTER_SECONDS)
    return OverLimit(
        code,
        f"you have reached the limit of {limit}{unit} {what}; retry in {retry} s",
        {"limit": limit, "used": count.used, "retry_after_seconds": retry},
    )


def check_job(conn: Connection, user_id: str, limits: Limits) -> None:
    """Before inserting a job: active jobs and jobs in the last hour."""
    usage.lock_user(conn, user_id)
    active = jobs_repo.count_active(conn, user_id)
    if active.used >= limits.max_active_jobs_per_user:
        raise _refuse("TOO_MANY_ACTIVE_JOBS", "jobs queued or running", limits.max_active_jobs_per_user, active)
    recent = jobs_repo.count_since(conn, user_id, HOUR_SECONDS)
    if recent.used >= limits.max_jobs_per_hour_per_user:
        raise _refuse("JOB_RATE_LIMITED", "jobs per hour", limits.max_jobs_per_hour_per_user, recent)


def check_upload(conn: Connection, user_id: str, limits: Limits, declared_bytes: int | None) -> None:
    """Before inserting an upload: pending uploads, and stored bytes with this one reserved."""
    usage.lock_user(conn, user_id)
    pending = uploads_repo.count_pending(conn, user_id, UPLOAD_URL_TTL_SECONDS)
    if pending.used >= limits.max_pending_uploads_per_user:
        raise _refuse("TOO_MANY_PENDING_UPLOADS", "uploads pending", limits.max_pending_uploads_per_user, pending)
    stored = uploads_repo.count_stored_bytes(conn, user_id, UPLOAD_URL_TTL_SECONDS, limits.max_input_bytes)
    if stored.used + (declared_bytes or limits.max_input_bytes) > limits.max_stored_bytes_per_user:
        raise _refuse("STORAGE_LIMIT_REACHED", "stored input", limits.max_stored_bytes_per_user, stored, " bytes of")
