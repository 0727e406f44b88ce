"""The worker's failure types: each carries the error code and a message a user can act on.

Processing code raises these; the runner maps them (and anything unexpected) to the job row
in exactly one place.
"""

from __future__ import annotations

from runtime.shared.status import ErrorCode


class JobFailure(Exception):
    """The job cannot succeed; ``code`` and ``message`` go to the job row as they are."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(Exception):
    """The job left RUNNING while we worked (the API cancelled it): stop, clean up, exit 3."""


class Stopped(Exception):
    """The process was asked to stop (SIGTERM from ECS or a local dispatcher)."""
