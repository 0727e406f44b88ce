"""What the worker measures in the HLS it writes: real bitrates and RFC 6381 codec strings.

Playlists themselves (parsing, the master's text) belong to runtime.shared.hls. ffmpeg's own
master playlist guesses BANDWIDTH from encoder settings; we measure it instead: BANDWIDTH is
the peak segment bitrate (bytes x 8 / duration of the largest-rate segment) and
AVERAGE-BANDWIDTH the mean over the whole rendition, both as RFC 8216 defines them.
"""

from __future__ import annotations

from pathlib import Path

from runtime.shared import hls


def measure(playlist_path: Path) -> tuple[int, int]:
    """(peak, average) bits per second of the rendition whose playlist is ``playlist_path``.

    A final segment shorter than half the target duration is left out of the peak: a
    fraction-of-a-second tail holding one keyframe overstates what a player must sustain.
    The peak is never below the average (which does count that tail).
    """
    playlist = hls.parse_media(playlist_path.read_text())
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
    return int(max([*rates, average])), int(average)


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
