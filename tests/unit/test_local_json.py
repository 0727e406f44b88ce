"""JSON the local tools did not write this run (the CLI's config file, the platform's state
file, the API's answers): anything but the object they expect is refused with a clear error
(or read as no state), never an AttributeError further on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.local.client import ApiError, CliConfig, Client
from runtime.local.platform import Platform

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["[]", "null", '"x"'])
def test_given_a_config_file_that_is_not_an_object_when_loaded_then_bad_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)

    with pytest.raises(ApiError) as raised:
        CliConfig.load(path)

    assert raised.value.code == "BAD_CONFIG" and str(path) in raised.value.message


@pytest.mark.parametrize("answer", [None, [], ["job"], "text"])
def test_given_an_api_answer_that_is_not_an_object_when_a_job_is_read_then_bad_response(
    monkeypatch: pytest.MonkeyPatch, answer: Any
) -> None:
    client = Client("http://127.0.0.1:9")
    monkeypatch.setattr(client, "request", lambda *args, **kwargs: answer)

    with pytest.raises(ApiError) as raised:
        client.status("j1")

    assert raised.value.code == "BAD_RESPONSE" and "/media/status/j1" in raised.value.message


def test_given_an_api_answer_that_is_an_object_when_a_job_is_read_then_it_is_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Client("http://127.0.0.1:9")
    monkeypatch.setattr(client, "request", lambda *args, **kwargs: {"job_id": "j1"})

    assert client.status("j1") == {"job_id": "j1"}


@pytest.mark.parametrize("text", ["[]", "null", "{not json"])
def test_given_a_damaged_state_file_when_leftovers_are_reaped_then_there_is_no_state(tmp_path: Path, text: str) -> None:
    platform = Platform(tmp_path, echo=None)
    platform.state_path.write_text(text)

    platform._reap_leftovers()

    assert platform._read_state() == {}
