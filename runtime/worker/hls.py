"""HLS playlists: read variant playlists, measure real bitrates, write and validate the master.

ffmpeg's own master playlist guesses BANDWIDTH from encoder settings; we measure it instead:
BANDWIDTH is the peak segment bitrate (bytes x 8 / duration of the largest-rate segment) and
AVERAGE-BANDWIDTH the mean over the whole rendition, both as RFC 8216 defines them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int
    segments: tuple[Segment, ...]
    map_uri: str | None
    ended: bool


@dataclass(frozen=True)
class Variant:
    uri: str
    width: int
    height: int
    codecs: str
    peak_bps: int
    average_bps: int
    frame_rate: float | None = None


def parse_media_playlist(text: str) -> MediaPlaylist:
    target = 0
    segments: list[Segment] = []
    map_uri: str | None = None
    pending: float | None = None
    ended = False
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-MAP:"):
            map_uri = parse_attributes(line.split(":", 1)[1]).get("URI")
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif line and not line.startswith("#"):
            if pending is None:
                raise ValueError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(line, pending))
            pending = None
    return MediaPlaylist(target, tuple(segments), map_uri, ended)


def parse_attributes(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in _ATTR.findall(text)}


def measure(playlist_path: Path) -> tuple[int, int]:
    """(peak, average) bits per second of the rendition whose playlist is ``playlist_path``.

    A final segment shorter than half the target duration is left out of the peak: a
    fraction-of-a-second tail holding one keyframe overstates what a player must sustain.
    """
    playlist = parse_media_playlist(playlist_path.read_text())
    if not playlist.segments:
        raise ValueError(f"{playlist_path} lists no segments")
    folder = playlist_path.parent
    rates: list[float] = []
    total_bits = 0
    total_seconds = 0.0
    for index, seg in enumerate(playlist.segments):
        bits = (folder / seg.uri).stat().st_size * 8
        total_bits += bits
        total_seconds += seg.duration
        is_short_tail = (
            index == len(playlist.segments) - 1 and index > 0 and seg.duration < playlist.target_duration / 2
        )
        if seg.duration > 0 and not is_short_tail:
            rates.append(bits / seg.duration)
    average = total_bits / total_seconds if total_seconds else 0.0
    return int(max(rates or [average])), int(average)


def write_master(variants: list[Variant], version: int) -> str:
    """The master playlist, highest rung first, every URI relative to the master's folder."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.peak_bps, reverse=True):
        attrs = [
            f"BANDWIDTH={v.peak_bps}",
            f"AVERAGE-BANDWIDTH={v.average_bps}",
            f"RESOLUTION={v.width}x{v.height}",
            f'CODECS="{v.codecs}"',
        ]
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"


def validate_master(text: str) -> list[dict[str, str]]:
    """Each variant's attributes plus ``URI``; raises ValueError on a malformed master."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("a master playlist starts with #EXTM3U")
    variants: list[dict[str, str]] = []
    for index, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:"):
            continue
        attrs = parse_attributes(line.split(":", 1)[1])
        missing = {"BANDWIDTH", "RESOLUTION", "CODECS"} - set(attrs)
        if missing:
            raise ValueError(f"variant {len(variants)} lacks {sorted(missing)}")
        if index + 1 >= len(lines) or lines[index + 1].startswith("#"):
            raise ValueError(f"variant {len(variants)} has no URI line")
        uri = lines[index + 1]
        if "://" in uri or uri.startswith("/"):
            raise ValueError(f"variant URI {uri!r} must be relative")
        variants.append({**attrs, "URI": uri})
    if not variants:
        raise ValueError("the master playlist lists no variants")
    return variants


def avc1_codec(profile: str, level: int) -> str:
    """RFC 6381 codec string (``avc1.64001f``) from ffprobe's profile name and level."""
    prefixes = {
        "constrained baseline": "42e0",
        "baseline": "4200",
        "main": "4d40",
        "extended": "5800",
        "high": "6400",
        "high 10": "6e00",
        "high 4:2:2": "7a00",
        "high 4:4:4 predictive": "f400",
    }
    return f"avc1.{prefixes.get(profile.strip().lower(), '6400')}{int(level):02x}"
