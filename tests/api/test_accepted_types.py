"""The API accepts for upload exactly the MIME types of the contract's media list, which is the
list the worker reads (tests/worker/test_accepted_formats.py proves each one is readable)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.shared.contract import MIME_TYPES
from tests.api.conftest import Caller

pytestmark = pytest.mark.integration

#: types a client might send that the worker does not read: each must be refused at upload
UNREAD = {
    "IMAGE": ("image/bmp", "image/svg+xml", "image/x-icon", "application/pdf", "image/x-portable-pixmap"),
    "VIDEO": ("application/vnd.apple.mpegurl", "application/x-mpegurl", "video/x-ms-asf", "text/plain"),
}


def _upload(alice: Caller, file_type: str, mime: str) -> tuple[int, dict[str, Any]]:
    # sized, so the unsized uploads' reservation of the whole input limit does not hit the
    # per-user stored-bytes limit before the list is through
    body = {"file_name": "a.bin", "file_type": file_type, "mime_type": mime, "size_bytes": 1024}
    answer = alice.call("POST", "/media/upload", body)
    return answer.status_code, answer.json_body


@pytest.mark.parametrize("file_type", ["IMAGE", "VIDEO"])
def test_given_the_contracts_list_when_uploading_each_type_then_exactly_those_are_accepted(
    alice: Caller, file_type: str
) -> None:
    accepted = [mime for mime in MIME_TYPES[file_type] if _upload(alice, file_type, mime)[0] == 201]
    refused = {mime: _upload(alice, file_type, mime) for mime in UNREAD[file_type]}

    assert accepted == list(MIME_TYPES[file_type])
    for mime, (status, body) in refused.items():
        assert status == 422 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE", (mime, body)
        assert body["error"]["details"]["allowed"] == list(MIME_TYPES[file_type])
