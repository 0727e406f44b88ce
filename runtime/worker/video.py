"""Video jobs with ffmpeg: probe, limits, the HLS ladder, a single MP4 and a poster frame.

The ladder is ONE ffmpeg process. The source is decoded once and prepared once for every
rung: deinterlaced (``bwdif``, at field rate) when interlaced, made constant-frame-rate
(``fps``, capped at :data:`MAX_FPS`), tone-mapped to SDR BT.709 when HDR (``zscale`` +
``tonemap``). Then each rung is scaled from the rung above it (cheaper than scaling every
rung from the source, at no measurable SSIM cost: bench/ladder.py) into square pixels at
the source's display aspect, and encoded by its own H.264 encoder with a capped CRF
(``-crf`` plus per-rung ``-maxrate``/``-bufsize``). Audio is encoded once per source track
into its own renditions (``EXT-X-MEDIA`` in one group), shared by every video variant; the
HLS muxer writes every playlist in the same pass (``-var_stream_map``). Keyframes are forced
on segment boundaries from the same constant-rate frames, so segments align across variants.

Geometry is planned on the displayed size: storage size x sample aspect ratio, with the
display-matrix rotation applied (ffmpeg rotates while decoding, so a portrait phone clip
stays portrait).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from runtime.shared import hls as playlists
from runtime.shared.contract import MediaFormat, OperationModel, Poster, Transcode, TranscodeResolution
from runtime.shared.repo.outputs import OutputRole
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker import ffmpeg_run, hls, sandbox
from runtime.worker.errors import JobFailure
from runtime.worker.ffmpeg_run import FFMPEG, FFPROBE, run_ffmpeg
from runtime.worker.outputs import LocalOutput

#: A stream or output node of an ffmpeg-python graph. The library has no type hints, so a node
#: is Any; :func:`_command` turns the finished graph into a typed argument list.
FfmpegNode = Any
#: libx264 speed/quality trade-off for every encode (veryfast: ~2x faster than fast, small loss).
PRESET = "veryfast"
CRF = 23
AUDIO_SAMPLE_RATE = 48000
#: every audio rendition: AAC-LC stereo (5.1 and mono are mixed to stereo) at this bitrate.
AUDIO_KBPS = 128
AUDIO_CODEC = "mp4a.40.2"
AUDIO_GROUP = "audio"
#: at most this many source audio tracks become renditions (the rest are left out).
MAX_AUDIO_TRACKS = 8
#: output frame rates above this are divided by the smallest integer that brings them under
#: it (120 -> 60, 100 -> 50, 240 -> 60): players and H.264 levels for phones stop at 60.
MAX_FPS = 60
#: the rates a measured average snaps to when it is within 1% (VFR phone clips average 29.9x).
STANDARD_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60")
)
#: ladder rungs are named by their box's short side; the box is 16:9 (1080p: 1920x1080).
BOX_ASPECT = Fraction(16, 9)
#: frames idet looks at when a source does not say whether it is interlaced (_field_order).
IDET_FRAMES = 60
INTERLACED_ORDERS = {"tt": "tff", "tb": "tff", "bb": "bff", "bt": "bff"}
HDR_TRANSFERS = {"smpte2084": "pq", "arib-std-b67": "hlg"}
#: ffprobe colour names -> the ones scale's in_color_matrix takes
_SCALE_MATRIX = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470", "fcc": "fcc", "smpte240m": "smpte240m"}

#: fraction of the job done (0..1) -> None; may raise Cancelled.
Progress = Callable[[float], None]


@dataclass(frozen=True)
class AudioTrack:
    """One source audio stream that becomes an audio rendition."""

    index: int  # among the source's audio streams: ffmpeg's ``0:a:{index}``
    name: str
    language: str | None  # RFC 5646 (``en``), None when the file does not say
    channels: int
    default: bool


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about the input. ``width`` x ``height`` is the storage size; see
    :attr:`display_size` for what a viewer sees."""

    duration: float
    width: int
    height: int
    rotation: int
    fps: float
    codec: str
    sar: Fraction = Fraction(1)
    field_order: str = "progressive"  # progressive | tt | bb | tb | bt | unknown
    transfer: str = "unknown"
    primaries: str = "unknown"
    matrix: str = "unknown"
    full_range: bool = False
    pix_fmt: str = "yuv420p"
    audio: tuple[AudioTrack, ...] = ()
    #: the video stream's index among ALL the file's streams: the one probed is the one every
    #: command maps (``0:{index}``); ``0:v:0`` would take a cover-art picture listed first
    stream_index: int = 0
    #: the container read from the file's bytes (runtime/worker/sandbox.py); None: sniff again
    container: MediaFormat | None = None

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    @property
    def display_size(self) -> tuple[int, int]:
        """Square-pixel size as shown: storage width x SAR, then the rotation."""
        width = max(1, round(self.width * self.sar))
        return (self.height, width) if self.rotation % 180 == 90 else (width, self.height)

    @property
    def hdr(self) -> str | None:
        """``"pq"`` (HDR10), ``"hlg"`` or None (SDR)."""
        return HDR_TRANSFERS.get(self.transfer)


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder; ``name`` is its folder (``720p``: its box's short side)."""

    name: str
    width: int
    height: int
    maxrate_kbps: int

    @property
    def bufsize_kbps(self) -> int:
        return 2 * self.maxrate_kbps


@dataclass(frozen=True)
class Prepared:
    """How the source's frames are made ready for every output (shared by all rungs)."""

    deinterlace: str | None  # bwdif parity ("tff"/"bff"/"auto") or None
    rate: Fraction  # constant output frame rate
    hdr: str | None

    @property
    def fps(self) -> float:
        return float(self.rate)


# --- probe and limits ------------------------------------------------------------------------


def probe(path: Path, *, head: bytes | None = None, protocols: str = sandbox.PROTOCOLS) -> VideoInfo:
    """ffprobe ``path`` with the demuxer its bytes name (never a guessed one); unreadable or
    non-video inputs raise JobFailure with a clear message. A URL (the API's pre-check) comes
    with its leading bytes (``head``) and :data:`sandbox.REMOTE_PROTOCOLS`."""
    container = sandbox.video_format(path, head)
    try:
        data = ffmpeg_run.probe(str(path), cmd=FFPROBE, **sandbox.ffmpeg_input_options(container, protocols))
    except ffmpeg.Error as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise JobFailure(
            ErrorCode.INPUT_UNREADABLE,
            "the video cannot be read (corrupt, truncated or not a video file): "
            + (detail[-1][:300] if detail else "ffprobe failed"),
        ) from err
    streams = data.get("streams", [])
    video = main_video_stream(streams)
    if video is None:
        raise JobFailure(ErrorCode.UNSUPPORTED_FORMAT, "the file has no video stream; upload a video file")
    duration = _float(data.get("format", {}).get("duration")) or _float(video.get("duration"))
    if not duration or duration <= 0:
        raise JobFailure(ErrorCode.INPUT_UNREADABLE, "the video's duration cannot be determined (damaged file?)")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    index = int(video.get("index") or 0)
    if width <= 0 or height <= 0:
        raise JobFailure(ErrorCode.INPUT_UNREADABLE, "the video stream has no frame size (damaged file?)")
    return VideoInfo(
        duration=duration,
        width=width,
        height=height,
        rotation=_rotation(video),
        fps=_frame_rate(video),
        codec=str(video.get("codec_name", "unknown")),
        sar=_ratio(video.get("sample_aspect_ratio")) or Fraction(1),
        field_order=_field_order(path, video, container, protocols, index),
        transfer=str(video.get("color_transfer") or "unknown"),
        primaries=str(video.get("color_primaries") or "unknown"),
        matrix=str(video.get("color_space") or "unknown"),
        full_range=video.get("color_range") == "pc" or str(video.get("pix_fmt", "")).startswith("yuvj"),
        pix_fmt=str(video.get("pix_fmt") or "unknown"),
        audio=_audio_tracks([s for s in streams if s.get("codec_type") == "audio"]),
        stream_index=index,
        container=container,
    )


def _is_cover_art(stream: dict[str, Any]) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def main_video_stream(streams: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The video stream ffmpeg itself would pick (fftools' automatic mapping): the largest
    frame, a stream flagged default counting 5 megapixels more; never a cover picture; the
    first of equals. A still or thumbnail track listed before the film is not the film."""
    candidates = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]

    def score(stream: dict[str, Any]) -> int:
        area = int(stream.get("width") or 0) * int(stream.get("height") or 0)
        return area + 5_000_000 * int(bool(stream.get("disposition", {}).get("default")))

    return max(candidates, key=score, default=None)


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
    return rate if 0 < rate <= 1000 else None


def _frame_rate(video: dict[str, Any]) -> float:
    """The stream's frame rate: its average, unless its base rate is a standard one within 2%
    of that average (a VFR phone clip averaging 29.92 was shot at 30)."""
    average, base = _fps(video.get("avg_frame_rate")), _fps(video.get("r_frame_rate"))
    standard = base is not None and any(abs(float(rate) - base) < 0.001 for rate in STANDARD_RATES)
    if average and base and standard and abs(base - average) <= average / 50:
        return base
    return average or base or 25.0


def _ratio(value: Any) -> Fraction | None:
    """``"32:27"`` -> Fraction(32, 27); None for ``0:1``, ``N/A`` and absurd ratios."""
    num, _, den = str(value or "").partition(":")
    try:
        ratio = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if Fraction(1, 10) <= ratio <= 10 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    return int(_float(stream.get("tags", {}).get("rotate")) or 0) % 360


def _language(tag: Any) -> tuple[str | None, str | None]:
    """(RFC 5646 tag, English name) of an ISO 639 language tag; (None, None) when unknown."""
    from iso639 import Language, LanguageNotFoundError

    text = str(tag or "").strip()
    if not text or text.lower() in ("und", "zxx", "mul", "mis"):
        return None, None
    try:
        lang = Language.match(text)
    except LanguageNotFoundError:
        return None, None
    return lang.part1 or lang.part3, lang.name


def _audio_tracks(streams: list[dict[str, Any]]) -> tuple[AudioTrack, ...]:
    """The audio streams that become renditions: those with channels, in file order; the
    first flagged default (else the first) is the default; names are unique."""
    chosen = [(n, s) for n, s in enumerate(streams) if int(s.get("channels") or 0) > 0][:MAX_AUDIO_TRACKS]
    default = next((n for n, s in chosen if s.get("disposition", {}).get("default")), chosen[0][0] if chosen else -1)
    tracks: list[AudioTrack] = []
    names: set[str] = set()
    for position, (n, stream) in enumerate(chosen, start=1):
        tags = {str(k).lower(): v for k, v in (stream.get("tags") or {}).items()}
        language, language_name = _language(tags.get("language"))
        name = str(tags.get("title") or language_name or f"Audio {position}").strip()[:64] or f"Audio {position}"
        unique, count = name, 1
        while unique in names:
            count += 1
            unique = f"{name} ({count})"
        names.add(unique)
        tracks.append(AudioTrack(n, unique, language, int(stream["channels"]), n == default))
    return tuple(tracks)


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


# --- preparation: interlace, frame rate, dynamic range -----------------------------------------


def _field_order(path: Path, video: dict[str, Any], container: MediaFormat, protocols: str, index: int) -> str:
    """The field order the stream declares; a stream that does not say (``unknown``: DV, raw,
    MJPEG...) is measured with ``idet`` over its first :data:`IDET_FRAMES` frames (about 2 s
    of decoding; bench/ladder.py prints what it costs) and called ``tt``/``bb`` when most
    decided frames are interlaced, else ``progressive``."""
    declared = str(video.get("field_order") or "unknown")
    if declared != "unknown":
        return declared
    tff, bff, progressive = detect_fields(path, container=container, protocols=protocols, stream_index=index)
    if tff + bff <= progressive:
        return "progressive"
    return "tt" if tff >= bff else "bb"


def interlace(info: VideoInfo) -> str | None:
    """bwdif's parity (``tff``/``bff``) when the source is interlaced, else None."""
    return INTERLACED_ORDERS.get(info.field_order)


def detect_fields(
    source: Path,
    frames: int = IDET_FRAMES,
    container: MediaFormat | None = None,
    protocols: str = sandbox.PROTOCOLS,
    stream_index: int | None = None,
) -> tuple[int, int, int]:
    """idet's multi-frame counts (top-field-first, bottom-field-first, progressive) of the
    video stream at ``stream_index`` (default: the first that is not a cover picture)."""
    args = [FFMPEG, "-hide_banner", "-nostdin", "-v", "info"]
    args += [*sandbox.ffmpeg_input_args(container or sandbox.video_format(source), protocols), "-i", str(source)]
    args += ["-map", "0:V:0" if stream_index is None else f"0:{stream_index}", "-an", "-sn"]
    args += ["-frames:v", str(frames), "-vf", "idet", "-f", "null", "-"]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)", proc.stderr)
    if not match:
        return 0, 0, 0
    tff, bff, progressive = (int(g) for g in match.groups())
    return tff, bff, progressive


def output_rate(fps: float, interlaced: bool) -> Fraction:
    """The constant output frame rate.

    Interlaced sources are deinterlaced to their FIELD rate (25i -> 50p, 29.97i -> 59.94p):
    every field is a distinct moment, so halving it would make motion judder. The source rate
    (its average, which VFR clips also have) snaps to a standard rate within 1%, and a rate
    above :data:`MAX_FPS` is divided down by an integer, so frames are dropped evenly.
    """
    rate = Fraction(fps).limit_denominator(1001) * (2 if interlaced else 1)
    if rate > MAX_FPS:
        rate /= math.ceil(rate / MAX_FPS)
    nearest = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    if abs(nearest - rate) <= rate / 100:
        return nearest
    return max(Fraction(1), Fraction(round(rate * 1000), 1000))


def prepare(info: VideoInfo) -> Prepared:
    """How every output of this source is made ready (see :func:`prepared_video`)."""
    parity = interlace(info)
    return Prepared(parity, output_rate(info.fps, parity is not None), info.hdr)


def _source_matrix(info: VideoInfo) -> str:
    """The YCbCr matrix the source was encoded with; untagged sources get what players assume
    (BT.709 from 720 lines up, BT.601 below)."""
    if info.matrix in _SCALE_MATRIX:
        return _SCALE_MATRIX[info.matrix]
    return "bt709" if min(info.display_size) >= 720 else "smpte170m"


def prepared_video(stream: FfmpegNode, info: VideoInfo, prep: Prepared) -> FfmpegNode:
    """The source's video made ready for every output: progressive, constant rate, SDR."""
    if prep.deinterlace:
        stream = stream.filter("bwdif", mode="send_field", parity=prep.deinterlace, deint="all")
    stream = stream.filter("fps", fps=str(prep.rate))
    if prep.hdr:
        # zscale's "input" defaults are the frame's tags: name every input and output property,
        # so partly tagged files convert too. Linear light (1.0 = 100 nits), BT.709 primaries,
        # then Mobius: linear up to 30 nits, highlights rolled off up to the signal's peak
        # (from the mastering/MaxCLL metadata, else 1000 nits for HLG and 10000 for PQ), so
        # mid-tones keep their brightness (Hable's curve darkens them by a third); then the
        # BT.709 transfer and matrix, limited range, 8-bit.
        matrix = info.matrix if info.matrix in ("bt2020nc", "bt2020c") else "bt2020nc"
        stream = (
            stream.filter(
                "zscale",
                tin="smpte2084" if prep.hdr == "pq" else "arib-std-b67",
                pin="bt2020",
                min=matrix,
                rin="pc" if info.full_range else "tv",
                t="linear",
                p="bt2020",
                m=matrix,
                npl=100,
            )
            .filter("format", "gbrpf32le")
            .filter("zscale", p="bt709")
            .filter("tonemap", tonemap="mobius", desat=0)
            .filter("zscale", t="bt709", m="bt709", r="tv")
            .filter("format", "yuv420p")
        )
    return stream


def _colour_conversion(info: VideoInfo, prep: Prepared) -> dict[str, str]:
    """scale options that bring an SDR source to BT.709 limited range; empty when it already
    is, so a same-size scale stays a pass-through (no pixel copy)."""
    if prep.hdr:
        return {}  # the tone-mapping chain already produced BT.709 limited range
    options: dict[str, str] = {}
    matrix = _source_matrix(info)
    if matrix != "bt709":
        options.update(in_color_matrix=matrix, out_color_matrix="bt709")
    if info.full_range:
        options.update(in_range="full", out_range="limited")
    return options


def scale_parents(sizes: list[tuple[int, int]]) -> list[int]:
    """For each size (largest first), the index of the size it is scaled from (-1: the source).

    Each rung is scaled from a rung above it, not from the source, which is cheaper: from one
    exactly twice its size when there is one (2160p -> 1080p, 1440p -> 720p, 720p -> 360p, a
    2:1 box filter, which also scores higher SSIM than bicubic), else from the one just above.
    """
    parents = []
    for n, size in enumerate(sizes):
        double = [j for j in range(n) if _is_half(size, sizes[j])]
        parents.append(double[-1] if double else n - 1)
    return parents


def _is_half(size: tuple[int, int], of: tuple[int, int]) -> bool:
    """``size`` is ``of`` halved in both directions (give or take the even rounding)."""
    return abs(of[0] - 2 * size[0]) <= 2 and abs(of[1] - 2 * size[1]) <= 2


def scaled_outputs(
    stream: FfmpegNode, info: VideoInfo, prep: Prepared, sizes: list[tuple[int, int]]
) -> list[FfmpegNode]:
    """One stream per size (largest first), square pixels, 8-bit 4:2:0 BT.709, each scaled as
    :func:`scale_parents` says (bench/ladder.py prints the SSIM per rung this gives)."""
    parents = scale_parents(sizes)
    children = [parents.count(n) for n in range(len(sizes))]
    feeds: dict[int, list[FfmpegNode]] = {-1: [stream]}
    outputs: list[FfmpegNode] = []
    for n, (width, height) in enumerate(sizes):
        parent = parents[n]
        scaled = _resize(feeds[parent].pop(), (width, height), sizes[parent] if parent >= 0 else None, info, prep)
        scaled = scaled.filter("setsar", 1)
        scaled = scaled.filter("format", "yuv420p")
        if children[n]:
            split = scaled.filter_multi_output("split", children[n] + 1)
            outputs.append(split.stream(0))
            feeds[n] = [split.stream(k) for k in range(1, children[n] + 1)]
        else:
            outputs.append(scaled)
    return outputs


def _resize(
    stream: FfmpegNode, size: tuple[int, int], parent: tuple[int, int] | None, info: VideoInfo, prep: Prepared
) -> FfmpegNode:
    """Scale one rung. From the source: swscale, which also converts the colours (and is a
    pass-through at the same size). From a rung exactly twice as large: swscale's ``area``
    (each 2x2 block averaged). From any other rung: ``zscale`` bicubic, which zimg does in
    ~20% less CPU than swscale's bicubic for the same SSIM (bench/ladder.py); both rungs are
    already 8-bit 4:2:0 BT.709, so nothing but the size changes."""
    width, height = size
    if parent is None:
        return stream.filter("scale", width, height, **_colour_conversion(info, prep))
    if _is_half(size, parent):
        return stream.filter("scale", width, height, flags="area")
    return stream.filter("zscale", width, height, filter="bicubic")


#: output options that tag every video stream SDR BT.709 (what the frames now are)
BT709_TAGS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709", "color_range": "tv"}


# --- ladder planning (pure) ----------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _even_within(value: float, limit: int) -> int:
    """The even number nearest ``value`` that does not exceed ``limit`` (at least 2)."""
    return max(2, min(round(value / 2) * 2, limit - limit % 2))


def peak_kbps(width: int, height: int, fps: float = 30.0) -> int:
    """A per-rung peak bitrate cap for H.264: 5 Mb/s at 1080p30, scaled by pixels^0.75
    (2160p 14.1, 1440p 7.7, 720p 2.7, 480p 1.5, 360p 0.96 Mb/s), +50% above 30 fps."""
    kbps: float = 5000 * ((width * height) / (1920 * 1080)) ** 0.75  # float ** float is typed Any
    if fps > 31:
        kbps *= 1.5
    return max(200, round(kbps / 10) * 10)


def _fit(short: int, long_: int, scale: float, max_short: int, max_long: int) -> tuple[int, int]:
    """Even (short, long) sides near ``scale`` x the source's, inside the box and the source,
    whose ratio is closest to the source's: rounding each side on its own would put a 66-line
    rung of a 9.6:1 banner 1% off."""
    aspect = long_ / short
    max_short, max_long = min(max_short, short), min(max_long, long_)
    by_long = _even_within(long_ * scale, max_long)
    by_short = _even_within(short * scale, max_short)
    candidates = [
        (_even_within(by_long / aspect, max_short), by_long),
        (by_short, _even_within(by_short * aspect, max_long)),
    ]
    return min(candidates, key=lambda c: (abs(c[1] / c[0] - aspect), -c[0] * c[1]))


def plan_ladder(width: int, height: int, heights: tuple[int, ...], fps: float = 30.0) -> list[Rung]:
    """Rungs for a displayed ``width`` x ``height`` source.

    Rung ``Np`` is the source fitted (aspect kept, even dimensions) into an N-line 16:9 box
    (1080p: 1920x1080; turned for portrait sources), never enlarged; the source gets it when
    it reaches the box in either direction, so a 1920x800 film's 1080p rung is 1920x800 and a
    4:3 1440x1080 source's is 1440x1080. A source smaller than every requested rung gets one
    rung at its own size; rungs that come out the same size are kept once.
    """
    portrait = height > width
    short, long_ = min(width, height), max(width, height)
    rungs: list[Rung] = []
    for p in sorted(set(heights), reverse=True):
        box_long = _even(float(p * BOX_ASPECT))
        if short < p and long_ < box_long:
            continue
        fit_short, fit_long = _fit(short, long_, min(1.0, p / short, box_long / long_), p, box_long)
        w, h = (fit_short, fit_long) if portrait else (fit_long, fit_short)
        if any((r.width, r.height) == (w, h) for r in rungs):
            continue
        rungs.append(Rung(f"{p}p", w, h, peak_kbps(w, h, fps)))
    if not rungs:
        w, h = _even_within(width, width), _even_within(height, height)
        rungs.append(Rung(f"{min(w, h)}p", w, h, peak_kbps(w, h, fps)))
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


def source_input(source: Path, info: VideoInfo, **options: Any) -> FfmpegNode:
    """The upload as an ffmpeg input, pinned to its container's demuxer and to local files."""
    container = info.container or sandbox.video_format(source)
    return ffmpeg.input(str(source), **sandbox.ffmpeg_input_options(container), **options)


def source_video(inp: FfmpegNode, info: VideoInfo) -> FfmpegNode:
    """The probed video stream of ``inp`` (by its index in the file, never ``v:0``)."""
    return inp[str(info.stream_index)]


def _command(out: FfmpegNode) -> list[str]:
    """The ffmpeg argument list of an output node, with the worker's global flags."""
    return [str(arg) for arg in _global(out).overwrite_output().compile(cmd=FFMPEG)]


def _global(cmd: FfmpegNode) -> FfmpegNode:
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


def _x264(cpus: int) -> dict[str, Any]:
    """The H.264 encoder settings every output shares."""
    return {"c:v": "libx264", "preset": PRESET, "crf": CRF, "threads": cpus, "profile:v": "high", **BT709_TAGS}


def _audio_options() -> dict[str, Any]:
    return {"c:a": "aac", "b:a": f"{AUDIO_KBPS}k", "ac": 2, "ar": AUDIO_SAMPLE_RATE}


def ladder_encoder_options(rungs: list[Rung], rate: Fraction, segment_seconds: int) -> dict[str, Any]:
    """The ladder's video encoder settings, rung ``i`` being output video stream ``v:i``:
    capped CRF, keyframes exactly on segment boundaries (the same frames in every rung)."""
    gop = max(1, round(rate * segment_seconds))
    options: dict[str, Any] = {
        **_x264(available_cpus()),
        "g": gop,
        "keyint_min": gop,
        "sc_threshold": 0,
        "force_key_frames": f"expr:gte(t,n_forced*{segment_seconds})",
    }
    for i, rung in enumerate(rungs):
        options[f"maxrate:v:{i}"] = f"{rung.maxrate_kbps}k"
        options[f"bufsize:v:{i}"] = f"{rung.bufsize_kbps}k"
    return options


def ladder_command(
    source: Path, out_dir: Path, info: VideoInfo, rungs: list[Rung], op: Transcode, prep: Prepared | None = None
) -> list[str]:
    """ffmpeg arguments for the whole ladder in one process: the video variants ``v:0..``
    (one folder per rung) and one audio rendition per source track (``audio_{n}``)."""
    prep = prep or prepare(info)
    fmp4 = op.segment_type == "fmp4"
    inp = source_input(source, info, threads=available_cpus())
    video = prepared_video(source_video(inp, info), info, prep)
    streams: list[FfmpegNode] = scaled_outputs(video, info, prep, [(r.width, r.height) for r in rungs])
    group = f",agroup:{AUDIO_GROUP}" if info.audio else ""
    stream_map = [f"v:{i}{group},name:{rung.name}" for i, rung in enumerate(rungs)]
    for n, track in enumerate(info.audio):
        streams.append(inp[f"a:{track.index}"])
        stream_map.append(f"a:{n}{group},name:{audio_folder(n)}")
    options: dict[str, Any] = {
        **ladder_encoder_options(rungs, prep.rate, op.segment_seconds),
        **(_audio_options() if info.audio else {}),
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
    if fmp4:  # in each rendition's folder; "%v" (the folder's name) keeps ffmpeg from numbering it
        options["hls_fmp4_init_filename"] = "init_%v.mp4"
    out = ffmpeg.output(*streams, str(out_dir / "%v" / "index.m3u8"), **options)
    return _command(out)


def audio_folder(n: int) -> str:
    return f"audio_{n}"


def mp4_command(
    source: Path, target: Path, info: VideoInfo, width: int, height: int, prep: Prepared | None = None
) -> list[str]:
    """One MP4: the prepared video at ``width`` x ``height``, the default audio track."""
    prep = prep or prepare(info)
    cpus = available_cpus()
    inp = source_input(source, info, threads=cpus)
    [video] = scaled_outputs(prepared_video(source_video(inp, info), info, prep), info, prep, [(width, height)])
    default = next((t for t in info.audio if t.default), None)
    streams = [video, inp[f"a:{default.index}"]] if default else [video]
    options: dict[str, Any] = {
        **_x264(cpus),
        "maxrate": f"{peak_kbps(width, height, prep.fps)}k",
        "bufsize": f"{2 * peak_kbps(width, height, prep.fps)}k",
        "movflags": "+faststart",
        **(_audio_options() if default else {}),
    }
    return _command(ffmpeg.output(*streams, str(target), **options))


def poster_command(
    source: Path, target: Path, at: float, width: int | None, info: VideoInfo, prep: Prepared | None = None
) -> list[str]:
    """A JPEG of one frame, square pixels at the display aspect, tone-mapped if HDR."""
    prep = prep or prepare(info)
    display_w, display_h = info.display_size
    w = _even(width) if width else _even(display_w)
    h = _even(w * display_h / display_w)
    inp = source_input(source, info, ss=f"{at:.3f}")
    [video] = scaled_outputs(prepared_video(source_video(inp, info), info, prep), info, prep, [(w, h)])
    out = ffmpeg.output(video, str(target), vframes=1, **{"q:v": 2, "update": 1})
    return _command(out)


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


HLS_MIME = "application/vnd.apple.mpegurl"


def _segment_mime(fmp4: bool) -> str:
    return "video/iso.segment" if fmp4 else "video/mp2t"


@dataclass(frozen=True)
class _Written:
    """One rendition the muxer wrote: its playlist, measured bitrates and files."""

    folder: str
    playlist: playlists.MediaPlaylist
    peak: int
    average: int
    outputs: list[LocalOutput]


def _collect(out_dir: Path, folder: str, fmp4: bool, size: tuple[int, int] | None) -> _Written:
    path = out_dir / folder / "index.m3u8"
    playlist = playlists.parse_media(path.read_text())
    peak, average = hls.measure(path)
    outputs = [
        LocalOutput(path.parent / s.uri, f"hls/{folder}/{s.uri}", None, _segment_mime(fmp4)) for s in playlist.segments
    ]
    if playlist.map_uri:
        outputs.append(
            LocalOutput(path.parent / playlist.map_uri, f"hls/{folder}/{playlist.map_uri}", None, "video/mp4")
        )
    width, height = size or (None, None)
    outputs.append(
        LocalOutput(
            path, f"hls/{folder}/index.m3u8", OutputRole.HLS_RENDITION, HLS_MIME, width, height, playlist.duration, peak
        )
    )
    return _Written(folder, playlist, peak, average, outputs)


def _first_media(out_dir: Path, written: _Written) -> str:
    """The rendition's first media segment as one ffprobe input (an fMP4 init section alone
    holds no frames, so ffprobe would report no level: read init + first segment)."""
    folder = out_dir / written.folder
    first = str(folder / written.playlist.segments[0].uri)
    if written.playlist.map_uri:
        return f"concat:{folder / written.playlist.map_uri}|{first}"
    return first


def _video_codec(media: str) -> str:
    data = ffmpeg_run.probe(media, cmd=FFPROBE)
    video = next(s for s in data["streams"] if s.get("codec_type") == "video")
    return hls.avc1_codec(str(video.get("profile", "High")), int(video.get("level", 40)))


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
    prep = prepare(info)
    rungs = plan_ladder(*info.display_size, op.renditions, prep.fps)
    folders = [r.name for r in rungs] + [audio_folder(n) for n in range(len(info.audio))]
    for folder in folders:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    args = ladder_command(source, out_dir, info, rungs, op, prep)
    result = run_ffmpeg(args, work / "ffmpeg-hls.log", _seconds_hook(info.duration, progress), deadline)
    _check(result.returncode, result.stderr, "encoding the HLS ladder")
    fmp4 = op.segment_type == "fmp4"
    outputs: list[LocalOutput] = []
    audio: list[playlists.AudioRendition] = []
    audio_peak = audio_average = 0
    for n, track in enumerate(info.audio):
        written = _collect(out_dir, audio_folder(n), fmp4, None)
        outputs += written.outputs
        audio_peak, audio_average = max(audio_peak, written.peak), max(audio_average, written.average)
        audio.append(
            playlists.AudioRendition(
                f"{written.folder}/index.m3u8", AUDIO_GROUP, track.name, track.language, track.default, True, 2
            )
        )
    variants: list[playlists.Variant] = []
    for rung in rungs:
        written = _collect(out_dir, rung.name, fmp4, (rung.width, rung.height))
        outputs += written.outputs
        codecs = _video_codec(_first_media(out_dir, written)) + (f",{AUDIO_CODEC}" if audio else "")
        variants.append(
            playlists.Variant(
                f"{rung.name}/index.m3u8",
                rung.width,
                rung.height,
                codecs,
                written.peak + audio_peak,
                written.average + audio_average,
                round(prep.fps, 3),
                AUDIO_GROUP if audio else None,
            )
        )
    master = playlists.Master(tuple(variants), tuple(audio), version=7 if fmp4 else 6)
    master.validate()
    master_path = out_dir / "master.m3u8"
    master_path.write_text(playlists.write_master(master))
    top = max(variants, key=lambda v: v.height * v.width)
    outputs.append(
        LocalOutput(
            master_path,
            "hls/master.m3u8",
            OutputRole.HLS_MASTER,
            HLS_MIME,
            top.width,
            top.height,
            info.duration,
            top.bandwidth,
        )
    )
    return outputs


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
    args = mp4_command(source, target, info, width, height, prepare(info))
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
    prep = prepare(info)
    for attempt in (at, 0.0):  # a seek past the last decodable frame writes nothing: fall back
        result = run_ffmpeg(
            poster_command(source, target, attempt, op.width, info, prep), work / "ffmpeg-poster.log", None, deadline
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
    width, height = int(image.width), int(image.height)  # pyvips is untyped
    return [LocalOutput(target, "poster.jpg", OutputRole.POSTER, "image/jpeg", width, height)]


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
