"""SeaweedFS, the tests' and the local platform's S3, enforces what S3 enforces: signatures,
the signed Content-Length and Content-Type, POST-policy bounds, per-identity bucket actions,
404 for a missing key seen with list rights, and objects that outlive the server process."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from runtime.local.seaweed import MAX_VOLUMES, SeaweedServer, delete_buckets, provision_buckets

pytestmark = pytest.mark.integration


@pytest.fixture()
def bucket(seaweed: Any) -> str:
    name = f"fidelity-{uuid.uuid4().hex[:10]}"
    provision_buckets(seaweed.client("admin"), [name], cors=None)
    return name


def _volumes_by_collection(server: Any) -> tuple[int, dict[str, int]]:
    """The master's view: the volume slots, and how many volumes each collection (bucket) holds."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.master_port}/dir/status", timeout=10) as response:
        status = json.load(response)
    layouts = status["Topology"].get("Layouts") or []
    return status["Topology"]["Max"], {layout["collection"]: len(layout["writables"]) for layout in layouts}


def test_given_fresh_buckets_when_each_is_written_then_each_holds_one_volume_of_a_fixed_budget(seaweed: Any) -> None:
    s3 = seaweed.client("admin")
    names = [f"volumes-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    provision_buckets(s3, names, cors=None)
    for name in names:
        s3.put_object(Bucket=name, Key="output/u/j/a", Body=b"1")
    slots, volumes = _volumes_by_collection(seaweed)
    delete_buckets(s3, names)
    # the default grows 7 volumes per bucket from slots = free disk / volume size: a session of
    # fresh buckets per test ran out of them (PutObject InternalError)
    assert [volumes.get(name) for name in names] == [1, 1, 1]
    assert slots == MAX_VOLUMES


def test_given_written_buckets_when_deleted_then_their_objects_and_volumes_are_gone(seaweed: Any) -> None:
    s3 = seaweed.client("admin")
    names = [f"gone-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    provision_buckets(s3, names, cors=None)
    for name in names:
        s3.put_object(Bucket=name, Key="input/u/a/x", Body=b"x" * 1000)
    delete_buckets(s3, [*names, f"never-{uuid.uuid4().hex[:10]}"])  # a missing bucket is skipped
    left = [name for name in names if name in {b["Name"] for b in s3.list_buckets()["Buckets"]}]
    _, volumes = _volumes_by_collection(seaweed)
    assert left == [] and [name for name in names if name in volumes] == []


def test_given_a_presigned_put_when_the_body_exceeds_the_signed_length_then_403(seaweed: Any, bucket: str) -> None:
    s3 = seaweed.client("admin")
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": "input/u/a/x.png", "ContentLength": 10, "ContentType": "image/png"},
        ExpiresIn=60,
    )
    over = requests.put(url, data=b"x" * 11, headers={"Content-Type": "image/png"}, timeout=10)
    other_type = requests.put(url, data=b"x" * 10, headers={"Content-Type": "image/jpeg"}, timeout=10)
    exact = requests.put(url, data=b"x" * 10, headers={"Content-Type": "image/png"}, timeout=10)
    assert (over.status_code, other_type.status_code, exact.status_code) == (403, 403, 200)


def test_given_a_tampered_signature_when_used_then_403_and_nothing_is_stored(seaweed: Any, bucket: str) -> None:
    s3 = seaweed.client("admin")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.put(tampered, data=b"abc", timeout=10).status_code == 403
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="k")
    assert err.value.response["Error"]["Code"] == "404"


def test_given_a_post_policy_when_the_file_is_over_its_range_then_400(seaweed: Any, bucket: str) -> None:
    post = seaweed.client("admin").generate_presigned_post(
        bucket, "input/u/p", Conditions=[["content-length-range", 1, 10]], ExpiresIn=60
    )
    over = requests.post(post["url"], data=post["fields"], files={"file": b"y" * 50}, timeout=10)
    within = requests.post(post["url"], data=post["fields"], files={"file": b"y" * 5}, timeout=10)
    assert over.status_code == 400 and within.status_code in (200, 204)


def test_given_component_identities_when_acting_then_only_their_bucket_actions_pass(tmp_path: Path) -> None:
    server = SeaweedServer(data_dir=tmp_path, buckets={"input": "in-bucket", "output": "out-bucket"})
    server.start()
    try:
        provision_buckets(server.client("admin"), ["in-bucket", "out-bucket"], cors=None)
        worker, api = server.client("worker"), server.client("api")
        worker.put_object(Bucket="out-bucket", Key="output/u/j/a", Body=b"1")
        with pytest.raises(ClientError) as refused:
            worker.put_object(Bucket="in-bucket", Key="input/u/a/x", Body=b"1")
        with pytest.raises(ClientError) as missing:
            api.head_object(Bucket="in-bucket", Key="input/u/none")
        with pytest.raises(ClientError) as api_write:
            api.put_object(Bucket="out-bucket", Key="output/u/j/b", Body=b"1")
    finally:
        server.stop(timeout_s=2)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert missing.value.response["Error"]["Code"] == "404"
    assert api_write.value.response["Error"]["Code"] == "AccessDenied"


def test_given_stored_objects_when_the_server_is_killed_and_restarted_then_bytes_are_intact(tmp_path: Path) -> None:
    body = bytes(range(256)) * 4096
    first = SeaweedServer(data_dir=tmp_path)
    first.start()
    provision_buckets(first.client("admin"), ["durable"], cors=None)
    first.client("admin").put_object(Bucket="durable", Key="output/u/j/seg.ts", Body=body)
    first.stop(timeout_s=0)  # SIGKILL at once, as a crash would
    second = SeaweedServer(data_dir=tmp_path)
    second.start()
    try:
        again = second.client("admin").get_object(Bucket="durable", Key="output/u/j/seg.ts")["Body"].read()
    finally:
        second.stop(timeout_s=2)
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(body).hexdigest()


def test_given_sse_headers_when_sent_then_the_server_refuses_so_the_suite_catches_any_runtime_call_sending_them(
    seaweed: Any, bucket: str
) -> None:
    # S3 encrypts with the bucket's default key on AWS; the runtime must never send SSE headers,
    # and since SeaweedFS (no KMS configured) refuses them, every S3 call the suite makes proves it.
    with pytest.raises(ClientError) as err:
        seaweed.client("admin").put_object(Bucket=bucket, Key="k", Body=b"1", ServerSideEncryption="aws:kms")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] >= 400
