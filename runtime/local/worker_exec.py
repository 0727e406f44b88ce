"""Run a command with its stdout and stderr appended to a log file (``python -m
runtime.local.worker_exec LOG ARGV...``).

The dispatcher's LocalProcessLauncher lets workers inherit the supervisor's output; this
shim sends each worker's JSON log lines to the platform log instead, then ``exec``s the
worker so the pid (the local task id) and the signals sent to it stay the worker's own.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m runtime.local.worker_exec LOG_FILE COMMAND [ARGS...]")
    fd = os.open(argv[0], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.execv(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
