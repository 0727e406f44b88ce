"""Upload hardening on the real app (PostgreSQL, SeaweedFS, moto SQS): names keep their
extension in any script, bidi controls are refused, an upload a job still needs cannot be
aborted, and an object larger than allowed is deleted wherever it is found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from runtime.shared.aws import client as aws_client
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.status import JobStatus
from runtime.shared.storage import head_size
from tests.api.conftest import Caller, upload_file
from tests.media import make_image

OPERATIONS = {"ROTATE": "90"}


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return Path(make_image(tmp_path_factory.mktemp("safety") / "a.jpg", 32, 24)).read_bytes()


def _error(response: Any) -> dict[str, Any]:
    return response.json_body["error"]


def _upload(caller: Caller, name: str, **extra: Any) -> Any:
    return caller.call(
        "POST", "/media/upload", {"file_name": name, "file_type": "IMAGE", "mime_type": "image/jpeg", **extra}
    )


def test_given_a_name_in_another_script_when_uploading_then_the_key_keeps_its_extension(alice: Caller) -> None:
    body = _upload(alice, "日本.jpg").json_body
    assert body["key"].endswith("/file.jpg") and body["file_name"] == "日本.jpg"


@pytest.mark.parametrize("control", ["\u202e", "\u202a", "\u202d", "\u2066", "\u2069"])
def test_given_a_bidi_control_in_the_name_when_uploading_then_422_and_nothing_is_stored(
    alice: Caller, db: Any, control: str
) -> None:
    response = _upload(alice, f"invoice{control}gpj.exe")
    assert response.status_code == 422 and _error(response)["code"] == "INVALID_FILE_NAME"
    assert _error(response)["details"]["characters"] == [f"U+{ord(control):04X}"]
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM uploads").fetchone()["n"] == 0


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING])
def test_given_a_job_not_finished_when_its_upload_is_aborted_then_409_and_the_input_stays(
    alice: Caller, settings: Any, db: Any, jpeg: bytes, status: JobStatus
) -> None:
    upload = upload_file(alice, jpeg)
    job = alice.call(
        "POST", "/media/process", {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": OPERATIONS}
    )
    assert job.status_code == 201
    job_id = job.json_body["job_id"]
    with db.connection() as conn:
        if status is not JobStatus.QUEUED:
            assert jobs_repo.transition(conn, job_id, JobStatus.DISPATCHED) is not None
        if status is JobStatus.RUNNING:
            assert jobs_repo.transition(conn, job_id, JobStatus.RUNNING) is not None
    refused = alice.call("POST", f"/media/upload/{upload['upload_id']}/abort")
    assert refused.status_code == 409 and _error(refused)["code"] == "UPLOAD_IN_USE"
    assert _error(refused)["details"]["job_ids"] == [job_id]
    s3 = aws_client("s3", settings)
    assert head_size(s3, settings.input_bucket, upload["key"]) == len(jpeg)
    # once the job is finished the upload can go
    assert alice.call("POST", f"/media/jobs/{job_id}/cancel").status_code == 200
    assert alice.call("POST", f"/media/upload/{upload['upload_id']}/abort").status_code == 200
    assert head_size(s3, settings.input_bucket, upload["key"]) is None
