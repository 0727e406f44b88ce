"""Worker fixtures: media generated once per session, and a helper that submits a job the
way the API does (user + upload rows in PostgreSQL, the object in moto's S3, a QUEUED job)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.media import make_image, make_video


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media: Path) -> Path:
    """2 s, 320x180, H.264 + AAC."""
    return make_video(media / "clip.mp4", 2, 320, 180)


@pytest.fixture(scope="session")
def clip_480(media: Path) -> Path:
    return make_video(media / "clip480.mp4", 2, 854, 480)


@pytest.fixture(scope="session")
def clip_silent(media: Path) -> Path:
    return make_video(media / "silent.mp4", 2, 640, 360, audio=False)


@pytest.fixture(scope="session")
def clip_portrait(media: Path) -> Path:
    """Stored 640x360 with a 90-degree display matrix, as phones record portrait video."""
    return make_video(media / "portrait.mp4", 2, 640, 360, rotate=90)


@pytest.fixture(scope="session")
def photo(media: Path) -> Path:
    return make_image(media / "photo.jpg", 1200, 800)


Submit = Callable[..., str]


@pytest.fixture()
def submit(settings: Any, db: Any) -> Submit:
    """``submit(path_or_bytes, job_type, operations, filename=None) -> job_id``."""
    from runtime.shared.aws import client
    from runtime.shared.contract import parse_job
    from runtime.shared.db import create_job

    def _submit(source: Path | bytes, job_type: str, operations: Any, filename: str | None = None) -> str:
        body = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = filename or (Path(source).name if not isinstance(source, bytes) else "upload.bin")
        with db.connection() as conn:
            user = conn.execute(
                "INSERT INTO users (name, username, email, password_hash) VALUES (%s, %s, %s, 'x') RETURNING id",
                ("Test", f"u{uuid.uuid4().hex[:12]}", f"{uuid.uuid4().hex[:12]}@example.com"),
            ).fetchone()
            user_id = str(user["id"])
            upload_id = str(uuid.uuid4())
            key = f"input/{user_id}/{upload_id}/{name}"
            client("s3", settings).put_object(Bucket=settings.input_bucket, Key=key, Body=body)
            conn.execute(
                """INSERT INTO uploads (id, user_id, object_key, filename, content_type, media_type,
                   declared_bytes, size_bytes, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'UPLOADED')""",
                (upload_id, user_id, key, name, "application/octet-stream", job_type, len(body), len(body)),
            )
            job, _ = create_job(conn, user_id=user_id, upload_id=upload_id, spec=parse_job(job_type, operations))
        return str(job["id"])

    return _submit


@pytest.fixture()
def job_row(db: Any) -> Callable[[str], dict[str, Any]]:
    from runtime.shared.db import get_job

    def _row(job_id: str) -> dict[str, Any]:
        with db.connection() as conn:
            row = get_job(conn, job_id)
        assert row is not None
        return row

    return _row


@pytest.fixture()
def outputs(db: Any) -> Callable[[str], list[dict[str, Any]]]:
    from runtime.shared.db import list_outputs

    def _outputs(job_id: str) -> list[dict[str, Any]]:
        with db.connection() as conn:
            return list_outputs(conn, job_id)

    return _outputs
