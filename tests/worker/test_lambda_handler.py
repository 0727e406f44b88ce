"""The worker Lambda's handler, called as the Lambda runtime calls it, in one warm process:
jobs run through the same runner as the container, one after another; a probe event probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.shared.status import JobStatus
from runtime.worker import lambda_handler

pytestmark = pytest.mark.integration


def test_given_warm_function_when_two_image_jobs_on_the_same_file_are_invoked_then_both_succeed(
    warm: None, submit: Any, job_row: Any, outputs: Any, photo: Path
) -> None:
    operations = [{"op": "rotate", "angle": 90}, {"op": "resize", "width": 200}]
    first, second = submit(photo, "IMAGE", operations), submit(photo, "IMAGE", operations)
    results = [lambda_handler.handler({"job_id": job_id}, None) for job_id in (first, second)]
    assert [r["status"] for r in results] == [JobStatus.SUCCEEDED.value] * 2
    for job_id in (first, second):
        row = job_row(job_id)
        assert row["status"] == "SUCCEEDED" and row["compute_seconds"] is not None and row["compute_seconds"] > 0
        [out] = outputs(job_id)
        assert out["width"] == 200


def test_given_redelivered_event_when_job_already_finished_then_nothing_runs_again(
    warm: None, submit: Any, job_row: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "rotate", "angle": 180}])
    assert lambda_handler.handler({"job_id": job_id})["status"] == "SUCCEEDED"
    finished = job_row(job_id)["finished_at"]
    assert lambda_handler.handler({"job_id": job_id})["status"] == "SUCCEEDED"
    assert job_row(job_id)["finished_at"] == finished


def test_given_bad_events_when_invoked_then_answered_without_raising(warm: None) -> None:
    assert lambda_handler.handler({"job_id": "not-a-uuid"})["status"] == "INVALID_EVENT"
    assert lambda_handler.handler({"job_id": "00000000-0000-4000-8000-000000000000"})["status"] == "NOT_FOUND"


def test_given_probe_event_when_invoked_then_duration_size_and_rate_of_the_stored_input(
    warm: None, submit: Any, job_row: Any, db: Any, clip: Path
) -> None:
    job_id = submit(clip, "VIDEO", [{"op": "poster"}])
    with db.connection() as conn:
        key = conn.execute(
            "SELECT u.object_key FROM uploads u JOIN jobs j ON j.upload_id = u.id WHERE j.id = %s", (job_id,)
        ).fetchone()["object_key"]
    probe = lambda_handler.handler({"probe_key": key})["probe"]
    assert probe["width"] > 0 and probe["height"] > 0 and probe["duration_seconds"] > 0 and probe["fps"] > 0
    assert lambda_handler.handler({"probe_key": key + ".missing"}) == {"probe": None}


WARM_LOOP = """
import gc, sys, tempfile
from pathlib import Path
import pyvips
from runtime.shared.contract import parse_job
from runtime.shared.settings import Limits
from runtime.worker.image import process_image
folder = Path(tempfile.mkdtemp())
source = folder / "in.png"
pyvips.Image.xyz(320, 240)[0].cast("uchar").pngsave(str(source))
spec = parse_job("IMAGE", [{"op": "rotate", "angle": 90}])
for index in range(60):
    process_image(source, folder / str(index), spec, Limits(), lambda fraction: None)
    gc.collect()
print("ok")
"""


def test_given_one_warm_process_when_the_same_image_job_repeats_then_libvips_never_crashes(tmp_path: Path) -> None:
    """A cached libvips operation must not carry a finished job's progress callback into the next."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", WARM_LOOP], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-1500:]
