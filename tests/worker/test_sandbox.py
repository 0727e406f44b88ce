"""Uploads that try to make ffmpeg or libvips open something else: a URL or another local file.

Each is uploaded as the type it pretends to be and run as a real job (PostgreSQL, S3, ffmpeg,
libvips). A local HTTP server on 127.0.0.1 serves real media at every URL the files name, so a
parser that followed one would get something it could process: the job must FAIL with
UNSUPPORTED_FORMAT, record no output, and the server must have received no request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runtime.shared.status import JobStatus
from runtime.worker.runner import run_job
from tests.media import FFMPEG, _run, make_image

pytestmark = pytest.mark.integration


@dataclass
class Bait:
    """The HTTP server's address, what it was asked for, and local media a parser could read."""

    url: str
    ts: Path
    mp4: Path
    png: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture()
def bait(tmp_path: Path, clip: Path) -> Iterator[Bait]:
    ts = tmp_path / "bait" / "seg.ts"
    ts.parent.mkdir()
    _run([FFMPEG, "-y", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "mpegts", str(ts)])
    png = make_image(tmp_path / "bait" / "secret.png", 32, 32)
    files = {"/seg.ts": ts, "/a.mp4": clip, "/x.png": png}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = files[self.path].read_bytes() if self.path in files else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bait(f"http://127.0.0.1:{server.server_address[1]}", ts, clip, png, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _hls(segment: str) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n"


VIDEO_BAITS = {
    "hls-http": lambda b: _hls(f"{b.url}/seg.ts"),
    "hls-local-file": lambda b: _hls(str(b.ts)),
    "hls-file-url": lambda b: _hls(f"file://{b.ts}"),
    "ffconcat-http": lambda b: f"ffconcat version 1.0\nfile '{b.url}/a.mp4'\n",
    "ffconcat-local-file": lambda b: f"ffconcat version 1.0\nfile '{b.mp4}'\n",
    "concat-http": lambda b: f"file '{b.url}/a.mp4'\n",
}


@pytest.mark.parametrize("name", sorted(VIDEO_BAITS))
def test_given_a_playlist_or_concat_list_uploaded_as_mp4_when_run_then_refused_and_nothing_fetched(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, bait: Bait, name: str
) -> None:
    body = VIDEO_BAITS[name](bait).encode()
    job_id = submit(body, "VIDEO", [{"op": "transcode", "renditions": [360]}], "clip.mp4", "video/mp4")

    status = run_job(job_id, settings, db)

    row = job_row(job_id)
    assert status == JobStatus.FAILED and row["error_code"] == "UNSUPPORTED_FORMAT", row["error_message"]
    assert "playlists" in row["error_message"]
    assert outputs(job_id) == []
    assert bait.requests == []


@pytest.mark.parametrize("name", ["hls-http", "ffconcat-http", "concat-http"])
def test_given_a_playlist_uploaded_as_mp4_when_the_work_estimate_probes_it_by_url_then_refused_and_nothing_fetched(
    warm: None, db: Any, submit: Any, bait: Bait, name: str
) -> None:
    """POST /media/process's pre-check ffprobes the stored object through an HTTPS URL (network
    protocols on): the demuxer is still pinned by the object's bytes, so a list is not opened."""
    from runtime.worker import lambda_handler

    job_id = submit(VIDEO_BAITS[name](bait).encode(), "VIDEO", [{"op": "poster"}], "clip.mp4", "video/mp4")
    with db.connection() as conn:
        key = conn.execute(
            "SELECT u.object_key FROM uploads u JOIN jobs j ON j.upload_id = u.id WHERE j.id = %s", (job_id,)
        ).fetchone()["object_key"]

    assert lambda_handler.handler({"probe_key": key}) == {"probe": None}
    assert bait.requests == []


def _svg(href: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'
        f'<image xlink:href="{href}" width="64" height="64"/></svg>'
    )


IMAGE_BAITS = {
    "svg-http": lambda b: _svg(f"{b.url}/x.png"),
    "svg-local-file": lambda b: _svg(f"file://{b.png}"),
    "svg-relative-file": lambda b: _svg(b.png.name),
}


@pytest.mark.parametrize("name", sorted(IMAGE_BAITS))
def test_given_an_svg_uploaded_as_png_when_run_then_refused_and_nothing_fetched(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, bait: Bait, name: str
) -> None:
    body = IMAGE_BAITS[name](bait).encode()
    job_id = submit(body, "IMAGE", [{"op": "resize", "width": 32}], "photo.png", "image/png")

    status = run_job(job_id, settings, db)

    row = job_row(job_id)
    assert status == JobStatus.FAILED and row["error_code"] == "UNSUPPORTED_FORMAT", row["error_message"]
    assert outputs(job_id) == []
    assert bait.requests == []
