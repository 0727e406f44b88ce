"""One HLS playlist module: only runtime/shared/hls.py imports ``m3u8`` or spells a playlist tag
(``#EXTM3U``, ``#EXTINF``, ``#EXT-X-...``) in a string, so every playlist the system reads or
writes goes through one parser and one writer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = REPO_ROOT / "runtime"
OWNER = "runtime/shared/hls.py"
#: What starts a playlist tag (RFC 8216 4.1: every tag begins with ``#EXT``).
TAG_PREFIX = "#EXT"


def playlist_trespasses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every ``m3u8`` import and every string literal holding a playlist tag
    (f-strings by their literal parts); comments are not code and are not read."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] == "m3u8"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "m3u8" and node.level == 0:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TAG_PREFIX in node.value:
            found.append((node.lineno, f"playlist tag in {node.value.strip()[:40]!r}"))
    return found


def test_given_the_runtime_tree_when_scanned_then_only_the_hls_module_touches_playlist_text() -> None:
    modules = sorted(RUNTIME.rglob("*.py"))

    found = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in modules
        if path.relative_to(REPO_ROOT).as_posix() != OWNER
        for line, what in playlist_trespasses(path.read_text())
    ]

    assert len(modules) > 40 and playlist_trespasses((REPO_ROOT / OWNER).read_text())  # the scan saw the tree
    assert found == [], "playlists outside runtime/shared/hls.py:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import m3u8\n",
        "import m3u8.model as model\n",
        "from m3u8 import loads\n",
        "def f():\n    from m3u8.model import Segment\n",
        'HEADER = "#EXTM3U"\n',
        'line = f"#EXT-X-BYTERANGE:{n}@{o}"\n',
        'lines = ["x", "#EXTINF:2.0,"]\n',
    ],
)
def test_given_source_that_imports_m3u8_or_writes_a_tag_when_scanned_then_it_is_reported(source: str) -> None:
    assert len(playlist_trespasses(source)) == 1


def test_given_prose_about_tags_and_a_comment_when_scanned_then_nothing_is_reported() -> None:
    source = '"""Each variant has EXT-X-I-FRAME-STREAM-INF."""\nimport m3u8x  # #EXTM3U\nmsg = "lacks EXT-X-MAP"\n'

    assert playlist_trespasses(source) == []
