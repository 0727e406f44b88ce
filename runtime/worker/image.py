"""Image jobs on one libvips pipeline: each contract model's implementation, applied in order.

libvips is lazy: each operation only adds a node to the pipeline and nothing is decoded until
the final save, so a job of several operations decodes and encodes exactly once. The input
is loaded with sequential access unless an operation needs random access (rotation), and a
leading resize/thumbnail/force-resize loads with ``thumbnail`` so JPEG/WebP/HEIF decoders
shrink while decoding ("shrink-on-load") instead of decoding every pixel first.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips

from runtime.shared.contract import (
    ConvertFormat,
    ForceResize,
    JobSpec,
    MediaFormat,
    OperationModel,
    Resize,
    Rotate,
    Thumbnail,
    Watermark,
)
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker import sandbox
from runtime.worker.errors import Cancelled, JobFailure

#: No libvips operation cache: a warm worker (the worker Lambda, a long-lived local worker)
#: runs the same pipeline on the same file again and would get the cached image back with the
#: previous job's progress handler still connected, whose Python callback is gone (a crash in
#: ffi.from_handle). A job never repeats an operation, so the cache saves nothing.
pyvips.cache_set_max(0)

#: libvips' largest coordinate: "unbounded" for a fit box with one side given.
UNBOUNDED = 10_000_000
#: output format -> (file extension, MIME type)
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "webp": ("webp", "image/webp"),
    "avif": ("avif", "image/avif"),
    "gif": ("gif", "image/gif"),
    "tiff": ("tiff", "image/tiff"),
}
#: libvips loader -> the format we can write back (other inputs are written as JPEG)
_LOADER_FORMATS = {
    "jpegload": "jpeg",
    "pngload": "png",
    "webpload": "webp",
    "gifload": "gif",
    "tiffload": "tiff",
}
#: a truncated file fails the job instead of silently becoming a half-grey image
FAIL_ON = "truncated"
#: operations that may open the file with ``thumbnail`` (shrink-on-load) when they come first
_SHRINK_ON_LOAD = (Resize, ForceResize, Thumbnail)
#: operations that need random pixel access (they read the source out of order)
_RANDOM_ACCESS = (Rotate,)


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, read without decoding a single pixel."""

    width: int
    height: int
    loader: str
    orientation: int
    #: the format we can write back in (None: not writable, e.g. HEIC)
    writable_format: str | None = None
    #: the format read from the file's bytes; its loader is the only one that opens the file
    source_format: MediaFormat | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class ImageContext:
    """State shared by the operations of one pipeline (the output format is chosen by one)."""

    header: ImageHeader
    output_format: str | None = None
    quality: int | None = None


@dataclass(frozen=True)
class ImageResult:
    path: Path
    format: str
    mime: str
    width: int
    height: int
    bytes: int


def size(image: pyvips.Image) -> tuple[int, int]:
    """(width, height) of a libvips image as ints (pyvips has no type hints: its images are Any)."""
    return int(image.width), int(image.height)


def load(path: Path, fmt: MediaFormat, **options: Any) -> pyvips.Image:
    """Open ``path`` with ``fmt``'s loader only (never libvips' own guess)."""
    return getattr(pyvips.Image, fmt.reader)(str(path), **options)


def read_header(path: Path, limits: Limits) -> ImageHeader:
    """Open ``path`` lazily with the loader its bytes name (sandbox.py), check the pixel limit
    from the header (decompression bombs are refused here, before any decoding) and say what it is."""
    fmt = sandbox.image_format(path)
    sandbox.restrict_loaders()  # thumbnail() finds its loader itself: only ours are left to find
    try:
        image = load(path, fmt, access="sequential")
    except pyvips.Error as err:
        raise JobFailure(
            ErrorCode.INPUT_UNREADABLE,
            f"the image header cannot be read (corrupt or truncated file): {_first(str(err))}",
        ) from err
    orientation = image.get("orientation") if image.get_typeof("orientation") else 1
    loader = str(image.get("vips-loader"))
    writable = _LOADER_FORMATS.get(loader.removesuffix("_source").removesuffix("_buffer"))
    if (
        loader.startswith("heifload")
        and image.get_typeof("heif-compression")
        and image.get("heif-compression") == "av1"
    ):
        writable = "avif"
    header = ImageHeader(*size(image), loader, int(orientation), writable, fmt)
    if header.pixels > limits.max_image_pixels:
        raise JobFailure(
            ErrorCode.LIMIT_EXCEEDED,
            f"image is {header.width}x{header.height} = {header.pixels:,} pixels; "
            f"the limit is {limits.max_image_pixels:,}",
        )
    return header


def _first(text: str) -> str:
    return text.strip().splitlines()[-1][:300] if text.strip() else "unknown error"


# --- operations: fn(image, params, ctx) -> image ----------------------------------------------


def op_resize(image: pyvips.Image, p: Resize, ctx: ImageContext) -> pyvips.Image:
    """Fit within the box, keeping the aspect ratio; no upscaling unless asked."""
    return image.thumbnail_image(
        p.width or UNBOUNDED, height=p.height or UNBOUNDED, size="both" if p.upscale else "down"
    )


def op_force_resize(image: pyvips.Image, p: ForceResize, ctx: ImageContext) -> pyvips.Image:
    return image.thumbnail_image(p.width, height=p.height, size="force")


def op_rotate(image: pyvips.Image, p: Rotate, ctx: ImageContext) -> pyvips.Image:
    """Clockwise; right angles are lossless pixel moves, other angles fill with ``background``."""
    angle = p.angle % 360
    if angle == 0:
        return image
    if angle in (90, 180, 270):
        return image.rot(f"d{int(angle)}")
    background = _rgba(p.background)
    if len(background) == 4 and not image.hasalpha():
        image = image.bandjoin_const(255)
    elif len(background) == 3 and image.hasalpha():
        background = [*background, 255]
    if image.bands < 3:  # grey: a grey background of the colour's mean
        background = [sum(background[:3]) / 3, *background[3:]]
    return image.rotate(angle, background=background)


def op_convert_format(image: pyvips.Image, p: ConvertFormat, ctx: ImageContext) -> pyvips.Image:
    """Chooses the encoder at save time; the pixels are untouched."""
    ctx.output_format = p.format
    ctx.quality = p.quality
    return image


def op_watermark(image: pyvips.Image, p: Watermark, ctx: ImageContext) -> pyvips.Image:
    """Blend text of height ``size`` x image height at ``position`` with ``opacity``."""
    if image.bands < 3:
        image = image.colourspace("srgb")
    px = max(6, round(p.size * image.height))
    text = pyvips.Image.text(html.escape(p.text), font=f"sans {px}", dpi=72)
    margin = max(2, round(0.02 * min(image.width, image.height)))
    room = max(1, image.width - 2 * margin), max(1, image.height - 2 * margin)
    if text.width > room[0] or text.height > room[1]:
        text = text.resize(min(room[0] / text.width, room[1] / text.height))
    colour = _rgba(p.color)
    opacity = p.opacity * (colour[3] / 255 if len(colour) == 4 else 1.0)
    mask = (text * opacity).cast("uchar")
    x = {"left": margin, "right": image.width - text.width - margin}.get(
        p.position.split("-")[-1], (image.width - text.width) // 2
    )
    y = {"top": margin, "bottom": image.height - text.height - margin}.get(
        p.position.split("-")[0], (image.height - text.height) // 2
    )
    mask = mask.embed(max(0, x), max(0, y), image.width, image.height)
    ink = colour[:3] + ([255] if image.hasalpha() else [])
    return mask.ifthenelse(ink, image, blend=True).cast(image.format)


def op_thumbnail(image: pyvips.Image, p: Thumbnail, ctx: ImageContext) -> pyvips.Image:
    height = p.height or (p.width if p.crop else UNBOUNDED)
    return image.thumbnail_image(p.width, height=height, size="down", crop="centre" if p.crop else "none")


ImageStep = Callable[[pyvips.Image, Any, ImageContext], pyvips.Image]
#: contract model -> its implementation: one each (tests/worker/test_registry.py checks both ways)
OPERATIONS: dict[type[OperationModel], ImageStep] = {
    Resize: op_resize,
    ForceResize: op_force_resize,
    Rotate: op_rotate,
    ConvertFormat: op_convert_format,
    Watermark: op_watermark,
    Thumbnail: op_thumbnail,
}


def _rgba(colour: str) -> list[float]:
    raw = colour.lstrip("#")
    return [int(raw[i : i + 2], 16) for i in range(0, len(raw), 2)]


# --- the pipeline ---------------------------------------------------------------------------


def _open_with_thumbnail(path: Path, params: OperationModel) -> pyvips.Image:
    """Shrink-on-load for a leading size operation (it also applies EXIF orientation)."""
    if isinstance(params, ForceResize):
        return pyvips.Image.thumbnail(str(path), params.width, height=params.height, size="force", fail_on=FAIL_ON)
    if isinstance(params, Resize):
        return pyvips.Image.thumbnail(
            str(path),
            params.width or UNBOUNDED,
            height=params.height or UNBOUNDED,
            size="both" if params.upscale else "down",
            fail_on=FAIL_ON,
        )
    assert isinstance(params, Thumbnail), params
    height = params.height or (params.width if params.crop else UNBOUNDED)
    return pyvips.Image.thumbnail(
        str(path), params.width, height=height, size="down", crop="centre" if params.crop else "none", fail_on=FAIL_ON
    )


def build_pipeline(path: Path, spec: JobSpec, header: ImageHeader) -> tuple[pyvips.Image, ImageContext]:
    """The lazy pipeline for ``spec``'s operations, in their declared order."""
    ops = list(spec.operations)
    ctx = ImageContext(header=header)
    needs_random = any(isinstance(op, _RANDOM_ACCESS) for op in ops)
    if ops and isinstance(ops[0], _SHRINK_ON_LOAD):
        image = _open_with_thumbnail(path, ops[0])
        ops = ops[1:]
        if needs_random:  # already small: materialise so rotation can read it out of order
            image = image.copy_memory()
    else:
        access = "random" if needs_random or header.orientation > 1 else "sequential"
        fmt = header.source_format or sandbox.image_format(path)
        image = load(path, fmt, access=access, fail_on=FAIL_ON).autorot()
    for op in ops:
        image = OPERATIONS[type(op)](image, op, ctx)
    return image, ctx


def _save_options(fmt: str, quality: int | None) -> dict[str, Any]:
    """Encoder options; metadata (EXIF with GPS, XMP, IPTC) is stripped, the ICC profile kept."""
    keep = {"keep": "icc"}
    if fmt == "jpeg":
        return {**keep, "Q": quality or 85, "optimize_coding": True, "interlace": True}
    if fmt == "webp":
        return {**keep, "Q": quality or 80, "effort": 4}
    if fmt == "avif":
        return {**keep, "Q": quality or 55, "compression": "av1", "effort": 2}
    if fmt == "tiff":
        return {**keep, "compression": "jpeg", "Q": quality} if quality else {**keep, "compression": "deflate"}
    if fmt == "png":
        return {**keep, "compression": 6}
    return keep  # gif


def _prepare_for(fmt: str, image: pyvips.Image) -> pyvips.Image:
    """Make the pixels encodable in ``fmt`` (JPEG has no alpha; 8-bit encoders need uchar)."""
    if image.interpretation in ("rgb16", "grey16") and fmt in ("jpeg", "webp", "gif"):
        image = image.colourspace("srgb" if image.interpretation == "rgb16" else "b-w")
    if image.format != "uchar" and fmt in ("jpeg", "webp", "gif", "avif"):
        image = image.cast("uchar")
    if fmt == "jpeg" and image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    return image


def process_image(
    source: Path,
    out_dir: Path,
    spec: JobSpec,
    limits: Limits,
    on_progress: Callable[[float], None] | None = None,
    deadline: float | None = None,
) -> ImageResult:
    """Run ``spec`` on ``source`` and write ``out_dir/image.{ext}``.

    ``on_progress(fraction)`` is called while libvips computes (it may raise Cancelled); past
    ``deadline`` (a time.monotonic() value) the computation is killed and the job TIMEOUTs.
    """
    header = read_header(source, limits)
    try:
        image, ctx = build_pipeline(source, spec, header)
        width, height = size(image)
        if width * height > limits.max_image_pixels:  # known before any pixel is computed
            raise JobFailure(
                ErrorCode.LIMIT_EXCEEDED,
                f"the result would be {width}x{height} = {width * height:,} pixels; "
                f"the limit is {limits.max_image_pixels:,}",
            )
        fmt = ctx.output_format or header.writable_format or "jpeg"
        image = _prepare_for(fmt, image)
        ext, mime = FORMATS[fmt]
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"image.{ext}"
        stop: list[BaseException] = []

        def on_eval(img: pyvips.Image, progress: Any) -> None:
            if deadline is not None and time.monotonic() > deadline:
                stop.append(JobFailure(ErrorCode.TIMEOUT, "processing took longer than the worker's time limit"))
            elif on_progress is not None:
                try:
                    on_progress(float(progress.percent) / 100)
                except Cancelled as err:
                    stop.append(err)
            if stop:
                img.set_kill(True)

        image.set_progress(True)
        image.signal_connect("eval", on_eval)
        image.write_to_file(str(target), **_save_options(fmt, ctx.quality))
    except pyvips.Error as err:
        if stop:
            raise stop[0] from err
        raise _classify(err) from err
    if stop:
        raise stop[0]
    written = pyvips.Image.new_from_file(str(target))
    return ImageResult(target, fmt, mime, *size(written), target.stat().st_size)


def _classify(err: pyvips.Error) -> JobFailure:
    text = str(err)
    lowered = text.lower()
    if any(word in lowered for word in ("truncated", "premature", "read error", "corrupt", "unexpected end")):
        return JobFailure(ErrorCode.INPUT_UNREADABLE, f"the image data is truncated or corrupt: {_first(text)}")
    return JobFailure(ErrorCode.PROCESSING_FAILED, f"libvips could not process the image: {_first(text)}")
