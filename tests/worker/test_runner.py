"""The job runner end to end on moto S3 and real PostgreSQL: claim, process, publish, record."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.shared.aws import client
from runtime.shared.settings import Limits
from runtime.shared.status import JobStatus
from runtime.worker.runner import ProgressReporter, run_job
from tests.media import make_png_claiming, make_truncated, make_video


def _objects(settings: Any, prefix: str) -> dict[str, dict[str, Any]]:
    s3 = client("s3", settings)
    listing = s3.list_objects_v2(Bucket=settings.output_bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.head_object(Bucket=settings.output_bucket, Key=o["Key"]) for o in listing}


def test_given_image_job_when_run_then_succeeded_with_one_recorded_output(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 300}, {"op": "convert-format", "format": "webp"}])
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    row = job_row(job_id)
    assert row["status"] == "SUCCEEDED" and row["progress"] == 100 and row["error_code"] is None
    [out] = outputs(job_id)
    assert out["object_key"] == f"output/{row['user_id']}/{job_id}/image.webp"
    assert (out["role"], out["mime"], out["width"], out["height"]) == ("image", "image/webp", 300, 200)
    head = _objects(settings, out["object_key"])[out["object_key"]]
    assert head["ContentType"] == "image/webp" and head["ContentLength"] == out["bytes"]


def test_given_transcode_job_when_run_then_hls_uploaded_with_types_and_cache_control(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, clip_480: Path
) -> None:
    job_id = submit(clip_480, "VIDEO", [{"op": "transcode", "segment_seconds": 2}, {"op": "poster"}])
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    prefix = f"output/{job_row(job_id)['user_id']}/{job_id}/"
    rows = {r["object_key"].removeprefix(prefix): r for r in outputs(job_id)}
    renditions = {"hls/480p/index.m3u8", "hls/360p/index.m3u8", "hls/audio_0/index.m3u8"}  # audio: its own
    assert set(rows) == {"hls/master.m3u8", "poster.jpg", *renditions}
    assert all(rows[r]["role"] == "hls-rendition" and rows[r]["bitrate"] > 0 for r in renditions)
    assert rows["hls/audio_0/index.m3u8"]["width"] is None and rows["hls/480p/index.m3u8"]["width"] == 854
    assert rows["hls/master.m3u8"]["role"] == "hls-master"
    objects = {k.removeprefix(prefix): v for k, v in _objects(settings, prefix).items()}
    assert objects["hls/master.m3u8"]["ContentType"] == "application/vnd.apple.mpegurl"
    assert objects["hls/master.m3u8"]["CacheControl"] == "max-age=60"
    assert objects["hls/360p/seg_00001.ts"]["ContentType"] == "video/mp2t"
    assert "immutable" in objects["hls/360p/seg_00001.ts"]["CacheControl"]
    assert objects["poster.jpg"]["ContentType"] == "image/jpeg"
    assert not any(r["object_key"].endswith(".ts") for r in outputs(job_id))  # segments are not rows


def test_given_finished_job_re_run_when_processed_again_then_outputs_replaced_not_duplicated(
    settings: Any, db: Any, submit: Any, outputs: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "thumbnail", "width": 64}])
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    first = outputs(job_id)
    # A terminal job is left alone (idempotent re-delivery)...
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    # ...and a job re-queued by an operator runs again and replaces its rows.
    with db.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'QUEUED' WHERE id = %s", (job_id,))
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    second = outputs(job_id)
    assert len(second) == len(first) == 1 and second[0]["object_key"] == first[0]["object_key"]


def test_given_re_run_producing_fewer_outputs_when_processed_then_stale_outputs_are_deleted(
    settings: Any, db: Any, submit: Any, job_row: Any, photo: Path
) -> None:
    """The prune (ListObjectsV2 + DeleteObjects on output/) the IAM conformance check must see."""
    job_id = submit(photo, "IMAGE", [{"op": "thumbnail", "width": 64}])
    prefix = f"output/{job_row(job_id)['user_id']}/{job_id}/"
    client("s3", settings).put_object(Bucket=settings.output_bucket, Key=f"{prefix}old/stale.jpg", Body=b"x")
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    assert f"{prefix}old/stale.jpg" not in _objects(settings, prefix)
    assert len(_objects(settings, prefix)) == 1


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("zero-bytes", "INPUT_UNREADABLE"),
        ("text-named-jpg", "UNSUPPORTED_FORMAT"),
        ("bomb-png", "LIMIT_EXCEEDED"),
    ],
)
def test_given_bad_image_input_when_run_then_failed_with_its_code(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, tmp_path: Path, name: str, code: str
) -> None:
    source: Path | bytes
    if name == "zero-bytes":
        source = b""
    elif name == "text-named-jpg":
        source = tmp_path / "notes.jpg"
        source.write_text("meeting notes\n" * 40)
    else:
        source = make_png_claiming(tmp_path / "bomb.png", 30000, 30000)
    job_id = submit(source, "IMAGE", [{"op": "resize", "width": 100}], filename="upload.jpg")
    assert run_job(job_id, settings, db) == JobStatus.FAILED
    row = job_row(job_id)
    assert row["error_code"] == code and row["error_message"]
    assert outputs(job_id) == []


def test_given_truncated_mp4_when_run_then_failed_input_unreadable(
    settings: Any, db: Any, submit: Any, job_row: Any, clip: Path, tmp_path: Path
) -> None:
    job_id = submit(make_truncated(clip, tmp_path / "cut.mp4", 0.3), "VIDEO", {"TRANSCODE": ""})
    assert run_job(job_id, settings, db) == JobStatus.FAILED
    assert job_row(job_id)["error_code"] == "INPUT_UNREADABLE"


def test_given_video_over_duration_limit_when_run_then_failed_limit_exceeded(
    settings: Any, db: Any, submit: Any, job_row: Any, clip: Path
) -> None:
    limited = dataclasses.replace(settings, limits=Limits(max_video_duration_seconds=1))
    job_id = submit(clip, "VIDEO", [{"op": "poster"}])
    assert run_job(job_id, limited, db) == JobStatus.FAILED
    row = job_row(job_id)
    assert row["error_code"] == "LIMIT_EXCEEDED" and "limit is 1 s" in row["error_message"]


def test_given_input_over_byte_limit_when_run_then_failed_before_download(
    settings: Any, db: Any, submit: Any, job_row: Any, photo: Path
) -> None:
    limited = dataclasses.replace(settings, limits=Limits(max_input_bytes=100))
    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 10}])
    assert run_job(job_id, limited, db) == JobStatus.FAILED
    assert job_row(job_id)["error_code"] == "LIMIT_EXCEEDED"


def test_given_deleted_input_object_when_run_then_failed_input_missing(
    settings: Any, db: Any, submit: Any, job_row: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 10}])
    with db.connection() as conn:
        key = conn.execute(
            "SELECT u.object_key FROM uploads u JOIN jobs j ON j.upload_id = u.id WHERE j.id = %s", (job_id,)
        ).fetchone()["object_key"]
    client("s3", settings).delete_object(Bucket=settings.input_bucket, Key=key)
    assert run_job(job_id, settings, db) == JobStatus.FAILED
    assert job_row(job_id)["error_code"] == "INPUT_MISSING"


def test_given_worker_time_limit_when_ffmpeg_runs_longer_then_failed_timeout(
    settings: Any, db: Any, submit: Any, job_row: Any, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "long.mp4", 30, 640, 360)
    limited = dataclasses.replace(settings, limits=Limits(worker_timeout_seconds=1))
    job_id = submit(
        source, "VIDEO", [{"op": "transcode", "renditions": [360]}, {"op": "transcode-resolution", "height": 360}]
    )
    assert run_job(job_id, limited, db) == JobStatus.FAILED
    assert job_row(job_id)["error_code"] == "TIMEOUT"


def test_given_job_cancelled_while_transcoding_when_noticed_then_cancelled_and_no_outputs(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "long.mp4", 30, 640, 360)
    job_id = submit(
        source, "VIDEO", [{"op": "transcode", "renditions": [360]}, {"op": "transcode-resolution", "height": 360}]
    )
    result: list[JobStatus] = []
    worker = threading.Thread(target=lambda: result.append(run_job(job_id, settings, db, 0.05, 0.2)))
    worker.start()
    deadline = time.monotonic() + 60
    while job_row(job_id)["progress"] < 4 and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.05)
    with db.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'CANCELLED' WHERE id = %s AND status = 'RUNNING'", (job_id,))
    worker.join(60)
    assert result == [JobStatus.CANCELLED]
    assert job_row(job_id)["status"] == "CANCELLED" and outputs(job_id) == []


def test_given_reporter_when_called_often_then_writes_are_bounded_and_cancel_raises(
    settings: Any, db: Any, submit: Any, photo: Path
) -> None:
    from runtime.shared.repo.jobs import transition
    from runtime.worker.errors import Cancelled

    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 10}])
    with db.connection() as conn:
        transition(conn, job_id, JobStatus.RUNNING)
    now = [0.0]
    reporter = ProgressReporter(db, job_id, min_interval=2.0, check_interval=5.0, clock=lambda: now[0])
    for step in range(100):  # 10 s of progress calls every 0.1 s
        now[0] = step / 10
        reporter(step / 100)
    assert 4 <= reporter.writes <= 6
    with db.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'CANCELLED' WHERE id = %s", (job_id,))
    now[0] += 10
    with pytest.raises(Cancelled):
        reporter(0.5)


@pytest.mark.parametrize("good", [True, False])
def test_given_any_outcome_when_run_ends_then_scratch_is_removed(
    settings: Any, db: Any, submit: Any, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good: bool
) -> None:
    import tempfile

    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    job_id = submit(photo if good else b"\x00" * 10, "IMAGE", [{"op": "resize", "width": 10}])
    expected = JobStatus.SUCCEEDED if good else JobStatus.FAILED
    assert run_job(job_id, settings, db) == expected
    assert list(scratch_root.iterdir()) == []
