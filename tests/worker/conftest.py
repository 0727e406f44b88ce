"""Worker fixtures: media generated once per session, and a helper that submits a job the
way the API does (user + upload rows in PostgreSQL, the object in moto's S3, a QUEUED job)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    """``submit(path_or_bytes, job_type, operations, filename=None, content_type=...) -> job_id``."""
    from runtime.shared.aws import client
    from tests.factories import insert_job, insert_upload, insert_user

    def _submit(
        source: Path | bytes,
        job_type: str,
        operations: Any,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        body = source if isinstance(source, bytes) else Path(source).read_bytes()
        name = filename or (Path(source).name if not isinstance(source, bytes) else "upload.bin")
        with db.connection() as conn:
            user_id = insert_user(conn)
            upload = insert_upload(
                conn,
                user_id,
                media_type=job_type,
                filename=name,
                content_type=content_type,
                size_bytes=len(body),
                status="UPLOADED",
            )
            client("s3", settings).put_object(Bucket=settings.input_bucket, Key=upload["object_key"], Body=body)
            job = insert_job(conn, job_type, operations, user_id=user_id, upload_id=str(upload["id"]))
        return str(job["id"])

    return _submit


@pytest.fixture()
def job_row(db: Any) -> Callable[[str], dict[str, Any]]:
    from runtime.shared.repo.jobs import get as get_job

    def _row(job_id: str) -> dict[str, Any]:
        with db.connection() as conn:
            row = get_job(conn, job_id)
        assert row is not None
        return row

    return _row


@pytest.fixture()
def outputs(db: Any) -> Callable[[str], list[dict[str, Any]]]:
    from runtime.shared.repo.outputs import for_job as list_outputs

    def _outputs(job_id: str) -> list[dict[str, Any]]:
        with db.connection() as conn:
            return list_outputs(conn, job_id)

    return _outputs


@pytest.fixture()
def warm(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The function's environment (as the construct sets it) for the test's services."""
    for name, value in {
        "TRANSCODEX_DATABASE_URL": settings.database_url,
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3,
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
    }.items():
        monkeypatch.setenv(name, value)
    from runtime.worker import lambda_handler

    lambda_handler.reset()
    yield
    lambda_handler.reset()
