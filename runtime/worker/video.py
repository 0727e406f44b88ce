"""Video jobs with ffmpeg: probe, limits, the HLS ladder, a single MP4 and a poster frame.

The ladder is ONE ffmpeg process: the source is decoded once, ``split`` feeds one ``scale``
per rung, and each rung is an H.264 encoder with a capped CRF (``-crf`` plus per-rung
``-maxrate``/``-bufsize``), so quality adapts to content while every rung's peak stays
bounded; the HLS muxer writes every variant in the same pass (``-var_stream_map``).
ffmpeg applies the display-matrix rotation while decoding (a portrait phone clip stays
portrait), so all planning is done on the displayed size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from runtime.shared.contract import OperationModel, Poster, Transcode, TranscodeResolution
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker import hls
from runtime.worker.errors import JobFailure
from runtime.worker.ffmpeg_run import run_ffmpeg
from runtime.worker.outputs import LocalOutput

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
#: libx264 speed/quality trade-off for every encode (veryfast: ~2x faster than fast, small loss).
PRESET = "veryfast"
CRF = 23
AUDIO_SAMPLE_RATE = 48000

#: fraction of the job done (0..1) -> None; may raise Cancelled.
Progress = Callable[[float], None]


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about the input, with the size as displayed (rotation applied)."""

    duration: float
    width: int
    height: int
    rotation: int
    has_audio: bool
    fps: float
    codec: str

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation % 180 == 90 else (self.width, self.height)


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder; ``name`` is its folder (``720p``: the short side)."""

    name: str
    width: int
    height: int
    maxrate_kbps: int
    audio_kbps: int

    @property
    def bufsize_kbps(self) -> int:
        return 2 * self.maxrate_kbps


# --- probe and limits ------------------------------------------------------------------------


def probe(path: Path) -> VideoInfo:
    """ffprobe ``path``; unreadable or non-video inputs raise JobFailure with a clear message."""
    try:
        data = ffmpeg.probe(str(path), cmd=FFPROBE)
    except ffmpeg.Error as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise JobFailure(
            ErrorCode.INPUT_UNREADABLE,
            "the video cannot be read (corrupt, truncated or not a video file): "
            + (detail[-1][:300] if detail else "ffprobe failed"),
        ) from err
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    if video is None:
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "the file has no video stream; upload a video file")
    container = str(data.get("format", {}).get("format_name", ""))
    if container == "image2" or container.endswith("_pipe"):
        raise JobFailure(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the file is a still image ({video.get('codec_name', container)}), not a video; submit it as an IMAGE job",
        )
    duration = _float(data.get("format", {}).get("duration")) or _float(video.get("duration"))
    if not duration or duration <= 0:
        raise JobFailure(ErrorCode.INPUT_UNREADABLE, "the video's duration cannot be determined (damaged file?)")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise JobFailure(ErrorCode.INPUT_UNREADABLE, "the video stream has no frame size (damaged file?)")
    return VideoInfo(
        duration=duration,
        width=width,
        height=height,
        rotation=_rotation(video),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        fps=_fps(video.get("avg_frame_rate")) or _fps(video.get("r_frame_rate")) or 25.0,
        codec=str(video.get("codec_name", "unknown")),
    )


def _is_cover_art(stream: dict[str, Any]) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fps(value: Any) -> float | None:
    try:
        num, _, den = str(value).partition("/")
        rate = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if 0 < rate <= 240 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    return int(_float(stream.get("tags", {}).get("rotate")) or 0) % 360


def check_limits(info: VideoInfo, limits: Limits) -> None:
    if info.duration > limits.max_video_duration_seconds:
        raise JobFailure(
            ErrorCode.LIMIT_EXCEEDED,
            f"video is {info.duration:,.1f} s long; the limit is {limits.max_video_duration_seconds:,} s",
        )
    pixels = info.width * info.height
    if pixels > limits.max_video_pixels:
        raise JobFailure(
            ErrorCode.LIMIT_EXCEEDED,
            f"video frame is {info.width}x{info.height} = {pixels:,} pixels; the limit is {limits.max_video_pixels:,}",
        )


# --- ladder planning (pure) ----------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def peak_kbps(width: int, height: int, fps: float = 30.0) -> int:
    """A per-rung peak bitrate cap for H.264: 5 Mb/s at 1080p30, scaled by pixels^0.75
    (720p 2.7, 480p 1.5, 360p 0.96, 1440p 7.7, 2160p 14 Mb/s), +50% above 30 fps."""
    kbps = 5000 * ((width * height) / (1920 * 1080)) ** 0.75
    if fps > 31:
        kbps *= 1.5
    return max(200, round(kbps / 10) * 10)


def plan_ladder(width: int, height: int, heights: tuple[int, ...], fps: float = 30.0) -> list[Rung]:
    """Rungs for a displayed ``width`` x ``height`` source: each requested rung whose short
    side is at most the source's (never upscale), aspect kept, even dimensions. A source
    smaller than every requested rung gets one rung at its own size."""
    short = min(width, height)
    portrait = height > width
    chosen = sorted({h for h in heights if h <= short}, reverse=True) or [_even(short) if short >= 2 else 2]
    rungs = []
    for p in chosen:
        long_side = _even(max(width, height) * p / short)
        w, h = (p, long_side) if portrait else (long_side, p)
        rungs.append(Rung(f"{p}p", w, h, peak_kbps(w, h, fps), 128 if p >= 720 else 96))
    return rungs


def plan_single(info: VideoInfo, op: TranscodeResolution) -> tuple[int, int]:
    """Output size for transcode-resolution: ``height`` is the short side (aspect kept), or
    exactly width x height; never larger than the source."""
    width, height = info.display_size
    if op.width is not None:
        scale = min(1.0, width * height / (op.width * op.height)) ** 0.5
        return _even(op.width * scale), _even(op.height * scale)
    short = min(width, height)
    p = min(op.height, short)
    long_side = _even(max(width, height) * p / short)
    return (_even(p), long_side) if height > width else (long_side, _even(p))


# --- command building -------------------------------------------------------------------------


def available_cpus() -> int:
    """CPUs this container may use: the cgroup quota (Fargate, docker --cpus), else the
    affinity mask. ffmpeg would otherwise size its thread pools from the HOST's core count,
    which in a 2-vCPU task on a large host means hundreds of threads and frame buffers."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0:
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)))


def _global(cmd: Any) -> Any:
    return cmd.global_args(
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "warning",
        "-filter_complex_threads",
        str(available_cpus()),
        "-progress",
        "pipe:1",
    )


def ladder_command(source: Path, out_dir: Path, info: VideoInfo, rungs: list[Rung], op: Transcode) -> list[str]:
    """ffmpeg arguments for the whole ladder in one process."""
    fmp4 = op.segment_type == "fmp4"
    gop = max(1, round(info.fps * op.segment_seconds))
    inp = ffmpeg.input(str(source), threads=available_cpus())
    split = inp.video.filter_multi_output("split", len(rungs))
    streams: list[Any] = []
    per_stream: dict[str, Any] = {}
    stream_map = []
    for i, rung in enumerate(rungs):
        scaled = (
            split.stream(i).filter("scale", rung.width, rung.height).filter("setsar", 1).filter("format", "yuv420p")
        )
        streams.append(scaled)
        per_stream[f"maxrate:v:{i}"] = f"{rung.maxrate_kbps}k"
        per_stream[f"bufsize:v:{i}"] = f"{rung.bufsize_kbps}k"
        if info.has_audio:
            streams.append(inp.audio)
            per_stream[f"b:a:{i}"] = f"{rung.audio_kbps}k"
            stream_map.append(f"v:{i},a:{i},name:{rung.name}")
        else:
            stream_map.append(f"v:{i},name:{rung.name}")
    options: dict[str, Any] = {
        "c:v": "libx264",
        "preset": PRESET,
        "crf": CRF,
        "threads": available_cpus(),  # per encoder
        "profile:v": "high",
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": 0,
        "force_key_frames": f"expr:gte(t,n_forced*{op.segment_seconds})",
        **per_stream,
        "f": "hls",
        "hls_time": op.segment_seconds,
        "hls_playlist_type": "vod",
        "hls_list_size": 0,
        "hls_flags": "independent_segments",
        "hls_segment_type": "fmp4" if fmp4 else "mpegts",
        "hls_segment_filename": str(out_dir / "%v" / ("seg_%05d.m4s" if fmp4 else "seg_%05d.ts")),
        "start_number": 1,
        "var_stream_map": " ".join(stream_map),
    }
    if info.has_audio:
        options.update({"c:a": "aac", "ac": 2, "ar": AUDIO_SAMPLE_RATE})
    if fmp4:
        options["hls_fmp4_init_filename"] = "init.mp4"
    out = ffmpeg.output(*streams, str(out_dir / "%v" / "index.m3u8"), **options)
    return _global(out).overwrite_output().compile(cmd=FFMPEG)


def mp4_command(source: Path, target: Path, info: VideoInfo, width: int, height: int) -> list[str]:
    inp = ffmpeg.input(str(source), threads=available_cpus())
    video = inp.video.filter("scale", width, height).filter("setsar", 1).filter("format", "yuv420p")
    streams = [video, inp.audio] if info.has_audio else [video]
    options: dict[str, Any] = {
        "c:v": "libx264",
        "preset": PRESET,
        "crf": CRF,
        "threads": available_cpus(),  # per encoder
        "profile:v": "high",
        "maxrate": f"{peak_kbps(width, height, info.fps)}k",
        "bufsize": f"{2 * peak_kbps(width, height, info.fps)}k",
        "movflags": "+faststart",
    }
    if info.has_audio:
        options.update({"c:a": "aac", "b:a": "128k", "ac": 2, "ar": AUDIO_SAMPLE_RATE})
    return _global(ffmpeg.output(*streams, str(target), **options)).overwrite_output().compile(cmd=FFMPEG)


def poster_command(source: Path, target: Path, at: float, width: int | None) -> list[str]:
    inp = ffmpeg.input(str(source), ss=f"{at:.3f}")
    video = inp.video
    if width:
        video = video.filter("scale", _even(width), -2)
    out = ffmpeg.output(video, str(target), vframes=1, **{"q:v": 2, "update": 1})
    return _global(out).overwrite_output().compile(cmd=FFMPEG)


# --- running ------------------------------------------------------------------------------------


def _check(result_code: int, stderr: str, what: str) -> None:
    """Map ffmpeg's exit and warnings to a job failure a user can act on."""
    lowered = stderr.lower()
    if "partial file" in lowered or "moov atom not found" in lowered:
        raise JobFailure(
            ErrorCode.INPUT_UNREADABLE, "the video file is truncated (incomplete upload?); upload it again"
        )
    if result_code != 0:
        last = [line for line in stderr.strip().splitlines() if line.strip()]
        detail = last[-1][:300] if last else f"exit code {result_code}"
        if "invalid data" in lowered or "could not find codec" in lowered or "decoder" in lowered:
            raise JobFailure(ErrorCode.INPUT_UNREADABLE, f"the video cannot be decoded while {what}: {detail}")
        raise JobFailure(ErrorCode.PROCESSING_FAILED, f"ffmpeg failed while {what}: {detail}")


def _seconds_hook(duration: float, progress: Progress | None) -> Callable[[float], None] | None:
    if progress is None:
        return None
    return lambda seconds: progress(min(1.0, seconds / duration) if duration > 0 else 0.0)


def transcode_hls(
    source: Path,
    work: Path,
    info: VideoInfo,
    op: Transcode,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> list[LocalOutput]:
    """The ladder: run ffmpeg once, then measure each rendition and write the master."""
    out_dir = work / "hls"
    width, height = info.display_size
    rungs = plan_ladder(width, height, op.renditions, info.fps)
    for rung in rungs:
        (out_dir / rung.name).mkdir(parents=True, exist_ok=True)
    args = ladder_command(source, out_dir, info, rungs, op)
    result = run_ffmpeg(args, work / "ffmpeg-hls.log", _seconds_hook(info.duration, progress), deadline)
    _check(result.returncode, result.stderr, "encoding the HLS ladder")
    outputs: list[LocalOutput] = []
    variants: list[hls.Variant] = []
    fmp4 = op.segment_type == "fmp4"
    for rung in rungs:
        folder = out_dir / rung.name
        playlist_path = folder / "index.m3u8"
        playlist = hls.parse_media_playlist(playlist_path.read_text())
        peak, average = hls.measure(playlist_path)
        first = str(folder / playlist.segments[0].uri)
        if playlist.map_uri:  # an init segment alone has no frames: ffprobe reports level -99
            first = f"concat:{folder / playlist.map_uri}|{first}"
        codecs = _codecs(first, info.has_audio)
        variants.append(
            hls.Variant(f"{rung.name}/index.m3u8", rung.width, rung.height, codecs, peak, average, info.fps)
        )
        for seg in playlist.segments:
            outputs.append(LocalOutput(folder / seg.uri, f"hls/{rung.name}/{seg.uri}", None, _segment_mime(fmp4)))
        if playlist.map_uri:
            outputs.append(
                LocalOutput(folder / playlist.map_uri, f"hls/{rung.name}/{playlist.map_uri}", None, "video/mp4")
            )
        duration = sum(s.duration for s in playlist.segments)
        outputs.append(
            LocalOutput(
                playlist_path,
                f"hls/{rung.name}/index.m3u8",
                OutputRole.HLS_RENDITION,
                HLS_MIME,
                rung.width,
                rung.height,
                duration,
                peak,
            )
        )
    master = out_dir / "master.m3u8"
    master.write_text(hls.write_master(variants, version=7 if fmp4 else 6))
    hls.validate_master(master.read_text())
    top = max(variants, key=lambda v: v.height * v.width)
    outputs.append(
        LocalOutput(
            master,
            "hls/master.m3u8",
            OutputRole.HLS_MASTER,
            HLS_MIME,
            top.width,
            top.height,
            info.duration,
            top.peak_bps,
        )
    )
    return outputs


HLS_MIME = "application/vnd.apple.mpegurl"


def _segment_mime(fmp4: bool) -> str:
    return "video/iso.segment" if fmp4 else "video/mp2t"


def _codecs(media: str, has_audio: bool) -> str:
    data = ffmpeg.probe(media, cmd=FFPROBE)
    video = next(s for s in data["streams"] if s.get("codec_type") == "video")
    codec = hls.avc1_codec(str(video.get("profile", "High")), int(video.get("level", 40)))
    return f"{codec},mp4a.40.2" if has_audio else codec


def transcode_mp4(
    source: Path,
    work: Path,
    info: VideoInfo,
    op: TranscodeResolution,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> list[LocalOutput]:
    width, height = plan_single(info, op)
    target = work / f"video_{min(width, height) if op.width is None else height}p.mp4"
    args = mp4_command(source, target, info, width, height)
    result = run_ffmpeg(args, work / "ffmpeg-mp4.log", _seconds_hook(info.duration, progress), deadline)
    _check(result.returncode, result.stderr, "encoding the MP4")
    out = probe(target)
    bitrate = int(target.stat().st_size * 8 / out.duration) if out.duration else None
    return [LocalOutput(target, target.name, OutputRole.MP4, "video/mp4", width, height, out.duration, bitrate)]


def make_poster(
    source: Path,
    work: Path,
    info: VideoInfo,
    op: Poster,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> list[LocalOutput]:
    """A JPEG of the frame at ``at_seconds``, clamped inside the video (the last whole frame)."""
    target = work / "poster.jpg"
    last_frame = max(0.0, info.duration - 2.0 / (info.fps or 25.0))
    at = min(max(0.0, op.at_seconds), last_frame)
    for attempt in (at, 0.0):  # a seek past the last decodable frame writes nothing: fall back
        result = run_ffmpeg(
            poster_command(source, target, attempt, op.width), work / "ffmpeg-poster.log", None, deadline
        )
        _check(result.returncode, result.stderr, "extracting the poster frame")
        if target.exists() and target.stat().st_size > 0:
            break
    else:
        raise JobFailure(ErrorCode.PROCESSING_FAILED, "no frame could be decoded for the poster")
    if progress is not None:
        progress(1.0)
    import pyvips

    image = pyvips.Image.new_from_file(str(target))
    return [LocalOutput(target, "poster.jpg", OutputRole.POSTER, "image/jpeg", image.width, image.height)]


@dataclass(frozen=True)
class VideoStep:
    """An operation's implementation and its relative cost, which apportions progress (per unit
    of duration) among the job's operations."""

    run: Callable[..., list[LocalOutput]]
    cost: float


#: contract model -> its implementation: one each (tests/worker/test_registry.py checks both ways)
VIDEO_OPERATIONS: dict[type[OperationModel], VideoStep] = {
    Transcode: VideoStep(transcode_hls, 10.0),
    TranscodeResolution: VideoStep(transcode_mp4, 4.0),
    Poster: VideoStep(make_poster, 0.2),
}


def process_video(
    source: Path,
    work: Path,
    operations: Sequence[OperationModel],
    limits: Limits,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> list[LocalOutput]:
    """Probe, check limits, then run each operation in order; progress is spread by cost."""
    info = probe(source)
    check_limits(info, limits)
    steps = [VIDEO_OPERATIONS[type(op)] for op in operations]
    total = sum(step.cost for step in steps) or 1.0
    outputs: list[LocalOutput] = []
    done = 0.0
    for op, step in zip(operations, steps, strict=True):
        base = done

        def hook(fraction: float, base: float = base, weight: float = step.cost) -> None:
            if progress is not None:
                progress((base + weight * fraction) / total)

        outputs += step.run(source, work, info, op, hook, deadline)
        done += step.cost
    return outputs
