"""``make demo``'s script, on small media: the README's first command must keep working."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from runtime.local.demo import DemoMedia, run_demo
from tests.e2e.platform_proc import owned_processes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.skipif(
        importlib.util.find_spec("runtime.api.app") is None, reason="runtime/api/app.py is not in the tree yet"
    ),
]


def test_given_a_fresh_folder_when_the_demo_runs_then_it_saves_playable_hls_prints_a_summary_and_stops(
    capsys: Any,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="transcodex-demo-"))
    environ = dict(os.environ)
    try:
        small = DemoMedia(clip_seconds=2, clip_size=(640, 360), photo_size=(800, 600), renditions=("360p", "240p"))
        summary = run_demo(root / "out", root / "data", progress=False, media_spec=small)

        printed = capsys.readouterr().out
        master = summary["hls_master"]
        heights = {s["height"] for s in summary["hls_probe"]["streams"] if s["codec_type"] == "video"}
        assert summary["image"]["status"] == summary["video"]["status"] == "SUCCEEDED"
        assert master.is_file() and master.is_relative_to(root / "out")
        assert heights == {360, 240}
        assert len(list(master.parent.rglob("*.ts"))) >= 2, "segments are saved next to the playlists"
        assert "summary" in printed and summary["hls_url"] in printed
        ports = list(json.loads((root / "data" / "platform.json").read_text())["ports"].values())
        assert owned_processes(root / "data", set(), ports) == []
        assert {k: v for k, v in os.environ.items() if k.startswith("TRANSCODEX_")} == {
            k: v for k, v in environ.items() if k.startswith("TRANSCODEX_")
        }, "the demo leaked settings into the caller's environment"
    finally:
        shutil.rmtree(root, ignore_errors=True)
