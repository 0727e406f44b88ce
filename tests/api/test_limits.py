"""Per-user limits, attacked in parallel over real HTTP (the threaded local server, real
PostgreSQL and SeaweedFS): N simultaneous requests of one user must not all pass a count none
of them has added to yet; every refusal is 429 with a code, the limit and Retry-After."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.conftest import Caller, upload_file
from tests.media import make_image

SEED_OPERATIONS = {"ROTATE": "180"}


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return Path(make_image(tmp_path_factory.mktemp("limits") / "a.jpg", 32, 24)).read_bytes()


def _parallel(count: int, call: Any) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def _post(api_server: str, caller: Caller, path: str, body: Any) -> requests.Response:
    return requests.post(
        f"{api_server}{path}",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **caller.key},
        timeout=60,
    )


def _refusals(responses: list[requests.Response], code: str) -> list[requests.Response]:
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["code"] == code for r in refused), [r.text for r in refused]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    return refused


def test_given_40_parallel_process_requests_on_one_upload_when_3_active_jobs_are_allowed_then_exactly_3_are_created(
    api_server: str, alice: Caller, limited: Any, jpeg: bytes
) -> None:
    limited(max_active_jobs_per_user=3)
    upload = upload_file(alice, jpeg)
    body = {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": SEED_OPERATIONS}
    responses = _parallel(40, lambda: _post(api_server, alice, "/media/process", body))
    assert sorted({r.status_code for r in responses}) == [201, 429]
    assert [r.status_code for r in responses].count(201) == 3
    refused = _refusals(responses, "TOO_MANY_ACTIVE_JOBS")
    assert len(refused) == 37
    assert refused[0].json()["error"]["details"]["limit"] == 3


def test_given_an_hourly_job_limit_when_exceeded_in_parallel_then_the_rest_wait_for_the_hour(
    api_server: str, alice: Caller, bob: Caller, limited: Any, jpeg: bytes
) -> None:
    limited(max_jobs_per_hour_per_user=5)
    upload = upload_file(alice, jpeg)
    body = {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": SEED_OPERATIONS}
    responses = _parallel(12, lambda: _post(api_server, alice, "/media/process", body))
    assert [r.status_code for r in responses].count(201) == 5
    refused = _refusals(responses, "JOB_RATE_LIMITED")
    assert len(refused) == 7 and 3500 <= int(refused[0].headers["Retry-After"]) <= 3600
    # the limit is per user: bob is not refused for alice's jobs
    other = upload_file(bob, jpeg)
    assert bob.call("POST", "/media/process", {**body, "upload_id": other["upload_id"]}).status_code == 201


def test_given_a_pending_upload_limit_when_uploads_are_started_in_parallel_then_only_that_many_are_pending(
    api_server: str, alice: Caller, limited: Any
) -> None:
    limited(max_pending_uploads_per_user=2)
    body = {"file_name": "a.jpg", "file_type": "IMAGE", "mime_type": "image/jpeg", "size_bytes": 100}
    responses = _parallel(10, lambda: _post(api_server, alice, "/media/upload", body))
    assert [r.status_code for r in responses].count(201) == 2
    assert len(_refusals(responses, "TOO_MANY_PENDING_UPLOADS")) == 8


def test_given_a_stored_bytes_limit_when_declared_sizes_exceed_it_then_429_and_undeclared_reserve_the_input_limit(
    api_server: str, alice: Caller, limited: Any
) -> None:
    limited(max_stored_bytes_per_user=1000, max_input_bytes=400)
    sized = {"file_name": "a.jpg", "file_type": "IMAGE", "mime_type": "image/jpeg", "size_bytes": 300}
    responses = _parallel(6, lambda: _post(api_server, alice, "/media/upload", sized))
    assert [r.status_code for r in responses].count(201) == 3
    [refused, *_] = _refusals(responses, "STORAGE_LIMIT_REACHED")
    details = refused.json()["error"]["details"]
    assert (details["limit"], details["used"]) == (1000, 900)
    # an undeclared size reserves the whole input limit (400): 900 + 400 > 1000
    unsized = {k: v for k, v in sized.items() if k != "size_bytes"}
    assert _post(api_server, alice, "/media/upload", unsized).status_code == 429
