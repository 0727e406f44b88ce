"""The S3 object helpers every component shares: HEAD an object, tell "missing" from "failed".

S3 (and SeaweedFS) report a missing key as ``404``/``NoSuchKey``/``NotFound`` depending on the
call; everything else (403, throttling, a network error) is a failure the caller must not read
as "missing". Clients come from runtime.shared.aws, so calls are recorded for the IAM check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Error codes S3 uses for a key that does not exist.
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(err: ClientError) -> str:
    """The S3 error code of a failed call (``""`` when the response names none)."""
    return str(err.response.get("Error", {}).get("Code", ""))


def is_missing(err: ClientError) -> bool:
    """Whether a failed call failed because the key does not exist."""
    return error_code(err) in MISSING_CODES


def head_size(s3: S3Client, bucket: str, key: str) -> int | None:
    """The object's size in bytes, or None when it does not exist; any other error raises
    (``ClientError``, ``BotoCoreError``)."""
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as err:
        if is_missing(err):
            return None
        raise
