"""Deleting an account deletes its media: DELETE /users ends every credential at once and
queues the deletion; the sweeper then removes ``input/{user}/`` and ``output/{user}/`` from
both buckets (real SeaweedFS), records a failure mid-way and retries it, and finishes only
after a pass that no worker of the user can outlive. Another user's objects stay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runtime.dispatcher.sweeper import SweepConfig, s3_delete_input, s3_media_deleter, s3_object_size, sweep
from runtime.shared.aws import client as aws_client
from runtime.shared.repo import deletions as deletions_repo
from tests.api.conftest import Caller, upload_file

CONFIG = SweepConfig(worker_timeout_seconds=3600, running_grace_seconds=600)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _media(s3: Any, settings: Any, user_id: str) -> list[str]:
    return _keys(s3, settings.input_bucket, f"input/{user_id}/") + _keys(
        s3, settings.output_bucket, f"output/{user_id}/"
    )


def _seed_media(caller: Caller, settings: Any, s3: Any, outputs: int = 3) -> None:
    upload_file(caller, b"\xff\xd8" + b"x" * 100)
    for n in range(outputs):
        key = f"output/{caller.user['id']}/job-{n}/hls/seg_{n:05}.m4s"
        s3.put_object(Bucket=settings.output_bucket, Key=key, Body=b"segment")


def _sweep(db: Any, settings: Any, delete_media: Callable[[str, int], tuple[int, bool]] | None = None) -> Any:
    s3 = aws_client("s3", settings)
    return sweep(
        db,
        CONFIG,
        send_job=lambda body: None,
        object_size=s3_object_size(s3, settings.input_bucket),
        delete_input=s3_delete_input(s3, settings.input_bucket),
        delete_media=delete_media or s3_media_deleter(s3, settings.input_bucket, settings.output_bucket),
    )


def _age_request(db: Any, seconds: int) -> None:
    with db.connection() as conn:
        conn.execute(
            "UPDATE media_deletions SET requested_at = requested_at - make_interval(secs => %s), "
            "next_attempt_at = LEAST(next_attempt_at, now())",
            (seconds,),
        )


@pytest.fixture()
def s3(settings: Any) -> Any:
    return aws_client("s3", settings)


def test_given_a_user_with_media_when_deleted_and_swept_then_none_of_their_objects_remain(
    alice: Caller, bob: Caller, settings: Any, db: Any, s3: Any
) -> None:
    _seed_media(alice, settings, s3)
    _seed_media(bob, settings, s3, outputs=1)
    assert len(_media(s3, settings, alice.user["id"])) == 4
    deleted = alice.http.delete("/users", headers=alice.bearer)
    assert deleted.status_code == 200
    # credentials end with the request, before any object is touched
    assert alice.call("GET", "/media/jobs").status_code == 401
    assert alice.http.get("/sessions", headers=alice.bearer).status_code == 401
    with db.connection() as conn:
        [queued] = deletions_repo.pending(conn)
    assert str(queued["user_id"]) == alice.user["id"]

    first = _sweep(db, settings)

    assert first.media_objects_deleted == 4 and _media(s3, settings, alice.user["id"]) == []
    assert len(_media(s3, settings, bob.user["id"])) == 2
    # a worker of alice's may still be running: the deletion stays open for one more pass
    with db.connection() as conn:
        assert len(deletions_repo.pending(conn)) == 1
    late = f"output/{alice.user['id']}/job-late/image.webp"
    s3.put_object(Bucket=settings.output_bucket, Key=late, Body=b"late")
    assert _sweep(db, settings).media_objects_deleted == 0  # not due before the workers' time is up
    _age_request(db, CONFIG.worker_timeout_seconds + CONFIG.running_grace_seconds + 1)

    last = _sweep(db, settings)

    assert last.media_objects_deleted == 1 and last.media_deletions_finished == [alice.user["id"]]
    assert _media(s3, settings, alice.user["id"]) == []
    with db.connection() as conn:
        assert deletions_repo.pending(conn) == []
        done = conn.execute("SELECT objects_deleted, finished_at FROM media_deletions").fetchone()
    assert done["objects_deleted"] == 5 and done["finished_at"] is not None


def test_given_s3_fails_mid_way_when_swept_then_the_failure_is_recorded_and_a_later_run_finishes(
    alice: Caller, settings: Any, db: Any, s3: Any
) -> None:
    _seed_media(alice, settings, s3, outputs=4)
    assert alice.http.delete("/users", headers=alice.bearer).status_code == 200
    real = s3_media_deleter(s3, settings.input_bucket, settings.output_bucket)
    calls: list[int] = []

    def flaky(user_id: str, limit: int) -> tuple[int, bool]:
        calls.append(limit)
        if len(calls) == 1:
            real(user_id, 2)  # two objects go, then the connection drops
            raise ConnectionError("connection reset by peer")
        return real(user_id, limit)

    failed = _sweep(db, settings, flaky)

    assert failed.errors == 1 and len(_media(s3, settings, alice.user["id"])) == 3
    with db.connection() as conn:
        [row] = deletions_repo.pending(conn)
    assert row["attempts"] == 1 and "connection reset" in row["last_error"]
    assert _sweep(db, settings, flaky).errors == 0 and len(calls) == 1  # backing off: not due yet
    _age_request(db, CONFIG.worker_timeout_seconds + CONFIG.running_grace_seconds + 1)

    retried = _sweep(db, settings, flaky)

    assert retried.errors == 0 and retried.media_deletions_finished == [alice.user["id"]]
    assert _media(s3, settings, alice.user["id"]) == []
    with db.connection() as conn:
        assert deletions_repo.pending(conn) == []


def test_given_more_objects_than_a_run_deletes_when_swept_then_the_next_run_continues(
    alice: Caller, settings: Any, db: Any, s3: Any
) -> None:
    _seed_media(alice, settings, s3, outputs=5)
    assert alice.http.delete("/users", headers=alice.bearer).status_code == 200
    _age_request(db, CONFIG.worker_timeout_seconds + CONFIG.running_grace_seconds + 1)
    real = s3_media_deleter(s3, settings.input_bucket, settings.output_bucket)

    first = _sweep(db, settings, lambda user_id, limit: real(user_id, 4))

    assert first.media_objects_deleted == 4 and first.media_deletions_finished == []
    second = _sweep(db, settings, lambda user_id, limit: real(user_id, 4))
    assert second.media_objects_deleted == 2 and second.media_deletions_finished == [alice.user["id"]]
    assert _media(s3, settings, alice.user["id"]) == []
