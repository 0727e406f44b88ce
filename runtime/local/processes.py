"""Other processes, by pid, through psutil: what the local platform checks before it signals a
pid it recorded earlier (a leftover child, an orphaned worker, a postmaster), since a pid is
reused once its process is gone."""

from __future__ import annotations

import time

import psutil


def command_line(pid: int) -> list[str] | None:
    """The arguments ``pid`` runs with; None when it is gone, a zombie or not ours to read."""
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return None


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited (gone, or a zombie awaiting its reaper); False on timeout."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
