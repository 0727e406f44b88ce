"""Test media generated on the fly with real ffmpeg and libvips (never committed binaries).

Importable by every test package: ``from tests.media import make_video, make_image``.
Everything is small by default so the suite stays fast; callers choose sizes.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

FFMPEG = os.environ.get("FFMPEG_BINARY", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE_BINARY", "ffprobe")


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def make_video(
    path: str | Path,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 180,
    audio: bool = True,
    rotate: int | None = None,
    fps: int = 25,
    preset: str = "ultrafast",
) -> Path:
    """An H.264 (+ AAC sine) MP4 of ``testsrc2``; ``rotate`` sets the display-matrix rotation
    the way phones do (pixels stay landscape, players show it rotated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if rotate is None else path.with_name(path.stem + ".norot" + path.suffix)
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-g", str(fps)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    args += ["-movflags", "+faststart", str(target)]
    _run(args)
    if rotate is not None:
        # ffmpeg 5.x writes the display matrix from the legacy tag only when stream-copying.
        _run(
            [
                FFMPEG,
                "-y",
                "-v",
                "error",
                "-i",
                str(target),
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={rotate}",
                str(path),
            ]
        )
        target.unlink()
    return path


def make_image(path: str | Path, width: int = 640, height: int = 480, fmt: str | None = None, **save: Any) -> Path:
    """A colourful gradient image written by libvips; ``fmt`` defaults to the suffix."""
    import pyvips

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = pyvips.Image.xyz(width, height)
    red = (x[0] * (255.0 / max(1, width - 1))).cast("uchar")
    green = (x[1] * (255.0 / max(1, height - 1))).cast("uchar")
    blue = ((x[0] + x[1]) % 256).cast("uchar")
    image = red.bandjoin([green, blue]).copy(interpretation="srgb")
    if fmt:
        path.write_bytes(image.write_to_buffer(f".{fmt}", **save))
    else:
        image.write_to_file(str(path), **save)
    return path


def make_exif_oriented_jpeg(path: str | Path, width: int = 400, height: int = 200, orientation: int = 6) -> Path:
    """A ``width`` x ``height`` JPEG whose EXIF orientation tag asks viewers to rotate it
    (6 = 90 degrees clockwise), as phone cameras write them."""
    import pyvips

    path = Path(path)
    image = pyvips.Image.black(width, height, bands=3).linear([1, 1, 1], [200, 30, 30])
    image = image.cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    path.write_bytes(image.jpegsave_buffer())
    return path


def make_png_claiming(path: str | Path, width: int, height: int) -> Path:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (a decompression-bomb header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def make_truncated(source: str | Path, path: str | Path, keep: float = 0.3) -> Path:
    """The first ``keep`` fraction of ``source`` (a download cut short)."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def ffprobe(path: str | Path) -> dict[str, Any]:
    """ffprobe's JSON (format + streams) for assertions."""
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffprobe failed on {path}: {proc.stderr[-1000:]}")
    return json.loads(proc.stdout)
