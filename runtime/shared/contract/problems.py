"""What is wrong with a job request, in the machine-readable shape clients already parse."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a job request: the operation, its index, the field, the value
    received and what is allowed (each left out of :meth:`to_dict` when it does not apply)."""

    message: str
    operation: str | None = None
    index: int | None = None
    field: str | None = None
    received: Any = None
    allowed: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ContractError(ValueError):
    """The job request is invalid; ``problems`` lists every reason."""

    code = "INVALID_JOB"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))

    def details(self) -> dict[str, Any]:
        return {"problems": [p.to_dict() for p in self.problems]}
