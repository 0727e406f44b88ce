"""The one shape every processor returns: a local file and how to publish and record it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.shared.repo.outputs import OutputRole


@dataclass(frozen=True)
class LocalOutput:
    """A file produced in scratch; ``key`` is relative to the job's output prefix and ``role``
    None means upload it but do not record a job_outputs row (HLS segments, init segments)."""

    path: Path
    key: str
    role: OutputRole | None
    mime: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    bitrate: int | None = None
