"""The local dispatch loop runs the same sweeper as the scheduled Lambda, at most once per
interval: a job whose message was lost is queued again while the loop runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from runtime.local.dispatch_loop import LocalDispatcher
from runtime.shared import db as dbm
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import JobStatus
from tests.factories import insert_job


def test_given_a_job_whose_message_was_lost_when_the_loop_runs_then_the_sweeper_requeues_and_dispatches_it(
    db: dbm.Database, settings: Any, tmp_path: Path
) -> None:
    local = LocalDispatcher(
        settings,
        concurrency=1,
        log_path=tmp_path / "workers.log",
        sweep_interval_seconds=0.2,
        worker_mode="subprocess",  # the /bin/true stand-in below is a one-shot worker
    )
    local.launcher.command = ("/bin/true",)  # a stand-in worker: the point is the dispatch
    with db.connection() as conn:
        job_id = str(insert_job(conn, "IMAGE", [{"op": "rotate", "angle": 90}])["id"])
        conn.execute("UPDATE jobs SET updated_at = now() - interval '1 hour' WHERE id = %s", (job_id,))
    stopping = threading.Event()
    loop = threading.Thread(target=local.run_until, args=(stopping, 0), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with db.connection() as conn:
                job = jobs_repo.get(conn, job_id)
            assert job is not None
            # claimed (DISPATCHED) first, then the launched worker's id is recorded
            if job["status"] != JobStatus.QUEUED and job["task_arn"] is not None:
                break
            time.sleep(0.1)
    finally:
        stopping.set()
        loop.join(10)
        local.shutdown()

    assert job["dispatch_count"] == 1
    assert job["task_arn"].startswith("local:")


def test_given_a_recent_sweep_when_maybe_sweep_then_it_waits_for_the_interval(
    db: dbm.Database, settings: Any, tmp_path: Path
) -> None:
    local = LocalDispatcher(settings, concurrency=1, log_path=tmp_path / "workers.log", sweep_interval_seconds=60)
    try:
        first = local.maybe_sweep()
        second = local.maybe_sweep()
    finally:
        local.shutdown()

    assert first is not None and first.changed == 0
    assert second is None
