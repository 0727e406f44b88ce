"""Uploads, jobs, downloads and the seed's whole flow, on the real app with PostgreSQL, moto S3
and moto SQS (the presigned URLs are used over HTTP against moto)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
import requests

from runtime.shared.aws import client as aws_client
from runtime.shared.contract import MAX_OPERATIONS
from runtime.shared.messages import parse_message
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.status import JobStatus
from tests.api.conftest import Caller, post_json, upload_file
from tests.media import make_image

SEED_OPERATIONS = {"ROTATE": "180", "WATERMARK": "bruh", "FORCE-RESIZE": "100x400"}


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return Path(make_image(tmp_path_factory.mktemp("api") / "lain.jpg", 64, 48)).read_bytes()


def _error(response: Any) -> dict[str, Any]:
    body = response.json_body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def _messages(settings: Any) -> list[str]:
    sqs = aws_client("sqs", settings)
    out = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [m["Body"] for m in out.get("Messages", [])]


def _finish(db: Any, job_id: str, outputs: list[outputs_repo.Output]) -> None:
    """What the worker does at the end: outputs recorded, job SUCCEEDED (guarded transitions)."""
    with db.connection() as conn:
        assert jobs_repo.transition(conn, job_id, JobStatus.RUNNING) is not None
        outputs_repo.replace(conn, job_id, outputs)
        assert jobs_repo.transition(conn, job_id, JobStatus.SUCCEEDED) is not None


def _process(
    caller: Caller,
    upload_id: str,
    operations: Any = SEED_OPERATIONS,
    job_type: str = "IMAGE",
    headers: dict[str, str] | None = None,
) -> Any:
    return caller.call(
        "POST", "/media/process", {"job_type": job_type, "upload_id": upload_id, "operations": operations}, headers
    )


# --- the seed's flow ------------------------------------------------------------------------


def test_given_the_seeds_flow_when_replayed_request_for_request_then_every_step_succeeds(
    client: Any, settings: Any, db: Any, jpeg: bytes
) -> None:
    # 1. create user, 2. login (cookie), 3. API key with the cookie only — exactly the seed's requests.
    user = post_json(
        client,
        "/users/",
        {"name": "Lain", "username": "lain_iwakura", "email": "lain@wired.example", "password": "$present-day"},
    )
    assert user.status_code == 201
    login = post_json(client, "/sessions/", {"email": "lain@wired.example", "password": "$present-day"})
    assert login.status_code == 201
    cookie = login.headers["Set-Cookie"].split(";", 1)[0]
    key = client.post("/apikeys", headers={"Cookie": cookie})
    assert key.status_code == 200
    assert {"id", "enabled", "key", "user_id", "created_at", "updated_at"} <= set(key.json_body)
    api_key = {"x-api-key": key.json_body["key"]}
    # 4. upload: the seed's exact body (note its non-standard mime type).
    upload = post_json(
        client, "/media/upload", {"file_name": "lain.jpg", "file_type": "IMAGE", "mime_type": "image/jpg"}, api_key
    )
    assert upload.status_code == 201
    assert {"upload_id", "presigned_url"} <= set(upload.json_body)
    # No size declared, so the URL is a POST policy that S3 bounds (issue 14), signed as what
    # browsers and Postman send for a .jpg, not the seed's non-standard alias.
    assert upload.json_body["method"] == "POST"
    assert upload.json_body["fields"]["Content-Type"] == "image/jpeg"
    # 5. send the file to S3 (SeaweedFS) as the response says: the form's fields, then the file.
    sent = requests.post(
        upload.json_body["presigned_url"], data=upload.json_body["fields"], files={"file": jpeg}, timeout=30
    )
    assert sent.status_code in (200, 204), sent.text
    # 6. process with the seed's operations object.
    job = post_json(
        client,
        "/media/process",
        {"job_type": "IMAGE", "upload_id": upload.json_body["upload_id"], "operations": SEED_OPERATIONS},
        api_key,
    )
    assert job.status_code == 201, job.body
    job_id = job.json_body["processing_job_id"]
    assert job.json_body["media_id"] == job_id and job.json_body["status"] == "QUEUED"
    assert [op["op"] for op in job.json_body["operations"]] == ["rotate", "watermark", "force-resize"]
    assert [parse_message(b).job_id for b in _messages(settings)] == [job_id]
    # 7. status
    status = client.get(f"/media/status/{job_id}", headers=api_key)
    assert status.status_code == 200 and status.json_body["status"] == "QUEUED"
    not_yet = client.get(f"/media/download/{job_id}", headers=api_key)
    assert not_yet.status_code == 409 and _error(not_yet)["code"] == "JOB_NOT_FINISHED"
    # 8. the worker finishes; download hands out a working presigned URL.
    user_id = user.json_body["id"]
    out_key = f"output/{user_id}/{job_id}/lain.jpg"
    aws_client("s3", settings).put_object(Bucket=settings.output_bucket, Key=out_key, Body=b"processed")
    _finish(db, job_id, [outputs_repo.Output(out_key, "image", 9, "image/jpeg", 100, 400)])
    download = client.get(f"/media/download/{job_id}", headers=api_key)
    assert download.status_code == 200
    [output] = download.json_body["outputs"]
    assert output["role"] == "image" and output["name"] == "lain.jpg" and output["width"] == 100
    assert download.json_body["result_url"] == output["url"]
    assert requests.get(output["url"], timeout=30).content == b"processed"


def test_given_the_seed_body_when_uploading_then_the_post_policy_pins_key_type_and_expiry(alice: Caller) -> None:
    response = alice.call(
        "POST", "/media/upload", {"file_name": "../../etc/passwd", "file_type": "IMAGE", "mime_type": "image/png"}
    )
    assert response.status_code == 201
    body = response.json_body
    fields = body["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert fields["key"] == body["key"] and body["key"].endswith(f"input/{alice.user['id']}/{body['upload_id']}/passwd")
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600


def test_given_a_declared_size_when_uploading_then_length_is_signed_and_the_post_policy_bounds_it(
    alice: Caller,
) -> None:
    response = alice.call(
        "POST",
        "/media/upload",
        {"file_name": "a.mp4", "file_type": "VIDEO", "mime_type": "video/mp4", "size_bytes": 12345},
    )
    body = response.json_body
    signed = parse_qs(urlparse(body["presigned_url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type"} <= set(signed)
    assert body["headers"] == {"Content-Type": "video/mp4", "Content-Length": "12345"}
    policy = json.loads(base64.b64decode(body["presigned_post"]["fields"]["policy"]))
    assert ["content-length-range", 1, 12345] in policy["conditions"]
    assert {"Content-Type": "video/mp4"} in policy["conditions"]


def test_given_no_size_when_uploading_then_the_post_policy_caps_at_the_input_limit(
    alice: Caller, settings: Any
) -> None:
    body = alice.call(
        "POST", "/media/upload", {"file_name": "a.png", "file_type": "IMAGE", "mime_type": "image/png"}
    ).json_body
    policy = json.loads(base64.b64decode(body["presigned_post"]["fields"]["policy"]))
    assert ["content-length-range", 1, settings.limits.max_input_bytes] in policy["conditions"]


def test_given_bad_upload_requests_when_posting_then_clear_4xx_errors(alice: Caller, settings: Any) -> None:
    wrong_mime = alice.call(
        "POST", "/media/upload", {"file_name": "a.jpg", "file_type": "VIDEO", "mime_type": "image/jpeg"}
    )
    assert wrong_mime.status_code == 422 and _error(wrong_mime)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "video/mp4" in _error(wrong_mime)["details"]["allowed"]
    too_big = alice.call(
        "POST",
        "/media/upload",
        {
            "file_name": "a.mp4",
            "file_type": "VIDEO",
            "mime_type": "video/mp4",
            "size_bytes": settings.limits.max_input_bytes + 1,
        },
    )
    assert too_big.status_code == 413 and _error(too_big)["code"] == "FILE_TOO_LARGE"
    unknown = alice.call(
        "POST",
        "/media/upload",
        {"file_name": "a.jpg", "file_type": "IMAGE", "mime_type": "image/jpeg", "bucket": "elsewhere"},
    )
    assert unknown.status_code == 400 and _error(unknown)["details"]["problems"][0]["unknown"] == ["bucket"]


def test_given_a_multipart_upload_when_parts_are_put_and_completed_then_it_can_be_processed(
    alice: Caller, settings: Any, jpeg: bytes
) -> None:
    created = alice.call(
        "POST",
        "/media/upload",
        {
            "file_name": "big.jpg",
            "file_type": "IMAGE",
            "mime_type": "image/jpeg",
            "size_bytes": len(jpeg),
            "multipart": True,
        },
    )
    assert created.status_code == 201
    body = created.json_body
    assert body["presigned_url"] is None
    [part] = body["multipart"]["parts"]
    signed = parse_qs(urlparse(part["url"]).query)
    assert signed["partNumber"] == ["1"] and "content-length" in signed["X-Amz-SignedHeaders"][0]
    early = _process(alice, body["upload_id"])
    assert early.status_code == 409 and _error(early)["code"] == "UPLOAD_INCOMPLETE"
    put = requests.put(part["url"], data=jpeg, timeout=30)
    assert put.status_code == 200
    bad = alice.call(
        "POST", f"/media/upload/{body['upload_id']}/complete", {"parts": [{"part_number": 1, "etag": '"0000"'}]}
    )
    assert bad.status_code == 400 and _error(bad)["code"] == "INVALID_PARTS"
    done = alice.call(
        "POST",
        f"/media/upload/{body['upload_id']}/complete",
        {"parts": [{"part_number": 1, "etag": put.headers["ETag"]}]},
    )
    assert done.status_code == 200 and done.json_body["status"] == "UPLOADED"
    assert done.json_body["size_bytes"] == len(jpeg)
    assert _process(alice, body["upload_id"]).status_code == 201


def test_given_s3_completed_the_upload_but_the_api_timed_out_when_completion_is_retried_then_it_is_uploaded(
    alice: Caller, settings: Any, db: Any, jpeg: bytes
) -> None:
    """API Gateway answers 504 after 29 s while S3 finishes CompleteMultipartUpload; the client's
    retry then gets NoSuchUpload from S3, which must count as done when the object is there."""
    body = alice.call(
        "POST",
        "/media/upload",
        {
            "file_name": "big.jpg",
            "file_type": "IMAGE",
            "mime_type": "image/jpeg",
            "size_bytes": len(jpeg),
            "multipart": True,
        },
    ).json_body
    [part] = body["multipart"]["parts"]
    etag = requests.put(part["url"], data=jpeg, timeout=30).headers["ETag"]
    with db.connection() as conn:
        row = conn.execute(
            "SELECT object_key, multipart_upload_id FROM uploads WHERE id = %s", (body["upload_id"],)
        ).fetchone()
    # The first request's S3 call, whose answer never reached the client:
    aws_client("s3", settings).complete_multipart_upload(
        Bucket=settings.input_bucket,
        Key=row["object_key"],
        UploadId=row["multipart_upload_id"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )

    retried = alice.call(
        "POST", f"/media/upload/{body['upload_id']}/complete", {"parts": [{"part_number": 1, "etag": etag}]}
    )

    assert retried.status_code == 200, retried.json_body
    assert (retried.json_body["status"], retried.json_body["size_bytes"]) == ("UPLOADED", len(jpeg))


@pytest.mark.parametrize(("head_size", "done"), [(None, False), (99, False), (100, True)])
def test_given_no_such_upload_when_the_object_is_checked_then_only_one_of_the_declared_size_counts_as_done(
    head_size: int | None, done: bool
) -> None:
    """moto answers a completion of an unknown upload with 500, so S3's HEAD answers are stubbed."""
    from types import SimpleNamespace

    import boto3
    from botocore.stub import Stubber

    from runtime.api.chalicelib.uploads import _completed_before

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stubber = Stubber(s3)
    if head_size is None:
        stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    else:
        stubber.add_response("head_object", {"ContentLength": head_size})
    deps = SimpleNamespace(s3=s3, settings=SimpleNamespace(input_bucket="in"))
    with stubber:
        assert _completed_before(deps, {"object_key": "input/u/x/a.jpg", "declared_bytes": 100}) is done  # type: ignore[arg-type]


def test_given_a_size_over_the_threshold_when_uploading_then_multipart_is_chosen_with_bounded_parts(
    alice: Caller, settings: Any
) -> None:
    size = 300 * 1024**2
    body = alice.call(
        "POST",
        "/media/upload",
        {"file_name": "long.mp4", "file_type": "VIDEO", "mime_type": "video/mp4", "size_bytes": size},
    ).json_body
    parts = body["multipart"]["parts"]
    assert sum(p["size_bytes"] for p in parts) == size
    assert all(p["size_bytes"] >= 5 * 1024**2 for p in parts[:-1])
    aborted = alice.call("POST", f"/media/upload/{body['upload_id']}/abort")
    assert aborted.status_code == 200 and aborted.json_body["status"] == "ABORTED"
    s3 = aws_client("s3", settings)
    assert s3.list_multipart_uploads(Bucket=settings.input_bucket).get("Uploads", []) == []
    again = alice.call("POST", f"/media/upload/{body['upload_id']}/complete", {})
    assert again.status_code == 409 and _error(again)["code"] == "UPLOAD_ABORTED"


# --- process --------------------------------------------------------------------------------


def test_given_no_object_in_s3_when_processing_then_409_upload_incomplete_and_no_job(
    alice: Caller, settings: Any, database_url: str
) -> None:
    body = alice.call(
        "POST", "/media/upload", {"file_name": "a.jpg", "file_type": "IMAGE", "mime_type": "image/jpeg"}
    ).json_body
    response = _process(alice, body["upload_id"])
    assert response.status_code == 409 and _error(response)["code"] == "UPLOAD_INCOMPLETE"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    assert _messages(settings) == []


def test_given_an_object_over_the_limit_when_processing_then_413(alice: Caller, deps: Any, jpeg: bytes) -> None:
    from dataclasses import replace

    upload = upload_file(alice, jpeg)
    deps.settings = replace(deps.settings, limits=replace(deps.settings.limits, max_input_bytes=len(jpeg) - 1))
    response = _process(alice, upload["upload_id"])
    assert response.status_code == 413 and _error(response)["details"]["size_bytes"] == len(jpeg)


def test_given_invalid_operations_when_processing_then_422_naming_each_problem(alice: Caller, jpeg: bytes) -> None:
    upload = upload_file(alice, jpeg)
    response = _process(alice, upload["upload_id"], {"ROTATE": "sideways", "EXPLODE": "1"})
    error = _error(response)
    assert response.status_code == 422 and error["code"] == "INVALID_JOB"
    assert {p.get("operation") for p in error["details"]["problems"]} >= {"rotate", "EXPLODE"}
    video_job = _process(alice, upload["upload_id"], [{"op": "transcode"}], job_type="VIDEO")
    assert video_job.status_code == 422 and "IMAGE file" in _error(video_job)["message"]


@pytest.mark.parametrize("count", [MAX_OPERATIONS + 1, 60])
def test_given_more_operations_than_the_contract_allows_when_processing_then_422_naming_the_one_limit(
    alice: Caller, jpeg: bytes, count: int
) -> None:
    upload = upload_file(alice, jpeg)
    response = _process(alice, upload["upload_id"], [{"op": "rotate", "angle": 90}] * count)
    error = _error(response)
    assert response.status_code == 422 and error["code"] == "INVALID_JOB"
    assert error["details"]["problems"] == [
        {
            "message": f"at most {MAX_OPERATIONS} operations are allowed, got {count}",
            "field": "operations",
            "received": count,
        }
    ]
    at_limit = _process(alice, upload["upload_id"], [{"op": "rotate", "angle": 90}] * MAX_OPERATIONS)
    assert at_limit.status_code == 201 and len(at_limit.json_body["operations"]) == MAX_OPERATIONS


def test_given_an_idempotency_key_when_the_post_is_retried_then_the_same_job_comes_back(
    alice: Caller, settings: Any, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    key = {"Idempotency-Key": "retry-123"}
    first = _process(alice, upload["upload_id"], headers=key)
    second = _process(alice, upload["upload_id"], headers=key)
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json_body["job_id"] == second.json_body["job_id"]
    assert len(_messages(settings)) == 1
    different = _process(alice, upload["upload_id"], {"ROTATE": "90"}, headers=key)
    assert different.status_code == 422 and _error(different)["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_given_the_queue_is_gone_when_processing_then_503_and_the_job_is_failed_not_left_queued(
    alice: Caller, settings: Any, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    aws_client("sqs", settings).delete_queue(QueueUrl=settings.queue_url)
    response = _process(alice, upload["upload_id"], headers={"Idempotency-Key": "k1"})
    error = _error(response)
    assert response.status_code == 503 and error["code"] == "QUEUE_UNAVAILABLE"
    status = alice.call("GET", f"/media/status/{error['details']['job_id']}").json_body
    assert status["status"] == "FAILED" and status["error"]["code"] == "DISPATCH_FAILED"
    # The key was released: a retry (once the queue is back) makes a new job instead of replaying the failure.
    aws_client("sqs", settings).create_queue(QueueName=settings.queue_url.rsplit("/", 1)[-1])
    retry = _process(alice, upload["upload_id"], headers={"Idempotency-Key": "k1"})
    assert retry.status_code == 201 and retry.json_body["job_id"] != error["details"]["job_id"]


# --- jobs: list, status, cancel, cross-user ---------------------------------------------------------


def test_given_many_jobs_when_listing_then_keyset_pages_cover_all_once_and_filter_by_status(
    alice: Caller, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    ids = [_process(alice, upload["upload_id"], {"ROTATE": str(a)}).json_body["job_id"] for a in (90, 180, 270)]
    alice.call("POST", f"/media/jobs/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        page = alice.call("GET", "/media/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")).json_body
        seen += [j["job_id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled = alice.call("GET", "/media/jobs?status=CANCELLED").json_body["items"]
    assert [j["job_id"] for j in cancelled] == [ids[0]]
    bad = alice.call("GET", "/media/jobs?limit=1000")
    assert bad.status_code == 400 and _error(bad)["code"] == "INVALID_QUERY"
    forged = alice.call("GET", "/media/jobs?cursor=bm90LWEtY3Vyc29y")
    assert forged.status_code == 400 and _error(forged)["code"] == "INVALID_CURSOR"


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("limit=0", "INVALID_QUERY", "limit"),
        ("limit=abc", "INVALID_QUERY", "limit"),
        ("limit=%C2%B2", "INVALID_QUERY", "limit"),  # a Unicode digit: no int() of it
        ("limit=-1", "INVALID_QUERY", "limit"),
        ("status=LOST", "INVALID_QUERY", "status"),
        ("cursor=" + "A" * 201, "INVALID_CURSOR", "cursor"),
        ("colour=red", "INVALID_QUERY", None),
    ],
)
def test_given_a_bad_query_parameter_when_listing_jobs_then_400_naming_it(
    alice: Caller, query: str, code: str, field: str | None
) -> None:
    response = alice.call("GET", f"/media/jobs?{query}")

    error = _error(response)
    assert (response.status_code, error["code"], error["details"].get("field")) == (400, code, field)
    if field == "status":
        assert error["details"]["allowed"] == [s.value for s in JobStatus]
    if field is None:
        assert error["details"]["allowed"] == ["limit", "status", "cursor"]


def test_given_a_lower_case_status_when_listing_jobs_then_it_filters_like_the_upper_case_one(
    alice: Caller, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    job_id = _process(alice, upload["upload_id"]).json_body["job_id"]

    queued = alice.call("GET", "/media/jobs?status=queued&limit=5")

    assert queued.status_code == 200 and [j["job_id"] for j in queued.json_body["items"]] == [job_id]
    assert alice.call("GET", "/media/jobs?status=Running").json_body["items"] == []


@pytest.mark.parametrize("key", ["k" * 256, "two words", "tab\there"])
def test_given_a_malformed_idempotency_key_when_processing_then_400_before_the_body_is_read(
    alice: Caller, key: str
) -> None:
    response = alice.call("POST", "/media/process", {"not": "a job"}, {"Idempotency-Key": key})

    error = _error(response)
    assert (response.status_code, error["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert error["details"]["field"] == "Idempotency-Key"


def test_given_a_running_job_when_cancelled_then_cancelled_and_a_second_cancel_is_409(
    alice: Caller, db: Any, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    job_id = _process(alice, upload["upload_id"]).json_body["job_id"]
    with db.connection() as conn:
        jobs_repo.transition(conn, job_id, JobStatus.RUNNING)
    response = alice.call("POST", f"/media/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json_body["status"] == "CANCELLED"
    with db.connection() as conn:
        assert jobs_repo.set_progress(conn, job_id, 50) == "CANCELLED"  # what the worker sees
    again = alice.call("POST", f"/media/jobs/{job_id}/cancel")
    assert again.status_code == 409 and _error(again)["details"]["status"] == "CANCELLED"


def test_given_a_second_user_when_touching_the_first_users_things_then_404_and_nothing_leaks(
    alice: Caller, bob: Caller, db: Any, settings: Any, jpeg: bytes
) -> None:
    upload = upload_file(alice, jpeg)
    job_id = _process(alice, upload["upload_id"]).json_body["job_id"]
    key = f"output/{alice.user['id']}/{job_id}/x.jpg"
    aws_client("s3", settings).put_object(Bucket=settings.output_bucket, Key=key, Body=b"x")
    _finish(db, job_id, [outputs_repo.Output(key, "image", 1, "image/jpeg")])
    for method, path in [
        ("GET", f"/media/status/{job_id}"),
        ("GET", f"/media/download/{job_id}"),
        ("POST", f"/media/jobs/{job_id}/cancel"),
        ("POST", f"/media/upload/{upload['upload_id']}/complete"),
        ("POST", f"/media/upload/{upload['upload_id']}/abort"),
        ("GET", f"/media/playback/{job_id}/master.m3u8"),
    ]:
        response = bob.call(method, path)
        assert response.status_code == 404, (method, path, response.body)
        assert alice.user["id"] not in json.dumps(response.json_body)
    stolen = _process(bob, upload["upload_id"])
    assert stolen.status_code == 404 and _error(stolen)["code"] == "UPLOAD_NOT_FOUND"
    assert bob.call("GET", "/media/jobs").json_body["items"] == []
    assert alice.call("GET", f"/media/status/{job_id}").status_code == 200


def test_given_malformed_ids_when_requesting_then_400_invalid_id(alice: Caller) -> None:
    response = alice.call("GET", "/media/status/not-a-uuid")
    assert response.status_code == 400 and _error(response)["code"] == "INVALID_ID"
