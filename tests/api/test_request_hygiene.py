"""Request hygiene (issue 14): bounded error answers and headers fit to store."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from runtime.api.chalicelib.errors import MAX_PROBLEMS
from tests.api.conftest import Caller, post_json

pytestmark = pytest.mark.integration


def _error(response: Any) -> dict[str, Any]:
    body = response.json_body
    assert set(body) == {"error"}, body
    return body["error"]


def test_given_a_59_kb_job_of_invalid_operations_when_processing_then_the_422_is_small_and_counts_the_rest(
    alice: Caller,
) -> None:
    # At most 20 operations, but every unknown field of each is a problem of its own.
    operations = [{"op": "resize", **{f"f{i:03}": 1 for i in range(270)}} for _ in range(20)]
    body = {"job_type": "IMAGE", "upload_id": "00000000-0000-0000-0000-000000000001", "operations": operations}
    sent = len(json.dumps(body))
    assert 50_000 < sent < 64 * 1024

    response = alice.call("POST", "/media/process", body)

    assert response.status_code in (400, 422), response.body[:300]
    error = _error(response)
    assert len(error["details"]["problems"]) == MAX_PROBLEMS
    assert error["details"]["problems_omitted"] > 0
    assert len(response.body) < sent, f"{len(response.body)} bytes answered to {sent} sent"


def test_given_a_nul_and_control_characters_in_user_agent_when_logging_in_then_201_and_they_are_not_stored(
    alice: Caller, database_url: str
) -> None:
    response = post_json(
        alice.http,
        "/sessions",
        {"email": alice.email, "password": alice.password},
        {"User-Agent": "Mozilla/5.0\x00\x1b[31m evil\x7f\x85"},
    )
    assert response.status_code == 201, response.body
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT user_agent FROM sessions WHERE id = %s", (response.json_body["session_id"],)
        ).fetchone()[0]
    assert stored == "Mozilla/5.0[31m evil"
