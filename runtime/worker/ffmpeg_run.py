"""Run one ffmpeg process under supervision: progress, cancellation and a wall-time limit.

ffmpeg writes ``key=value`` progress blocks to stdout (``-progress pipe:1 -nostats``); a
reader thread queues them so the supervising loop wakes at least every ``poll`` seconds even
when ffmpeg is silent, and can terminate it on cancel or timeout. stderr goes to a file (never
a pipe nobody reads, which would block ffmpeg once full) and its tail explains failures.

:func:`probe` is ffmpeg-python's ffprobe call behind a typed signature (the library has no
type hints), so its answer enters the worker as a JSON object, not as ``Any``.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from runtime.shared.status import ErrorCode
from runtime.worker.errors import JobFailure

#: The binaries every ffmpeg and ffprobe call runs (on PATH in the worker image and locally).
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

#: progress(seconds of output written) -> None; may raise (Cancelled) to stop ffmpeg.
ProgressHook = Callable[[float], None]


@dataclass(frozen=True)
class FfmpegResult:
    returncode: int
    stderr: str


def probe(target: str, cmd: str = FFPROBE, **options: str) -> dict[str, Any]:
    """ffprobe's ``-show_format -show_streams`` JSON for ``target`` (``options`` are ffprobe
    flags); raises ffmpeg.Error when ffprobe fails or prints something else than an object."""
    data = ffmpeg.probe(target, cmd=cmd, **options)
    if not isinstance(data, dict):
        raise ffmpeg.Error(cmd, b"", b"ffprobe printed no JSON object")
    return data


def parse_progress_line(line: str) -> float | None:
    """Seconds of output written, from one ``-progress`` line (``out_time_us=…``)."""
    key, _, value = line.strip().partition("=")
    if key in ("out_time_us", "out_time_ms"):  # both are microseconds (a historic ffmpeg quirk)
        with contextlib.suppress(ValueError):
            return max(0.0, int(value) / 1_000_000)
    return None


def run_ffmpeg(
    args: Sequence[str],
    stderr_path: Path,
    on_progress: ProgressHook | None = None,
    deadline: float | None = None,
    poll: float = 0.5,
) -> FfmpegResult:
    """Run ``args`` (a full ffmpeg command line including ``-progress pipe:1``).

    Raises JobFailure(TIMEOUT) after killing ffmpeg when ``deadline`` (time.monotonic()) passes;
    any exception from ``on_progress`` terminates ffmpeg and propagates.
    """
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    reader = threading.Thread(target=read, name="ffmpeg-progress", daemon=True)
    reader.start()
    try:
        done = False
        while not done:
            if deadline is not None and time.monotonic() > deadline:
                raise JobFailure(ErrorCode.TIMEOUT, "processing took longer than the worker's time limit")
            try:
                line = lines.get(timeout=poll)
            except queue.Empty:
                continue
            if line is None:
                done = True
                continue
            seconds = parse_progress_line(line)
            if seconds is not None and on_progress is not None:
                on_progress(seconds)
        proc.wait()
    finally:
        if proc.poll() is None:
            _stop(proc)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    return FfmpegResult(proc.returncode, _tail(stderr_path))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if ffmpeg does not exit promptly."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, limit: int = 20_000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace")
