"""How much work a job is, and where and on what size it can finish: the one owner of the
estimate (the API refuses with it, the dispatcher routes and sizes with it, the status shows it).

The unit is the **CPU-second of one x86 vCPU** running the worker's ffmpeg/libvips. A video's
work is modelled as ``frames x (DECODE x source pixels + ENCODE x output pixels) + fixed``:
decoding and preparing the source once, then scaling and encoding every rung (x264 cost grows
with the pixels it encodes), plus start-up, probing, the ladder check and uploads.

Calibration (``CALIBRATION``, measured 2026-12-02 on this repository's 2-core x86 build host,
ffmpeg 5.1 / libx264 of Debian bookworm; the worker's own ``transcode_hls`` at its default
settings on bench/ladder.py's camera-like 10 s 1080p30 clip (sensor noise, 16 Mb/s) and on its
720p scale; CPU = user + system time of the ffmpeg children, ``resource.getrusage``):

=========================  ==========  ======  ======  ===================
run (10 s, 30 fps)         output px   CPU s   wall s  use
=========================  ==========  ======  ======  ===================
1080p -> 1080/720/480/360  3,635,520   42.75   23.81   fit (ENCODE)
1080p -> 360                 230,400    9.50    5.83   fit (DECODE)
720p -> 720/480/360        1,561,920   16.32    8.97   check: model +13 %
=========================  ==========  ======  ======  ===================

ENCODE solves the difference of the first two runs (same source, different rungs), DECODE the
second; the third run, not used by the fit, is over-estimated by 13 % (the safe side).
tests/unit/test_estimate.py recomputes the fit from ``CALIBRATION``, so a constant changed
without a measurement fails. The four-rung 1080p ladder runs at 0.42x realtime on 2 vCPUs
(10 s in 23.8 s). Parallel efficiency (CPU / (vCPUs x wall)) measured 0.9 at 2 vCPUs; above 2
it is an assumption (x264 frame threads scale well to 4-8 threads on a four-encoder ladder,
less beyond), and so is ``VIDEO_FIXED_CPU_SECONDS`` (probe, ladder check, I-frame playlists;
not in the fit). The per-job estimate-vs-actual columns (``jobs.estimated_seconds`` against
``jobs.compute_seconds``) exist so these can be checked on production runs and corrected.

Images: libvips on the sizes the API accepts takes milliseconds to a second of CPU; the cost
that matters is the fixed start-up (process, imports, download, upload).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.shared.settings import Settings

#: Measured runs: (label, duration s, fps, source px, output px per frame, CPU s, wall s on 2 vCPU).
CALIBRATION: tuple[tuple[str, float, float, int, int, float, float], ...] = (
    ("1080p -> 1080/720/480/360", 10.0, 30.0, 1920 * 1080, 3_635_520, 42.75, 23.81),
    ("1080p -> 360", 10.0, 30.0, 1920 * 1080, 230_400, 9.50, 5.83),
    ("720p -> 720/480/360", 10.0, 30.0, 1280 * 720, 1_561_920, 16.32, 8.97),
)
#: CPU-seconds per source pixel decoded and prepared (fit of CALIBRATION[0:2]).
DECODE_CPU_PER_PIXEL = 1.165e-8
#: CPU-seconds per output pixel scaled and encoded (fit of CALIBRATION[0:2]).
ENCODE_CPU_PER_PIXEL = 3.255e-8
#: CPU-seconds of any video job besides its frames: probe, ladder check, I-frame playlists.
VIDEO_FIXED_CPU_SECONDS = 3.0
#: CPU-seconds of a poster: seek, decode one frame, JPEG.
POSTER_CPU_SECONDS = 1.0
#: CPU-seconds of an image job per megapixel of input (decode, operate, encode), plus a fixed part.
IMAGE_CPU_PER_MEGAPIXEL = 0.05
IMAGE_FIXED_CPU_SECONDS = 0.5
#: Wall seconds every run spends outside the CPU model: download/upload at S3 speeds for this much input.
TRANSFER_BYTES_PER_SECOND = 50_000_000
#: Output bytes per output pixel-frame (the ladder's bitrates average ~0.08 bit/px at 30 fps).
OUTPUT_BYTES_PER_PIXEL_FRAME = 0.01
#: Parallel efficiency by vCPUs (measured 0.9 at 2; above, an assumption: see the docstring).
_EFFICIENCY = ((2, 0.9), (4, 0.85), (8, 0.7), (16, 0.55))
#: Lambda gives one vCPU per 1769 MB of memory (AWS Lambda developer guide, "Memory and computing power").
LAMBDA_MB_PER_VCPU = 1769
#: Fargate's CPU units and the memory (MiB) each allows: (minimum, maximum, step).
FARGATE_SIZES: dict[int, tuple[int, int, int]] = {
    256: (512, 2048, 512),
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}
#: Memory the ladder needs per vCPU (x264 lookahead per encoder, frame threads): 2 GiB is every
#: size's minimum from 1 vCPU up, so it is always a valid combination.
MIB_PER_VCPU = 2048


@dataclass(frozen=True)
class Probe:
    """What the estimate needs to know of a video (ffprobe: duration, display size, frame rate)."""

    duration_seconds: float
    width: int
    height: int
    fps: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return {"duration_seconds": self.duration_seconds, "width": self.width, "height": self.height, "fps": self.fps}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Probe | None:
        if not data:
            return None
        try:
            return cls(float(data["duration_seconds"]), int(data["width"]), int(data["height"]), float(data["fps"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Work:
    """One job's estimated work: CPU-seconds (one x86 vCPU), scratch bytes, and its shape."""

    cpu_seconds: float
    scratch_bytes: int
    #: duration x source pixels (0 for images): the routing threshold's measure.
    pixel_seconds: float = 0.0
    #: Only posters (or an image): no encode, whatever the source's length.
    light: bool = False

    def wall_seconds(self, vcpus: float, input_bytes: int = 0) -> float:
        """Expected run time on ``vcpus`` (transfer included)."""
        return self.cpu_seconds / (vcpus * efficiency(vcpus)) + input_bytes / TRANSFER_BYTES_PER_SECOND


def efficiency(vcpus: float) -> float:
    for limit, value in _EFFICIENCY:
        if vcpus <= limit:
            return value
    return _EFFICIENCY[-1][1]


def _rung_pixels(probe: Probe, height: int) -> int:
    """Pixels of a rung ``height`` tall, the source's aspect kept, never enlarged."""
    h = min(height, probe.height)
    return int(h * h * probe.width / max(probe.height, 1))


def video_work(operations: Iterable[Mapping[str, Any]], probe: Probe, input_bytes: int = 0) -> Work:
    """The work of a VIDEO job's operations (their stored JSON form) on ``probe``."""
    frames = probe.duration_seconds * probe.fps
    output_pixels = 0
    posters = 0
    for op in operations:
        name = op.get("op")
        if name == "transcode":
            heights = [int(h) for h in op.get("renditions") or ()]
            kept = [h for h in heights if h <= probe.height] or [min(heights, default=probe.height)]
            output_pixels += sum(_rung_pixels(probe, h) for h in kept)
        elif name == "transcode-resolution":
            width, height = op.get("width"), int(op.get("height") or probe.height)
            output_pixels += int(width) * height if width else _rung_pixels(probe, height)
        else:
            posters += 1
    source_pixels = probe.width * probe.height
    encoded = output_pixels > 0
    cpu = posters * POSTER_CPU_SECONDS
    if encoded:
        cpu += VIDEO_FIXED_CPU_SECONDS + frames * (
            DECODE_CPU_PER_PIXEL * source_pixels + ENCODE_CPU_PER_PIXEL * output_pixels
        )
    scratch = input_bytes + int(frames * output_pixels * OUTPUT_BYTES_PER_PIXEL_FRAME)
    return Work(cpu, scratch, probe.duration_seconds * source_pixels if encoded else 0.0, light=not encoded)


def image_work(input_bytes: int, pixels: int | None = None) -> Work:
    """An IMAGE job: small unless the image is huge (pixels unknown: from the file size)."""
    megapixels = (pixels if pixels is not None else input_bytes * 4) / 1e6
    return Work(IMAGE_FIXED_CPU_SECONDS + IMAGE_CPU_PER_MEGAPIXEL * megapixels, 3 * input_bytes, light=True)


def job_work(
    job_type: str, operations: Iterable[Mapping[str, Any]], input_bytes: int, probe: Probe | None
) -> Work | None:
    """The work of a stored job, or None for a video whose probe is unknown."""
    if job_type == "IMAGE":
        return image_work(input_bytes)
    if probe is None:
        ops = list(operations)
        if ops and all(o.get("op") == "poster" for o in ops):
            return Work(len(ops) * POSTER_CPU_SECONDS, input_bytes, light=True)
        return None
    return video_work(operations, probe, input_bytes)


# --- where and on what ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """What runners exist and the limits every placement must respect (settings.Runners)."""

    #: Fargate task sizes the dispatcher may choose, in CPU units (both valid Fargate sizes).
    fargate_min_cpu: int = 1024
    fargate_max_cpu: int = 8192
    #: Longest run a Fargate task is given (the per-job timeout never exceeds it).
    max_timeout_seconds: int = 3600
    #: Estimated run time x (1 + margin) + this must fit the timeout.
    margin: float = 0.5
    fixed_seconds: int = 60
    #: Fargate task ephemeral storage, bytes.
    fargate_scratch_bytes: int = 50 * 1024**3
    #: The worker Lambda, when deployed ("" = none): its memory, timeout and /tmp.
    lambda_function: str = ""
    lambda_memory_mib: int = 4096
    lambda_timeout_seconds: int = 900
    lambda_scratch_bytes: int = 10240 * 1024**2
    #: Encoding VIDEO jobs go to the Lambda only up to this duration x source pixels.
    lambda_max_pixel_seconds: float = 60 * 1920 * 1080


def bounds(settings: Settings) -> Bounds:
    """The bounds of the settings' ``runners`` and ``limits``."""
    runners, limits = settings.runners, settings.limits
    return Bounds(
        fargate_min_cpu=runners.fargate_min_cpu,
        fargate_max_cpu=runners.fargate_max_cpu,
        max_timeout_seconds=limits.worker_timeout_seconds,
        margin=runners.estimate_margin_percent / 100,
        fargate_scratch_bytes=runners.fargate_storage_gib * 1024**3,
        lambda_function=runners.worker_function,
        lambda_memory_mib=runners.worker_function_memory_mib,
        lambda_timeout_seconds=runners.worker_function_timeout_seconds,
        lambda_scratch_bytes=runners.worker_function_storage_mib * 1024**2,
        lambda_max_pixel_seconds=float(runners.lambda_max_pixel_seconds),
    )


@dataclass(frozen=True)
class Placement:
    """Where a job runs and with what: ``runner`` 'lambda' or 'fargate', the task size (Fargate)
    or function memory (Lambda), the timeout, and the estimate behind it."""

    runner: str
    cpu: int | None
    memory_mib: int
    timeout_seconds: int
    estimated_seconds: float | None = None
    estimated_cpu_seconds: float | None = None


@dataclass(frozen=True)
class TooLarge:
    """No allowed size finishes the job in time (or it does not fit the scratch space)."""

    estimated_seconds: float
    limit_seconds: int
    scratch_bytes: int
    scratch_limit_bytes: int

    def details(self) -> dict[str, Any]:
        return {
            "estimated_seconds": round(self.estimated_seconds, 1),
            "limit_seconds": self.limit_seconds,
            "scratch_bytes": self.scratch_bytes,
            "scratch_limit_bytes": self.scratch_limit_bytes,
        }


def _timeout(wall: float, bounds: Bounds) -> int:
    return math.ceil(wall * (1 + bounds.margin) + bounds.fixed_seconds)


def lambda_placement(work: Work, input_bytes: int, bounds: Bounds) -> Placement | None:
    """The worker Lambda, if it is deployed and the job fits its /tmp, its timeout and the
    routing threshold."""
    if not bounds.lambda_function or work.scratch_bytes > bounds.lambda_scratch_bytes:
        return None
    if not work.light and work.pixel_seconds > bounds.lambda_max_pixel_seconds:
        return None
    wall = work.wall_seconds(bounds.lambda_memory_mib / LAMBDA_MB_PER_VCPU, input_bytes)
    if _timeout(wall, bounds) > bounds.lambda_timeout_seconds:
        return None
    return Placement("lambda", None, bounds.lambda_memory_mib, bounds.lambda_timeout_seconds, wall, work.cpu_seconds)


def fargate_placement(work: Work | None, input_bytes: int, bounds: Bounds) -> Placement | TooLarge:
    """The smallest allowed task that finishes ``work`` within the longest timeout (the cheapest:
    price is linear in size, and efficiency only falls with more vCPUs), with a timeout that fits
    the estimate; unknown work gets the largest allowed size and the longest timeout."""
    sizes = [c for c in sorted(FARGATE_SIZES) if bounds.fargate_min_cpu <= c <= bounds.fargate_max_cpu]
    if work is None:
        cpu = sizes[-1]
        return Placement("fargate", cpu, cpu // 1024 * MIB_PER_VCPU, bounds.max_timeout_seconds)
    wall = 0.0
    for cpu in sizes:
        wall = work.wall_seconds(cpu / 1024, input_bytes)
        timeout = _timeout(wall, bounds)
        if timeout <= bounds.max_timeout_seconds and work.scratch_bytes <= bounds.fargate_scratch_bytes:
            memory = max(cpu // 1024 * MIB_PER_VCPU, FARGATE_SIZES[cpu][0])
            return Placement("fargate", cpu, memory, timeout, wall, work.cpu_seconds)
    return TooLarge(wall, bounds.max_timeout_seconds, work.scratch_bytes, bounds.fargate_scratch_bytes)


def place(work: Work | None, input_bytes: int, bounds: Bounds) -> Placement | TooLarge:
    """The Lambda when the job fits it, else the cheapest Fargate size that finishes it, else TooLarge."""
    if work is not None:
        on_lambda = lambda_placement(work, input_bytes, bounds)
        if on_lambda is not None:
            return on_lambda
    return fargate_placement(work, input_bytes, bounds)
