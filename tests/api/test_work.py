"""POST /media/process estimates the job's work from a real probe and refuses (422
WORK_TOO_LARGE) what no allowed worker can finish; the status carries where the job ran,
its compute seconds and its estimated cost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runtime.api.chalicelib import deps as api_deps
from runtime.shared import prices
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.settings import Limits
from runtime.shared.status import JobStatus
from runtime.worker.lambda_handler import probe_object
from tests.api.conftest import Caller, upload_file
from tests.media import make_video

pytestmark = pytest.mark.integration

LADDER = [{"op": "transcode", "renditions": [1080, 720, 480, 360]}]


@pytest.fixture()
def video(tmp_path: Path) -> bytes:
    return make_video(tmp_path / "clip.mp4", seconds=2.0, width=320, height=180).read_bytes()


def _with(deps: Any, **limits: int) -> Any:
    """The installed deps probing through the worker's own probe (real ffprobe over a presigned URL)."""
    settings = replace(deps.settings, limits=replace(Limits(), **limits))
    installed = replace(deps, settings=settings, prober=lambda key: probe_object(key, settings))
    api_deps.install(installed)
    return installed


def test_given_a_limit_no_size_meets_when_processing_a_ladder_then_422_with_estimate_and_limit_and_no_job(
    alice: Caller, deps: Any, video: bytes
) -> None:
    installed = _with(deps, worker_timeout_seconds=60)
    upload = upload_file(alice, video, "VIDEO", "video/mp4", "clip.mp4")
    response = alice.call(
        "POST", "/media/process", {"job_type": "VIDEO", "upload_id": upload["upload_id"], "operations": LADDER}
    )
    assert response.status_code == 422, response.body
    error = response.json_body["error"]
    assert error["code"] == "WORK_TOO_LARGE"
    details = error["details"]
    assert details["limit_seconds"] == 60 and details["estimated_seconds"] > 0
    assert details["probe"]["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    with installed.db.connection() as conn:
        assert jobs_repo.page_for_user(conn, str(alice.user["id"]), 10) == []


def test_given_a_job_that_fits_when_processed_and_run_then_status_shows_probe_runner_seconds_and_cost(
    alice: Caller, deps: Any, video: bytes
) -> None:
    installed = _with(deps)
    upload = upload_file(alice, video, "VIDEO", "video/mp4", "clip.mp4")
    created = alice.call(
        "POST", "/media/process", {"job_type": "VIDEO", "upload_id": upload["upload_id"], "operations": LADDER}
    )
    assert created.status_code in (200, 201, 202), created.body
    job_id = created.json_body["job_id"]
    with installed.db.connection() as conn:
        row = jobs_repo.get(conn, job_id)
        assert row is not None and (row["probe"]["width"], row["probe"]["height"]) == (320, 180)
        assert row["estimated_cpu_seconds"] > 0
    before = alice.call("GET", f"/media/status/{job_id}").json_body
    assert (before["runner"], before["estimated_cost_usd"]) == (None, None)
    assert before["status"] == "QUEUED", "the seed's fields are still there"

    with installed.db.connection() as conn:
        jobs_repo.transition(conn, job_id, JobStatus.DISPATCHED)
        jobs_repo.set_task_arn(
            conn, job_id, "arn:aws:ecs:us-east-1:1:task/c/t", cpu=2048, memory_mib=4096, price_class="x86"
        )
        jobs_repo.record_compute(conn, job_id, 90.0)
    after = alice.call("GET", f"/media/status/{job_id}").json_body
    assert (after["runner"], after["task_cpu"], after["compute_seconds"]) == ("fargate", 2048, 90.0)
    assert after["estimated_cost_usd"] == pytest.approx(prices.fargate_cost(90, 2048, 4096), abs=1e-6)
