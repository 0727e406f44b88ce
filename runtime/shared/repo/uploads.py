"""The ``uploads`` table: an upload's record, from the presigned URL to UPLOADED (or ABORTED,
EXPIRED). Status changes are guarded UPDATEs whose sources come from
runtime.shared.status.UPLOAD_TRANSITIONS."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from runtime.shared.db import Connection, Row
from runtime.shared.repo.usage import Count
from runtime.shared.status import UploadStatus, upload_sources


def create(
    conn: Connection,
    *,
    upload_id: str,
    user_id: str,
    api_key_id: str | None,
    object_key: str,
    filename: str,
    content_type: str,
    media_type: str,
    declared_bytes: int,
) -> None:
    """Insert a PENDING upload."""
    conn.execute(
        """INSERT INTO uploads (id, user_id, api_key_id, object_key, filename, content_type, media_type,
                                declared_bytes)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (upload_id, user_id, api_key_id, object_key, filename, content_type, media_type, declared_bytes),
    )


def get(conn: Connection, upload_id: str, user_id: str | None = None) -> Row | None:
    """An upload by id; with ``user_id``, only if that user owns it."""
    if user_id is None:
        return conn.execute("SELECT * FROM uploads WHERE id = %s", (upload_id,)).fetchone()
    return conn.execute("SELECT * FROM uploads WHERE id = %s AND user_id = %s", (upload_id, user_id)).fetchone()


def set_multipart_id(conn: Connection, upload_id: str, multipart_upload_id: str | None) -> Row | None:
    """Record the S3 multipart upload (None: a single PUT/POST); return the upload."""
    return conn.execute(
        "UPDATE uploads SET multipart_upload_id = %s WHERE id = %s RETURNING *", (multipart_upload_id, upload_id)
    ).fetchone()


def abort(
    conn: Connection, upload_id: str, *, user_id: str | None = None, multipart_upload_id: str | None = None
) -> Row | None:
    """ABORTED (from any status, see UPLOAD_TRANSITIONS); with ``user_id``, only that user's.
    ``multipart_upload_id`` records an S3 multipart upload left to abort (None: nothing left)."""
    owner = " AND user_id = %(user_id)s" if user_id is not None else ""
    return conn.execute(
        f"""UPDATE uploads SET status = %(target)s, multipart_upload_id = %(multipart)s
            WHERE id = %(id)s AND status = ANY(%(sources)s){owner} RETURNING *""",
        {
            "target": UploadStatus.ABORTED.value,
            "multipart": multipart_upload_id,
            "id": upload_id,
            "sources": upload_sources(UploadStatus.ABORTED),
            "user_id": user_id,
        },
    ).fetchone()


def mark_uploaded(
    conn: Connection, upload_id: str, size_bytes: int, *, from_statuses: Iterable[UploadStatus] | None = None
) -> Row | None:
    """UPLOADED with the object's size, if the upload may still complete (``from_statuses``
    narrows); None when it was aborted or expired (or moved by someone else)."""
    return conn.execute(
        """UPDATE uploads SET status = %(target)s, size_bytes = %(size)s,
                              completed_at = COALESCE(completed_at, now()), multipart_upload_id = NULL
           WHERE id = %(id)s AND status = ANY(%(sources)s) RETURNING *""",
        {
            "target": UploadStatus.UPLOADED.value,
            "size": size_bytes,
            "id": upload_id,
            "sources": upload_sources(UploadStatus.UPLOADED, from_statuses),
        },
    ).fetchone()


def expire(conn: Connection, upload_id: str) -> Row | None:
    """EXPIRED for an upload still PENDING (its URLs have lapsed and no object arrived)."""
    return conn.execute(
        "UPDATE uploads SET status = %s WHERE id = %s AND status = ANY(%s) RETURNING *",
        (UploadStatus.EXPIRED.value, upload_id, upload_sources(UploadStatus.EXPIRED)),
    ).fetchone()


#: Days an uploaded input counts as stored: the input bucket's lifecycle
#: (constructs_lib.storage.StorageProps.input_expiration_days' default).
INPUT_RETENTION_DAYS = 7


def count_pending(conn: Connection, user_id: str, url_ttl_seconds: int) -> Count:
    """PENDING uploads whose URLs are still live (older ones can no longer receive a file)."""
    row = conn.execute(
        """SELECT count(*) AS n,
                  ceil(extract(epoch FROM min(created_at) + make_interval(secs => %(w)s) - now()))::int AS frees
           FROM uploads WHERE user_id = %(u)s AND status = %(pending)s
             AND created_at > now() - make_interval(secs => %(w)s)""",
        {"u": user_id, "w": url_ttl_seconds, "pending": UploadStatus.PENDING.value},
    ).fetchone()
    return Count(int(row["n"]), row["frees"]) if row else Count(0, None)


def count_stored_bytes(conn: Connection, user_id: str, url_ttl_seconds: int, undeclared_bytes: int) -> Count:
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


# --- the sweeper ---------------------------------------------------------------------------


def stale_pending(conn: Connection, older_than_seconds: float, limit: int, now: datetime | None) -> list[Row]:
    """Up to ``limit`` uploads PENDING since before ``older_than_seconds`` ago (``now`` or the
    database's clock), the ones never checked first, then those checked longest ago."""
    return conn.execute(
        """SELECT id, object_key FROM uploads
           WHERE status = %(pending)s
             AND created_at < COALESCE(%(now)s::timestamptz, now()) - make_interval(secs => %(age)s)
           ORDER BY sweep_checked_at NULLS FIRST, created_at LIMIT %(limit)s""",
        {"pending": UploadStatus.PENDING.value, "now": now, "age": float(older_than_seconds), "limit": limit},
    ).fetchall()


def mark_checked(conn: Connection, upload_id: str) -> None:
    """Note a failed check of the upload's object: it goes to the back of the next pass."""
    conn.execute("UPDATE uploads SET sweep_checked_at = now() WHERE id = %s", (upload_id,))
