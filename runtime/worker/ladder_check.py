"""The ladder check: before a ladder job becomes SUCCEEDED, every rendition is what the master says.

For each variant (``EXT-X-STREAM-INF``) and each audio rendition it names (``EXT-X-MEDIA
TYPE=AUDIO`` with a URI), read from disk and ffprobe, not from what the encoder was asked for:

* streams: every stream matches an entry of the variant's CODECS (RFC 6381, profile and level
  for H.264) and every entry matches a stream; RESOLUTION is the video's size in square pixels;
* BANDWIDTH is at least the measured peak (:func:`runtime.worker.hls.measure`) plus the largest
  peak in its audio group: RFC 8216 4.3.4.2, "the largest sum of peak segment bit rates that is
  produced by any playable combination of Renditions";
* every segment is there and decodes: ffmpeg decodes each rendition ONCE, its init section and
  segments concatenated (the bytes a player reads, in one process instead of one per segment),
  and any error it prints fails the check; and each segment holds the media time its EXTINF
  says, within :data:`SEGMENT_TOLERANCE_SECONDS` (a truncated segment holds less);
* the EXTINFs add up to the source's duration (of a stream of the kind the rendition carries)
  within :data:`DURATION_TOLERANCE_SECONDS`: a few frames, far less than one segment, so a
  missing or cut segment is caught however long the video is;
* I-frame playlists (``EXT-X-I-FRAME-STREAM-INF``) are I-frames-only, each byte range lies
  inside its segment, and BANDWIDTH is at least their peak.

Any problem raises JobFailure(PROCESSING_FAILED) naming the rendition (its URI in the master)
and what is wrong, so the runner records FAILED and publishes nothing.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffmpeg

from runtime.shared import hls as playlists
from runtime.shared.status import ErrorCode
from runtime.worker import ffmpeg_run, hls, renditions, sandbox
from runtime.worker.errors import JobFailure
from runtime.worker.renditions import Probe, Rendition, RenditionError

#: |sum of EXTINF - source duration| allowed: AAC priming/padding and a frame or two of
#: rounding at 24-60 fps, while a missing 2 s segment (the shortest allowed) is well outside.
DURATION_TOLERANCE_SECONDS = 0.25
#: |media time in a segment - its EXTINF| allowed, plus two frame (or audio frame) durations.
SEGMENT_TOLERANCE_SECONDS = 0.05
#: Problems quoted in the job's error message (the rest are counted).
MAX_REPORTED = 5


@dataclass
class _Checked:
    """One rendition read and probed, with what is wrong with it."""

    name: str
    rendition: Rendition | None = None
    probe: Probe | None = None
    peak: int = 0
    problems: list[str] = field(default_factory=list)


def check_ladder(master_path: Path, source: Path, threads: int = 1, deadline: float | None = None) -> None:
    """Raise JobFailure(PROCESSING_FAILED) unless the ladder under ``master_path`` is sound."""
    problems = ladder_problems(master_path, source, threads, deadline)
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise JobFailure(
            ErrorCode.PROCESSING_FAILED, f"the HLS ladder failed its check and was not published: {shown}{more}"
        )


def ladder_problems(master_path: Path, source: Path, threads: int = 1, deadline: float | None = None) -> list[str]:
    """Everything wrong with the ladder, each naming the rendition; empty when it is sound."""
    try:
        master = playlists.parse_master(master_path.read_text())
    except (OSError, ValueError) as err:
        return [f"master.m3u8 cannot be read: {err}"]
    if not master.variants:
        return ["master.m3u8 lists no variants"]
    folder = master_path.parent
    durations = _source_durations(source)
    groups: dict[str, list[_Checked]] = {}
    problems: list[str] = []
    for media in master.audio:
        label = f"audio rendition {media.uri} ({media.group_id}/{media.name or media.language or '?'})"
        checked = _check_rendition(label, folder, media.uri, durations, threads, deadline)
        groups.setdefault(media.group_id, []).append(checked)
        problems += checked.problems
    by_folder: dict[str, _Checked] = {}
    for variant in master.variants:
        checked = _check_rendition(variant.uri, folder, variant.uri, durations, threads, deadline)
        problems += checked.problems
        if checked.probe is None:
            continue
        by_folder[posixpath.dirname(variant.uri)] = checked
        audio = variant.audio_group
        group = groups.get(audio, []) if audio else []
        if audio and audio not in groups:
            problems.append(f'{variant.uri}: AUDIO="{audio}" names no EXT-X-MEDIA group')
        problems += _codec_problems(variant.uri, variant.codecs, checked, group)
        problems += _resolution_problems(variant.uri, variant.resolution, checked.probe)
        needed = checked.peak + max((g.peak for g in group), default=0)
        if variant.bandwidth < needed:
            with_audio = " with its audio group" if group else ""
            problems.append(
                f"{variant.uri}: BANDWIDTH={variant.bandwidth or None} is below its measured peak{with_audio}"
                f" of {needed} b/s"
            )
    for iframe in master.iframes:
        problems += _iframe_problems(folder, iframe, by_folder.get(posixpath.dirname(iframe.uri)))
    return problems


def _check_rendition(
    name: str, folder: Path, uri: str, durations: dict[str, list[float]], threads: int, deadline: float | None
) -> _Checked:
    checked = _Checked(name)
    try:
        rendition = renditions.load(folder / uri)
        probed = renditions.probe(rendition)
    except (RenditionError, OSError, ValueError) as err:
        checked.problems.append(f"{name}: {err}")
        return checked
    checked.rendition, checked.probe = rendition, probed
    if not rendition.playlist.ended:
        checked.problems.append(f"{name}: the playlist has no EXT-X-ENDLIST (a VOD ladder must be complete)")
    checked.peak = hls.measure(rendition.playlist_path)[0]
    kinds = {s.get("codec_type") for s in probed.streams}
    main = "video" if "video" in kinds else "audio"
    checked.problems += _segment_problems(name, rendition, probed, main)
    expected = [d for kind in ("video", "audio") if kind in kinds for d in durations.get(kind, [])]
    if expected and not any(abs(rendition.duration - d) <= DURATION_TOLERANCE_SECONDS for d in expected):
        closest = min(expected, key=lambda d: abs(rendition.duration - d))
        checked.problems.append(
            f"{name}: its segments add up to {rendition.duration:.3f} s but the source is {closest:.3f} s"
            f" (tolerance {DURATION_TOLERANCE_SECONDS} s)"
        )
    timeout = None if deadline is None else max(1.0, deadline - time.monotonic())
    try:
        errors = renditions.decode_errors(rendition, threads, timeout)
    except subprocess.TimeoutExpired as err:
        raise JobFailure(ErrorCode.TIMEOUT, "processing took longer than the worker's time limit") from err
    if errors:
        checked.problems.append(f"{name}: does not decode: {errors[0][:200]}")
    return checked


def _segment_problems(name: str, rendition: Rendition, probed: Probe, kind: str) -> list[str]:
    """Each segment holds about the media time its EXTINF says (in its main stream's packets)."""
    packets = [p for p in probed.of(kind) if p.pos is not None and p.pts is not None]
    frame = sorted(p.duration or 0.0 for p in packets)[len(packets) // 2] if packets else 0.0
    tolerance = SEGMENT_TOLERANCE_SECONDS + 2 * frame
    spans: dict[int, tuple[float, float]] = {}
    for p in packets:
        assert p.pos is not None and p.pts is not None
        located = rendition.locate(p.pos)
        if located is None:
            continue
        lo, hi = spans.get(located[0], (p.pts, p.pts))
        spans[located[0]] = (min(lo, p.pts), max(hi, p.pts + (p.duration or frame)))
    problems = []
    for index, seg in enumerate(rendition.segments):
        if index not in spans:
            problems.append(f"{name}: segment {seg.uri} holds no {kind}")
            continue
        held = spans[index][1] - spans[index][0]
        if abs(held - seg.duration) > tolerance:
            problems.append(
                f"{name}: segment {seg.uri} holds {held:.3f} s of {kind}, its EXTINF says {seg.duration:.3f} s"
            )
    return problems


def _codec_problems(name: str, codecs: str | None, checked: _Checked, group: list[_Checked]) -> list[str]:
    declared = [c.strip() for c in (codecs or "").split(",") if c.strip()]
    if not declared:
        return [f"{name}: lacks CODECS"]
    probes = [c.probe for c in [checked, *group] if c.probe is not None]
    streams = [s for p in probes for s in p.streams if s.get("codec_type") in ("video", "audio")]
    problems = []
    for stream in streams:
        if not any(renditions.codec_matches(stream, d) for d in declared):
            actual = renditions.codec_string(stream) or stream.get("codec_name", "?")
            problems.append(f'{name}: its {stream.get("codec_type")} is {actual}, not in CODECS="{codecs}"')
    for entry in declared:
        if not any(renditions.codec_matches(s, entry) for s in streams):
            problems.append(f'{name}: CODECS="{codecs}" lists {entry} but no stream of it is {entry}')
    return problems


def _resolution_problems(name: str, resolution: tuple[int, int] | None, probed: Probe) -> list[str]:
    video = next((s for s in probed.streams if s.get("codec_type") == "video"), None)
    if video is None:
        return [f"{name}: RESOLUTION={_res(resolution)} but it has no video"] if resolution else []
    size = (int(video.get("width") or 0), int(video.get("height") or 0))
    sar = str(video.get("sample_aspect_ratio") or "1:1")
    if resolution is None:
        return [f"{name}: lacks RESOLUTION (its video is {size[0]}x{size[1]})"]
    if tuple(resolution) != size:
        return [f"{name}: RESOLUTION={_res(resolution)} but its video is {size[0]}x{size[1]}"]
    if sar not in ("1:1", "0:1", "N/A"):
        return [f"{name}: its video has sample aspect ratio {sar}; RESOLUTION must be in square pixels"]
    return []


def _res(resolution: tuple[int, int] | None) -> str:
    return "x".join(str(v) for v in resolution) if resolution else "none"


def _iframe_problems(folder: Path, iframe: playlists.IFrameStream, variant: _Checked | None) -> list[str]:
    name = iframe.uri
    path = folder / name
    if not path.is_file():
        return [f"{name}: is missing"]
    try:
        playlist = playlists.parse_media(path.read_text())
    except ValueError as err:
        return [f"{name}: {err}"]
    if not playlist.i_frames_only:
        return [f"{name}: lacks EXT-X-I-FRAMES-ONLY"]
    if not playlist.segments:
        return [f"{name}: lists no I-frames"]
    problems = []
    rates = []
    for seg in playlist.segments:
        byterange = seg.byterange
        target = path.parent / seg.uri
        if byterange is None or byterange.offset is None or not target.is_file():
            problems.append(f"{name}: entry {seg.uri} needs a file and a LENGTH@OFFSET byte range")
            continue
        length, offset = byterange.length, byterange.offset
        if length <= 0 or offset + length > target.stat().st_size:
            problems.append(f"{name}: byte range {length}@{offset} lies outside {seg.uri}")
        if seg.duration:
            rates.append(length * 8 / seg.duration)
    if rates and iframe.bandwidth < max(rates):
        problems.append(
            f"{name}: BANDWIDTH={iframe.bandwidth or None} is below its measured peak of {int(max(rates))} b/s"
        )
    if variant is not None and variant.probe is not None:
        problems += _resolution_problems(name, iframe.resolution, variant.probe)
    return problems


def _source_durations(source: Path) -> dict[str, list[float]]:
    """Durations of the source's video and audio streams, each kind with the container's too: a
    stream's own duration may be missing or differ from the timeline ffmpeg actually reads."""
    try:
        options = sandbox.ffmpeg_input_options(sandbox.video_format(source))
        data = ffmpeg_run.probe(str(source), **options)
    except (ffmpeg.Error, JobFailure):
        return {}
    overall = _seconds(data.get("format", {}).get("duration"))
    found: dict[str, list[float]] = {}
    for stream in data.get("streams", []):
        kind = stream.get("codec_type")
        if kind not in ("video", "audio") or stream.get("disposition", {}).get("attached_pic"):
            continue
        seconds = _seconds(stream.get("duration")) or _seconds(stream.get("tags", {}).get("DURATION")) or overall
        if seconds:
            found.setdefault(kind, []).append(seconds)
    for durations in found.values():
        if overall and overall not in durations:
            durations.append(overall)
    return found


def _seconds(value: Any) -> float | None:
    """A duration as ffprobe writes it: seconds, or ``HH:MM:SS.fraction`` (Matroska tags)."""
    if value in (None, "", "N/A"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", str(value))
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3)) if match else None
