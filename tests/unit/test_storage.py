"""The shared "HEAD an object or None" helper: only a missing key reads as None."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from runtime.shared.storage import head_size, is_missing

pytestmark = pytest.mark.unit


@pytest.fixture()
def s3() -> object:
    return boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_given_an_object_when_headed_then_its_size(s3: object) -> None:
    with Stubber(s3) as stub:
        stub.add_response("head_object", {"ContentLength": 42}, {"Bucket": "b", "Key": "k"})
        assert head_size(s3, "b", "k") == 42


@pytest.mark.parametrize("code", ["404", "NoSuchKey", "NotFound"])
def test_given_a_missing_key_when_headed_then_none(s3: object, code: str) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code=code, http_status_code=404)
        assert head_size(s3, "b", "k") is None


@pytest.mark.parametrize(("code", "status"), [("403", 403), ("AccessDenied", 403), ("SlowDown", 503)])
def test_given_a_refused_or_failed_head_when_headed_then_it_raises(s3: object, code: str, status: int) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code=code, http_status_code=status)
        with pytest.raises(ClientError) as raised:
            head_size(s3, "b", "k")
    assert not is_missing(raised.value)
