"""Migrations and guarded transitions against a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from runtime.shared import db as dbm
from runtime.shared.contract import parse_job
from runtime.shared.migrate import MigrationError, apply_migrations, content_hash, discover
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.status import JobStatus
from tests.factories import insert_job

T = TypeVar("T")


def make_job(database: dbm.Database, **kw: object) -> dict:
    with database.connection() as conn:
        job = insert_job(conn, **kw)
    assert job["status"] == "QUEUED"
    return job


def test_given_empty_database_when_migrated_twice_then_second_run_is_a_noop(postgres_server: object) -> None:
    url = postgres_server.create_database(f"m_{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
    first = apply_migrations(url)
    assert first == [m.version for m in discover()]
    assert apply_migrations(url) == []
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"users", "sessions", "api_keys", "uploads", "jobs", "job_outputs", "schema_migrations"} <= tables


def test_given_two_processes_when_migrating_at_once_then_each_migration_applies_once(postgres_server: object) -> None:
    url = postgres_server.create_database(f"m_{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(apply_migrations(url))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 0, len(discover())]


def test_given_an_applied_migration_edited_when_migrating_then_refused(postgres_server: object, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"m_{uuid.uuid4().hex[:8]}")  # type: ignore[attr-defined]
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    assert apply_migrations(url, tmp_path) == ["0001_a"]
    before = content_hash(tmp_path)
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
    assert content_hash(tmp_path) != before
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(url, tmp_path)


def _race(racers: int, attempt: Callable[[threading.Barrier], T]) -> list[T]:
    """Run ``attempt`` in ``racers`` threads; each waits on the shared barrier where the racers
    line up (connected, about to write). Returns every result."""
    barrier = threading.Barrier(racers)
    results: list[T] = []

    def run() -> None:
        results.append(attempt(barrier))

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_given_queued_job_when_eight_claimers_race_then_exactly_one_wins(db: dbm.Database) -> None:
    job = make_job(db)

    def claim(barrier: threading.Barrier) -> object:
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            barrier.wait()
            return conn.execute(
                "UPDATE jobs SET status = 'DISPATCHED' WHERE id = %s AND status = ANY(%s) RETURNING id",
                (job["id"], ["QUEUED"]),
            ).fetchone()

    assert len([row for row in _race(8, claim) if row]) == 1


def test_given_queued_job_when_transition_helper_races_then_exactly_one_wins(db: dbm.Database) -> None:
    job = make_job(db)
    pool = dbm.Database(db.conninfo, max_size=6)  # one connection per racing thread

    def claim(barrier: threading.Barrier) -> dict | None:
        with pool.connection() as conn:
            barrier.wait()
            return jobs_repo.transition(conn, job["id"], JobStatus.DISPATCHED)

    wins = [row for row in _race(6, claim) if row]
    pool.close()
    assert len(wins) == 1
    assert wins[0]["status"] == "DISPATCHED" and wins[0]["dispatch_count"] == 1


def test_given_job_lifecycle_when_transitions_applied_then_guards_hold(db: dbm.Database) -> None:
    job = make_job(db)
    with db.connection() as conn:
        assert jobs_repo.transition(conn, job["id"], JobStatus.SUCCEEDED) is None  # not RUNNING yet
        claimed = jobs_repo.transition(conn, job["id"], JobStatus.DISPATCHED)
        assert claimed and claimed["dispatched_at"] is not None
        assert jobs_repo.set_task_arn(conn, job["id"], "arn:task/1")["task_arn"] == "arn:task/1"
        released = jobs_repo.transition(conn, job["id"], JobStatus.QUEUED)
        assert released["task_arn"] is None and released["status"] == "QUEUED"
        jobs_repo.transition(conn, job["id"], JobStatus.DISPATCHED)
        running = jobs_repo.transition(conn, job["id"], JobStatus.RUNNING, from_statuses=[JobStatus.DISPATCHED])
        assert running and running["started_at"] is not None
        assert jobs_repo.set_progress(conn, job["id"], 40) == "RUNNING"
        assert jobs_repo.set_progress(conn, job["id"], 10) == "RUNNING"
        assert jobs_repo.get(conn, job["id"])["progress"] == 40  # never backwards
        done = jobs_repo.transition(conn, job["id"], JobStatus.SUCCEEDED)
        assert done["progress"] == 100 and done["finished_at"] is not None
        assert jobs_repo.transition(conn, job["id"], JobStatus.FAILED, error_code="X") is None
        assert jobs_repo.set_progress(conn, job["id"], 50) == "SUCCEEDED"


def test_given_illegal_narrowing_or_field_when_transition_then_value_error(db: dbm.Database) -> None:
    job = make_job(db)
    with db.connection() as conn:
        with pytest.raises(ValueError, match="not a legal transition"):
            jobs_repo.transition(conn, job["id"], JobStatus.SUCCEEDED, from_statuses=[JobStatus.QUEUED])
        with pytest.raises(ValueError, match="cannot set"):
            jobs_repo.transition(conn, job["id"], JobStatus.FAILED, status="SUCCEEDED")


def test_given_idempotency_key_when_job_created_twice_then_same_job(db: dbm.Database) -> None:
    job = make_job(db, idempotency_key="k1")
    with db.connection() as conn:
        again, created = jobs_repo.create(
            conn,
            user_id=job["user_id"],
            upload_id=job["upload_id"],
            spec=parse_job("IMAGE", {"ROTATE": "90"}),
            idempotency_key="k1",
        )
    assert not created and again["id"] == job["id"]


def test_given_outputs_when_replaced_twice_then_rows_are_not_duplicated(db: dbm.Database) -> None:
    job = make_job(db)
    outputs = [outputs_repo.Output("output/a.jpg", "image", 10, "image/jpeg", 10, 20)]
    with db.connection() as conn:
        outputs_repo.replace(conn, job["id"], outputs)
        outputs_repo.replace(conn, job["id"], [*outputs, outputs_repo.Output("output/b.jpg", "image", 5, "image/jpeg")])
        rows = outputs_repo.for_job(conn, job["id"])
    assert [r["object_key"] for r in rows] == ["output/a.jpg", "output/b.jpg"]
    assert rows[0]["width"] == 10 and rows[0]["height"] == 20
