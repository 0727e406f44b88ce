"""scripts/system-deps.sh (run by `make setup`/`make test`) calls apt-get only for what is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-deps.sh"
#: Every binary the script looks for (with `id`, which it calls to decide on sudo).
TOOLS = ("ffmpeg", "ffprobe", "pg_ctl", "node", "chromium", "podman", "runc", "buildah", "debootstrap")


def _run(tmp_path: Path, present: tuple[str, ...]) -> list[str]:
    """Run the script with a PATH holding only stubs: ``present`` tools, ``id`` (root) and an
    ``apt-get`` that records its arguments. Returns the recorded apt-get calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt-get.log"
    stubs = {name: "#!/bin/sh\nexit 0\n" for name in present}
    stubs["id"] = "#!/bin/sh\necho 0\n"
    stubs["apt-get"] = f'#!/bin/sh\necho "$*" >> {log}\n'
    for name, body in stubs.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    subprocess.run(
        ["/bin/bash", str(SCRIPT)], env={"PATH": str(bin_dir)}, check=True, capture_output=True, text=True, timeout=60
    )
    return log.read_text().splitlines() if log.exists() else []


def test_given_every_tool_installed_when_system_deps_runs_then_apt_get_is_not_called(tmp_path: Path) -> None:
    assert _run(tmp_path, TOOLS) == []


def test_given_ffmpeg_missing_when_system_deps_runs_then_apt_get_installs_only_ffmpeg(tmp_path: Path) -> None:
    calls = _run(tmp_path, tuple(t for t in TOOLS if t != "ffmpeg"))
    assert calls[0] == "update -qq"
    assert calls[1].startswith("install ") and calls[1].split()[-1] == "ffmpeg"
    assert len(calls) == 2
