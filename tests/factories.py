"""Rows for tests: a user, an upload and a job, inserted the way the API would."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from runtime.shared.contract import parse_job
from runtime.shared.repo import jobs as jobs_repo

Row = dict[str, Any]


def insert_user(conn: psycopg.Connection[Row], name: str = "Test") -> str:
    user = conn.execute(
        "INSERT INTO users (name, username, email, password_hash) VALUES (%s, %s, %s, 'x') RETURNING id",
        (name, f"u{uuid.uuid4().hex[:12]}", f"{uuid.uuid4().hex[:12]}@example.com"),
    ).fetchone()
    assert user is not None
    return str(user["id"])


def insert_upload(
    conn: psycopg.Connection[Row],
    user_id: str,
    *,
    media_type: str = "IMAGE",
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    size_bytes: int = 10,
    status: str = "PENDING",
) -> Row:
    """An uploads row keyed ``input/{user_id}/{upload_id}/{filename}``, as the API makes it."""
    upload_id = str(uuid.uuid4())
    row = conn.execute(
        """INSERT INTO uploads (id, user_id, object_key, filename, content_type, media_type, declared_bytes,
                                size_bytes, status)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
        (
            upload_id,
            user_id,
            f"input/{user_id}/{upload_id}/{filename}",
            filename,
            content_type,
            media_type,
            size_bytes,
            size_bytes if status == "UPLOADED" else None,
            status,
        ),
    ).fetchone()
    assert row is not None
    return row


def insert_job(
    conn: psycopg.Connection[Row],
    job_type: str = "IMAGE",
    operations: Any = None,
    *,
    user_id: str | None = None,
    upload_id: str | None = None,
    **create: Any,
) -> Row:
    """A QUEUED job (with a new user and upload unless given); ``create`` goes to db.create_job."""
    user_id = user_id or insert_user(conn)
    upload_id = upload_id or str(insert_upload(conn, user_id, media_type=job_type)["id"])
    spec = parse_job(job_type, operations if operations is not None else {"ROTATE": "90"})
    job, _ = jobs_repo.create(conn, user_id=user_id, upload_id=upload_id, spec=spec, **create)
    return job
