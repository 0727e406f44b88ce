"""Test media generated on the fly with real ffmpeg and libvips (never committed binaries).

Importable by every test package: ``from tests.media import make_video, make_image``.
Everything is small by default so the suite stays fast; callers choose sizes.
"""

from __future__ import annotations

import json
import os
import re
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


# --- real-world shapes (issue 13): each made small and short, on the fly ---------------------


def _lavfi_video(width: int, height: int, fps: str | int, source: str = "testsrc2") -> list[str]:
    return ["-f", "lavfi", "-i", f"{source}=size={width}x{height}:rate={fps}"]


def _tone(frequency: int = 440, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={rate}"]


def make_anamorphic(
    path: str | Path, width: int = 720, height: int = 480, sar: str = "32/27", seconds: float = 1.0, fps: int = 25
) -> Path:
    """Non-square pixels as DVDs, broadcast and HDV store them: ``width`` x ``height`` shown at
    ``sar`` (720x480 at 32:27 is 16:9 on screen; 1440x1080 at 4:3 is 1920x1080)."""
    path = Path(path)
    args = [FFMPEG, "-y", "-v", "error", *_lavfi_video(width, height, fps), *_tone(), "-t", str(seconds)]
    _run([*args, "-vf", f"setsar={sar}", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(path)])
    return path


def make_interlaced_mpeg2(path: str | Path, seconds: float = 1.0, width: int = 720, height: int = 576) -> Path:
    """Interlaced MPEG-2 in MPEG-TS, top field first, 25 frames (50 fields) a second, 4:3 with
    MP2 audio: two fields of a 50p picture woven into each frame, as a broadcast camera does."""
    path = Path(path)
    args = [FFMPEG, "-y", "-v", "error", *_lavfi_video(width, height, 50), *_tone(300), "-t", str(seconds)]
    args += ["-vf", "interlace=scan=tff", "-c:v", "mpeg2video", "-b:v", "6M", "-flags", "+ilme+ildct", "-top", "1"]
    _run([*args, "-aspect", "4:3", "-c:a", "mp2", "-b:a", "192k", str(path)])
    return path


def make_unflagged_video(path: str | Path, interlaced: bool, seconds: float = 1.0) -> Path:
    """A 320x240 MJPEG AVI, a format that does not say whether it is interlaced (ffprobe:
    ``field_order=unknown``): moving gradients at 50 fields a second woven bottom field first,
    or the same picture progressive at 25 frames a second. (testsrc2's one-pixel lines look
    combed to idet even when progressive, so it is not used here.) The gradients' colours are
    seeded: with a random seed some draws move too little for idet to see the weave."""
    path = Path(path)
    vf = "interlace=scan=bff,format=yuvj422p" if interlaced else "fps=25,format=yuvj422p"
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "gradients=size=320x240:rate=50:speed=0.05:seed=1"]
    _run([*args, "-t", str(seconds), "-vf", vf, "-c:v", "mjpeg", str(path)])
    return path


def make_hdr(
    path: str | Path, transfer: str = "smpte2084", seconds: float = 1.0, width: int = 320, height: int = 180
) -> Path:
    """10-bit HEVC in BT.2020 with the PQ (HDR10, with mastering metadata) or HLG transfer,
    made from the SDR ``testsrc2`` picture at 100 nits: what phones and HDR cameras write."""
    path = Path(path)
    to_hdr = (
        "format=yuv420p,zscale=rin=tv:tin=bt709:min=bt709:pin=bt709:t=linear:p=bt709:m=bt709:npl=100,"
        f"format=gbrpf32le,zscale=p=bt2020:t={transfer}:m=bt2020nc:r=tv:npl=100,format=yuv420p10le"
    )
    x265 = "log-level=error"
    if transfer == "smpte2084":
        x265 += ":hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
        x265 += ":max-cll=1000,400"
    args = [FFMPEG, "-y", "-v", "error", *_lavfi_video(width, height, 25), "-t", str(seconds), "-vf", to_hdr]
    args += ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-color_primaries", "bt2020"]
    _run([*args, "-color_trc", transfer, "-colorspace", "bt2020nc", "-tag:v", "hvc1", str(path)])
    return path


def make_multi_audio(path: str | Path, seconds: float = 2.0, width: int = 320, height: int = 180) -> Path:
    """An MKV with two audio tracks: English mono (440 Hz) first, then a French 5.1 track at
    660 Hz titled "Commentaire" and flagged default, as remuxed films and broadcasts carry them."""
    path = Path(path)
    args = [FFMPEG, "-y", "-v", "error", *_lavfi_video(width, height, 25), *_tone(440), *_tone(660, 44100)]
    args += ["-t", str(seconds), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-g", "25", "-c:a", "aac", "-ac:a:1", "6", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1"]
    args += ["language=fre", "-metadata:s:a:1", "title=Commentaire", "-disposition:a:0", "0", "-disposition:a:1"]
    _run([*args, "default", str(path)])
    return path


def make_vfr(path: str | Path, seconds: float = 2.0, fps: int = 30, width: int = 320, height: int = 180) -> Path:
    """A phone-like variable-frame-rate MP4: frames every 1/``fps`` s give or take 10 ms (600 Hz
    track timescale), so the average is ``fps`` but no two intervals need be equal."""
    path = Path(path)
    args = [FFMPEG, "-y", "-v", "error", *_lavfi_video(width, height, fps), *_tone(rate=44100), "-t", str(seconds)]
    args += ["-vf", f"settb=1/600,setpts=(N/{fps}+0.01*sin(N*1.7))/TB", "-fps_mode", "vfr", "-enc_time_base:v"]
    _run(
        [
            *args,
            "1/600",
            "-video_track_timescale",
            "600",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            str(path),
        ]
    )
    return path


def packet_times(path: str | Path, stream: str = "v:0") -> list[float]:
    """Presentation times of a stream's packets, sorted."""
    proc = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    return sorted(float(v.strip(",")) for v in proc.stdout.split() if v.strip(",") not in ("", "N/A"))


def luma_stats(path: str | Path, prefilter: str = "") -> dict[str, float]:
    """signalstats of the first frame (YLOW, YAVG, YHIGH... on the 8-bit scale)."""
    graph = f"{prefilter}signalstats,metadata=print"
    args = [FFMPEG, "-v", "info", "-i", str(path), "-frames:v", "1", "-vf", graph, "-f", "null", "-"]
    proc = subprocess.run(args, capture_output=True, text=True)
    found = re.findall(r"lavfi\.signalstats\.(Y[A-Z]+)=([0-9.]+)", proc.stderr)
    if not found:
        raise RuntimeError(f"no signalstats for {path}: {proc.stderr[-500:]}")
    return {key: float(value) for key, value in found}


def field_detection(path: str | Path, frames: int = 100) -> dict[str, int]:
    """idet's multi-frame counts over the first ``frames`` frames (TFF, BFF, Progressive)."""
    proc = subprocess.run(
        [FFMPEG, "-v", "info", "-i", str(path), "-frames:v", str(frames), "-vf", "idet", "-an", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)", proc.stderr)
    if not match:
        raise RuntimeError(f"no idet result for {path}: {proc.stderr[-500:]}")
    return dict(zip(("TFF", "BFF", "Progressive"), (int(g) for g in match.groups()), strict=True))
