"""The versioned SQS message that asks for a job to be dispatched.

It carries the job id only: the database is the single source of truth, so a stale or
replayed message can never carry stale operations.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

MESSAGE_VERSION = 1


class MessageError(ValueError):
    """The message body is not a job message this code understands."""


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    version: int = MESSAGE_VERSION

    def to_body(self) -> str:
        return json.dumps({"version": self.version, "job_id": self.job_id}, separators=(",", ":"))


def parse_message(body: str | bytes) -> JobMessage:
    """Parse and validate a message body; raise MessageError saying what is wrong."""
    try:
        data: Any = json.loads(body)
    except (ValueError, TypeError) as err:
        raise MessageError(f"message body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise MessageError(f"message body must be a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if version != MESSAGE_VERSION:
        raise MessageError(f"unsupported message version {version!r}; this code reads version {MESSAGE_VERSION}")
    job_id = data.get("job_id")
    try:
        canonical = str(uuid.UUID(str(job_id)))
    except ValueError:
        raise MessageError(f"job_id must be a UUID, got {job_id!r}") from None
    return JobMessage(job_id=canonical)
