"""One warm worker of the local pool (``python -m runtime.local.pool_worker [--log FILE]``).

It starts once (imports, settings, a database pool, boto3 clients cached by runtime.shared.aws),
says ``{"event": "ready"}`` on its control output, then runs every job id it reads, one JSON line
each (``{"job_id": …, "task_id": …}``), through :func:`runtime.worker.runner.run_job`, the code a
one-shot worker runs, answering ``{"event": "done", …}`` after the job's outcome is recorded.

Between jobs nothing is carried over but the connections: each job runs in a fresh copy of
the context (log fields, the acting component), libvips keeps no operation cache (no cached
image holds a deleted input open), and child processes a job left behind are killed. The
runner removes its scratch folder itself.

Control is the stdin/stdout the pool gave us, moved to private descriptors at start; fds 0-2
then become /dev/null and the log, so ffmpeg and libvips can print nothing into the protocol.
The worker exits at end of input, on SIGTERM (a job in flight is recorded as stopped first), on
an error that leaves a job unrecorded (exit 1, the pool settles the job), and when the
supervisor that started it is gone (it kills its own process group then, ffmpeg included).
"""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import IO, Any

from runtime.shared import aws
from runtime.shared.db import Database, open_database
from runtime.shared.log import configure
from runtime.shared.settings import ConfigError, Settings, load_settings, log_level
from runtime.worker.errors import Stopped
from runtime.worker.runner import JobNotFound, run_job

log = logging.getLogger("transcodex.worker.pool")

EXIT_CONFIG = 2
#: How often the watchdog checks that the supervisor is still our parent.
PARENT_CHECK_SECONDS = 1.0


class _State:
    busy = False
    stopping = False


def _take_control(log_path: str | None) -> tuple[IO[bytes], IO[bytes]]:
    """Move the control pipes off fds 0/1; point 0 at /dev/null and 1/2 at the log."""
    control_in = os.fdopen(os.dup(0), "rb", buffering=0)
    control_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    else:
        os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    return control_in, control_out


def _send(out: IO[bytes], **event: Any) -> None:
    out.write((json.dumps(event) + "\n").encode())


def _watch_parent(parent: int) -> None:
    """Die with the supervisor: a pool worker must not outlive the platform that owns its jobs."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _reset_after_job() -> None:
    """Kill child processes a job left behind (an ffmpeg whose reader died, a probe)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        log.warning("a job left a child process; killing it", extra={"pid": child.pid, "name": child.name()})
        try:
            child.kill()
        except psutil.Error:
            continue


def run_one(job_id: str, settings: Settings, database: Database) -> str:
    """Run one job in a fresh context (no log field or component leaks into the next); return
    its status (or NOT_FOUND)."""
    try:
        return str(contextvars.Context().run(run_job, job_id, settings, database).value)
    except JobNotFound:
        log.error("no such job", extra={"job_id": job_id})
        return "NOT_FOUND"
    finally:
        _reset_after_job()


@aws.acting_as("worker")
def serve(control_in: IO[bytes], control_out: IO[bytes], settings: Settings, database: Database) -> int:
    """Answer ready, then run jobs until end of input or a stop; return the exit code."""
    state = _State()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        state.stopping = True
        if state.busy:
            raise Stopped(f"signal {signum}")  # the runner records the job as stopped
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    _send(control_out, event="ready", pid=os.getpid())
    for raw in iter(control_in.readline, b""):
        try:
            request = json.loads(raw)
            job_id, task_id = str(request["job_id"]), str(request["task_id"])
        except (ValueError, KeyError, TypeError):
            log.error("unreadable control line; ignored", extra={"line": raw[:200].decode(errors="replace")})
            continue
        state.busy = True
        try:
            status = run_one(job_id, settings, database)
        except Exception:
            log.exception("the worker could not record an outcome (database unreachable?)", extra={"job_id": job_id})
            return 1
        finally:
            state.busy = False
        _send(control_out, event="done", job_id=job_id, task_id=task_id, status=status)
        if state.stopping:
            break
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local.pool_worker", description=__doc__)
    parser.add_argument("--log", help="append this worker's output to FILE (default: stderr)")
    args = parser.parse_args(argv)
    control_in, control_out = _take_control(args.log)
    configure(log_level())
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    try:
        settings = load_settings(sections=["database", "storage", "limits"])
        database = open_database(settings, max_size=2)
    except (ConfigError, ValueError) as err:
        log.error("invalid configuration", extra={"error": str(err)})
        return EXIT_CONFIG
    # runtime.worker.image turns libvips' operation cache off as it is imported (a cached
    # operation would keep a finished job's input open and its progress callback connected).
    try:
        return serve(control_in, control_out, settings, database)
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
