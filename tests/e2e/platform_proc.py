"""Start ``transcodex local up`` as a real subprocess and find every process it owns.

Used by the end-to-end tests: the platform runs exactly as a user starts it, and after
shutdown the tests list the processes (psutil) for anything it left behind (by data folder, session id,
ports and worker job ids).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunningPlatform:
    process: subprocess.Popen[str]
    data_dir: Path
    api_url: str
    stderr_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def state(self) -> dict:
        return json.loads((self.data_dir / "platform.json").read_text())

    def stop(self, timeout_s: float = 90) -> int:
        """Ctrl-C, as a user would; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout_s)


def start_platform(data_dir: Path, timeout_s: float = 120, extra_args: tuple[str, ...] = ()) -> RunningPlatform:
    """``python -m runtime.local.cli local up --port 0 EXTRA_ARGS``; waits for the ``API http://…`` line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"{data_dir.name}-supervisor.stderr"
    stderr = stderr_path.open("a")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.local.cli",
            "local",
            "up",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra_args,
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,  # its own session: a stray signal in the test run cannot reach it
    )
    stderr.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith("API http://"):
            return RunningPlatform(process, data_dir, line.split()[1], stderr_path, seen)
    process.kill()
    raise AssertionError(f"the platform did not print its API line; stdout={seen}; stderr={stderr_path.read_text()}")


def owned_processes(data_dir: Path, sessions: set[int], ports: list[int]) -> list[str]:
    """Live processes that belong to a platform: its sessions, its data folder, or its ports."""
    found = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        info = proc.info
        # a zombie holds no resources (its parent reaps it); the scan skips its own process
        if info["pid"] == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            sid = os.getsid(info["pid"])
        except OSError:  # exited since the listing
            continue
        cmd = " ".join(info["cmdline"] or [])
        mine = (
            sid in sessions
            or str(data_dir) in cmd
            or any(f"moto.server -H 127.0.0.1 -p {port} " in cmd + " " for port in ports)
            or any(f"api_server --port {port} " in cmd + " " for port in ports)
        )
        if mine:
            found.append(f"{info['pid']} sid={sid} {cmd[:200]}")
    return found
