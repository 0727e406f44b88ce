"""One HLS rendition on disk: its media playlist, the files it names, and what ffprobe reads in them.

The ladder check (ladder_check.py) and the I-frame playlists (iframes.py) both need a
rendition's streams and its packet list (byte position, size, key flag, timing); this module
owns reading them. A rendition is probed as ONE stream, its init section followed by every
segment through ffmpeg's ``concat:`` protocol, so each packet's ``pos`` is an offset into that
concatenation: :meth:`Rendition.locate` maps it back to a segment file and an offset in it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.shared import hls as playlists
from runtime.worker import hls
from runtime.worker.ffmpeg_run import FFMPEG, FFPROBE


class RenditionError(ValueError):
    """A rendition cannot be read: a missing file, an empty playlist, ffprobe failing on it."""


@dataclass(frozen=True)
class SegmentFile:
    """A media segment: ``offset`` is where it starts in the rendition's concatenation."""

    uri: str
    path: Path
    duration: float
    offset: int
    size: int


@dataclass(frozen=True)
class Packet:
    stream: int
    kind: str  # "video" | "audio" | ...
    pts: float | None
    duration: float | None
    pos: int | None
    size: int
    key: bool


@dataclass(frozen=True)
class Probe:
    streams: list[dict[str, Any]]
    packets: list[Packet]

    def of(self, kind: str) -> list[Packet]:
        return [p for p in self.packets if p.kind == kind]


@dataclass(frozen=True)
class Rendition:
    playlist_path: Path
    playlist: playlists.MediaPlaylist
    init_uri: str | None
    init_size: int
    segments: tuple[SegmentFile, ...]

    @property
    def folder(self) -> Path:
        return self.playlist_path.parent

    @property
    def concat_url(self) -> str:
        """The rendition as one input for ffmpeg/ffprobe (relative names: run in :attr:`folder`)."""
        parts = ([self.init_uri] if self.init_uri else []) + [s.uri for s in self.segments]
        return "concat:" + "|".join(parts)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    def locate(self, pos: int) -> tuple[int, int] | None:
        """(segment index, offset inside that segment file) of a byte of the concatenation."""
        for index, seg in enumerate(self.segments):
            if seg.offset <= pos < seg.offset + seg.size:
                return index, pos - seg.offset
        return None


def load(playlist_path: Path) -> Rendition:
    """Read a media playlist and stat every file it names; RenditionError when one is missing."""
    if not playlist_path.is_file():
        raise RenditionError(f"{playlist_path.name} is missing")
    try:
        playlist = playlists.parse_media(playlist_path.read_text())
    except ValueError as err:
        raise RenditionError(f"{playlist_path.name}: {err}") from err
    folder = playlist_path.parent
    init_uri = playlist.map_uri
    init_size = 0
    if init_uri:
        init_size = _size(folder, init_uri)
    offset = init_size
    segments: list[SegmentFile] = []
    for seg in playlist.segments:
        if not seg.uri or "://" in seg.uri or seg.uri.startswith("/"):
            raise RenditionError(f"segment URI {seg.uri!r} must be a relative file name")
        size = _size(folder, seg.uri)
        segments.append(SegmentFile(seg.uri, folder / seg.uri, seg.duration, offset, size))
        offset += size
    if not segments:
        raise RenditionError("the playlist lists no segments")
    return Rendition(playlist_path, playlist, init_uri, init_size, tuple(segments))


def _size(folder: Path, uri: str) -> int:
    path = folder / uri
    if not path.is_file():
        raise RenditionError(f"{uri} is missing")
    return path.stat().st_size


def probe(rendition: Rendition) -> Probe:
    """Streams and every packet of the rendition (demuxed, not decoded: cheap)."""
    args = [
        FFPROBE,
        "-v",
        "error",
        "-show_streams",
        "-show_packets",
        "-show_entries",
        "stream=index,codec_type,codec_name,profile,level,width,height,sample_aspect_ratio"
        ":packet=stream_index,pts_time,duration_time,pos,size,flags",
        "-of",
        "compact",
        rendition.concat_url,
    ]
    proc = subprocess.run(args, cwd=rendition.folder, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise RenditionError(f"ffprobe cannot read it: {last[0][:200]}")
    streams: list[dict[str, Any]] = []
    rows: list[dict[str, str]] = []
    for line in proc.stdout.splitlines():
        section, _, rest = line.partition("|")
        fields = dict(part.split("=", 1) for part in rest.split("|") if "=" in part)
        if section == "stream" and "index" in fields:
            if not any(s["index"] == fields["index"] for s in streams):  # TS: once more per program
                streams.append(fields)
        elif section == "packet":
            rows.append(fields)
    kinds = {int(s["index"]): s.get("codec_type", "") for s in streams}
    packets: list[Packet] = []
    last_pos: dict[int, int] = {}
    for r in rows:
        stream = int(r["stream_index"])
        pos = int(r["pos"]) if r.get("pos", "N/A").isdigit() else None
        if pos is None:
            # TS carries several audio frames in one PES; the parser gives only the first its
            # position. The others are in the same bytes, so in the same segment.
            pos = last_pos.get(stream)
        elif stream in kinds:
            last_pos[stream] = pos
        packets.append(
            Packet(
                stream=stream,
                kind=kinds.get(stream, ""),
                pts=_number(r.get("pts_time")),
                duration=_number(r.get("duration_time")),
                pos=pos,
                size=int(r.get("size") or 0),
                key=r.get("flags", "").startswith("K"),
            )
        )
    return Probe(streams, packets)


def decode_errors(rendition: Rendition, threads: int, timeout: float | None = None) -> list[str]:
    """Decode every stream of the rendition to nowhere; ffmpeg's error lines (none: it decodes).

    Every slice is entropy-decoded (where corrupt data shows), but the deblocking filter is
    skipped: it cannot fail, and it is ~15% of H.264 decoding. Raises subprocess.TimeoutExpired
    (ffmpeg killed) after ``timeout`` seconds."""
    args = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-threads", str(threads), "-skip_loop_filter", "all"]
    args += ["-i", rendition.concat_url, "-map", "0", "-f", "null", "-"]
    proc = subprocess.run(args, cwd=rendition.folder, capture_output=True, text=True, timeout=timeout)
    errors = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0 and not errors:
        errors = [f"ffmpeg exited with code {proc.returncode}"]
    return errors


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


#: ffprobe codec name -> RFC 6381 family, for codecs whose full string we do not derive.
_FAMILIES = {
    "hevc": ("hvc1", "hev1"),
    "av1": ("av01",),
    "vp9": ("vp09",),
    "ac3": ("ac-3",),
    "eac3": ("ec-3",),
    "opus": ("Opus", "opus"),
    "flac": ("fLaC",),
    "mp3": ("mp4a.40.34", "mp4a.6b"),
}
_AAC = {"lc": "mp4a.40.2", "he-aac": "mp4a.40.5", "he-aacv2": "mp4a.40.29"}


def codec_matches(stream: dict[str, Any], declared: str) -> bool:
    """Whether the RFC 6381 ``declared`` entry of a CODECS attribute describes ``stream``."""
    name = str(stream.get("codec_name", ""))
    if name == "h264":
        level = int(float(stream.get("level") or -1))
        return level > 0 and declared == hls.avc1_codec(str(stream.get("profile", "")), level)
    if name == "aac":
        return declared == _AAC.get(str(stream.get("profile", "")).lower(), "mp4a.40.2")
    return declared.split(".", 1)[0] in _FAMILIES.get(name, ()) or declared in _FAMILIES.get(name, ())


def codec_string(stream: dict[str, Any]) -> str | None:
    """The RFC 6381 string of a stream when we can derive it (H.264, AAC), else None."""
    name = str(stream.get("codec_name", ""))
    if name == "h264":
        level = int(float(stream.get("level") or -1))
        return hls.avc1_codec(str(stream.get("profile", "")), level) if level > 0 else None
    if name == "aac":
        return _AAC.get(str(stream.get("profile", "")).lower(), "mp4a.40.2")
    return None
