"""``python -m runtime.worker``: the container entrypoint, its environment and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from runtime.shared.settings import AWS_CALL_LOG_ENV

ROOT = Path(__file__).resolve().parents[2]


def _env(settings: Any, **extra: str) -> dict[str, str]:
    # The worker gets only the settings below, and the AWS call recording switch (IAM conformance).
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSCODEX_") or k == AWS_CALL_LOG_ENV}
    env.update(
        {
            "TRANSCODEX_DATABASE_URL": settings.database_url,
            "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
            "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
            "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
            "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3,
            **extra,
        }
    )
    return env


def _worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.worker", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_given_job_id_in_environment_when_worker_runs_then_exit_0_and_json_logs_carry_job_id(
    settings: Any, submit: Any, job_row: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 50}])
    proc = _worker(_env(settings, JOB_ID=job_id))
    assert proc.returncode == 0, proc.stderr
    assert job_row(job_id)["status"] == "SUCCEEDED"
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert lines and all(line.get("job_id") == job_id for line in lines if line["logger"] == "transcodex.worker")
    # re-delivery of a finished job: nothing to do, still success
    assert _worker(_env(settings), "--job-id", job_id).returncode == 0


def test_given_bad_input_when_worker_runs_then_exit_1_and_reason_recorded(
    settings: Any, submit: Any, job_row: Any
) -> None:
    job_id = submit(b"", "IMAGE", [{"op": "resize", "width": 50}])
    assert _worker(_env(settings), "--job-id", job_id).returncode == 1
    assert job_row(job_id)["error_code"] == "INPUT_UNREADABLE"


def test_given_missing_configuration_when_worker_runs_then_exit_2(settings: Any) -> None:
    env = _env(settings)
    del env["TRANSCODEX_OUTPUT_BUCKET"]
    proc = _worker(env, "--job-id", str(uuid.uuid4()))
    assert proc.returncode == 2 and "TRANSCODEX_OUTPUT_BUCKET" in proc.stderr


def test_given_unknown_or_malformed_job_id_when_worker_runs_then_exit_2(settings: Any) -> None:
    assert _worker(_env(settings), "--job-id", str(uuid.uuid4())).returncode == 2
    assert _worker(_env(settings), "--job-id", "not-a-uuid").returncode == 2


def test_given_cancelled_job_when_worker_runs_then_exit_3(settings: Any, db: Any, submit: Any, photo: Path) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "resize", "width": 50}])
    with db.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'CANCELLED' WHERE id = %s", (job_id,))
    assert _worker(_env(settings), "--job-id", job_id).returncode == 3


def test_given_sigterm_while_transcoding_when_worker_stops_then_failed_with_reason_and_exit_1(
    settings: Any, submit: Any, job_row: Any, tmp_path: Path
) -> None:
    import signal
    import time

    from tests.media import make_video

    source = make_video(tmp_path / "long.mp4", 30, 640, 360)
    job_id = submit(
        source, "VIDEO", [{"op": "transcode", "renditions": [360]}, {"op": "transcode-resolution", "height": 360}]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.worker", "--job-id", job_id],
        cwd=ROOT,
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while job_row(job_id)["progress"] < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    row = job_row(job_id)
    assert row["status"] == "FAILED" and row["error_code"] == "INTERNAL_ERROR" and "stopped" in row["error_message"]
