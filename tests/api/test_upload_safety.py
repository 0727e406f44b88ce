"""Upload hardening on the real app (PostgreSQL, SeaweedFS, moto SQS): names keep their
extension in any script, bidi controls are refused, an upload a job still needs cannot be
aborted, and an object larger than allowed is deleted wherever it is found."""

from __future__ import annotations

import base64
import json
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


# --- sizes bounded by S3 -------------------------------------------------------------------


def test_given_a_declared_size_when_more_bytes_are_put_then_s3_refuses_with_403(alice: Caller, settings: Any) -> None:
    body = _upload(alice, "a.jpg", size_bytes=1000).json_body
    over = requests.put(body["presigned_url"], data=b"x" * 5000, headers=body["headers"], timeout=30)
    under = requests.put(body["presigned_url"], data=b"x" * 999, headers=body["headers"], timeout=30)
    assert (over.status_code, under.status_code) == (403, 403)
    assert head_size(aws_client("s3", settings), settings.input_bucket, body["key"]) is None
    exact = requests.put(body["presigned_url"], data=b"x" * 1000, headers=body["headers"], timeout=30)
    assert exact.status_code == 200


def test_given_the_seed_body_without_a_size_when_uploading_then_only_a_bounded_post_form_is_signed(
    alice: Caller, settings: Any, limited: Any
) -> None:
    # The attack of issue 14: with a 1000-byte limit, the seed's body (no size_bytes) got a PUT
    # URL that S3 could not bound, and a 5000-byte PUT succeeded.
    limited(max_input_bytes=1000)
    body = _upload(alice, "a.jpg").json_body
    assert (body["method"], body["max_bytes"], body["headers"]) == ("POST", 1000, {})
    assert "X-Amz-Signature" not in body["presigned_url"] and body["fields"] == body["presigned_post"]["fields"]
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 1, 1000] in policy["conditions"]
    s3 = aws_client("s3", settings)
    over = requests.post(body["presigned_url"], data=body["fields"], files={"file": b"x" * 5000}, timeout=30)
    assert over.status_code in (400, 403), over.text
    put = requests.put(f"{body['presigned_url'].rstrip('/')}/{body['key']}", data=b"x" * 5000, timeout=30)
    assert put.status_code == 403, put.text
    assert head_size(s3, settings.input_bucket, body["key"]) is None
    within = requests.post(body["presigned_url"], data=body["fields"], files={"file": b"x" * 1000}, timeout=30)
    assert within.status_code in (200, 201, 204), within.text
    assert head_size(s3, settings.input_bucket, body["key"]) == 1000


def test_given_sizes_required_when_the_seed_body_omits_it_then_422(alice: Caller, limited: Any) -> None:
    limited(require_upload_size=True)
    response = _upload(alice, "a.jpg")
    assert response.status_code == 422 and _error(response)["code"] == "SIZE_REQUIRED"
    assert _error(response)["details"]["field"] == "size_bytes"
    assert _upload(alice, "a.jpg", size_bytes=10).status_code == 201


@pytest.mark.parametrize("step", ["complete", "process"])
def test_given_an_object_over_a_lowered_limit_when_completed_or_processed_then_413_and_the_object_is_deleted(
    alice: Caller, settings: Any, limited: Any, step: str
) -> None:
    # No URL we sign admits more than the limit, but a deployment may lower the limit while
    # URLs issued under the old one are still live: what is found over it is deleted.
    body = upload_file(alice, b"x" * 5000)
    limited(max_input_bytes=1000)
    s3 = aws_client("s3", settings)
    assert head_size(s3, settings.input_bucket, body["key"]) == 5000
    if step == "complete":
        response = alice.call("POST", f"/media/upload/{body['upload_id']}/complete", {})
    else:
        response = alice.call(
            "POST", "/media/process", {"job_type": "IMAGE", "upload_id": body["upload_id"], "operations": OPERATIONS}
        )
    assert response.status_code == 413 and _error(response)["code"] == "FILE_TOO_LARGE"
    assert head_size(s3, settings.input_bucket, body["key"]) is None
