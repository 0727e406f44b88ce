"""Refusals of the API's logic, free of HTTP: a kind, a stable machine code, a message, details.

``uploads``, ``jobs``, ``accounts`` and request parsing raise these and never build a response;
the route wrapper maps each kind to one HTTP status (``errors.STATUS``), so the status of a
refusal is decided in one place and the logic can be called from anywhere (tests, scripts).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the caller can act on. Raise a subclass: the subclass is the kind."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class Invalid(DomainError):
    """The request is malformed (a body, parameter or id that can never be accepted)."""


class Unauthenticated(DomainError):
    """No credential, or one that is forged, expired, revoked or of a kind the route refuses."""


class Forbidden(DomainError):
    """The caller is known but this request may not proceed as sent (a cross-site cookie
    request, a sensitive action without a recent login)."""


class NotFound(DomainError):
    """No such thing of the caller's: another user's ids are not found either."""


class Conflict(DomainError):
    """The thing exists but its state forbids this now (not uploaded yet, already finished)."""


class TooLarge(DomainError):
    """A body, declared size or stored object over a limit."""


class Unprocessable(DomainError):
    """Well-formed but not acceptable (an unsupported type, an invalid job, a reused key)."""


class Throttled(DomainError):
    """Too many attempts lately; retry later."""


class Unavailable(DomainError):
    """A dependency (S3, SQS) failed; the same request may succeed shortly."""
