"""The job contract: which operations exist, their typed parameters, and how to parse them.

A job is a job type plus an ordered list of operations. Two input forms are accepted:

* the list form: ``[{"op": "resize", "width": 800}, {"op": "convert-format", "format": "webp"}]``
* the seed's object form: ``{"ROTATE": "180", "FORCE-RESIZE": "100x400"}``, applied in key order,
  each value a compact string parsed by the operation's own ``seed`` parser.

Both normalise into one immutable :class:`JobSpec`. Every problem is collected and reported
with the operation, its index, the field, the value received and what is allowed, so a client
can fix all of them in one round trip. Operations are a registry of small parsers (as thumbor's
filters or imgproxy's options): an unknown operation is an error, never silently dropped.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

MAX_DIMENSION = 16384
MAX_OPERATIONS = 20
VIDEO_HEIGHTS = (2160, 1440, 1080, 720, 480, 360, 240)
#: the default ladder reaches 4K; rungs above the source are skipped (runtime/worker/video.py).
DEFAULT_LADDER = (2160, 1440, 1080, 720, 480, 360)
IMAGE_FORMATS = ("jpeg", "png", "webp", "avif", "gif", "tiff")
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
SEGMENT_TYPES = ("ts", "fmp4")
_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_SIZE = re.compile(r"^\s*(\d*)\s*[xX\u00d7]\s*(\d*)\s*$")  # x or the multiplication sign
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[pP]\s*$")


class JobType(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a job request, in machine-readable form."""

    message: str
    operation: str | None = None
    index: int | None = None
    field: str | None = None
    received: Any = None
    allowed: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ContractError(ValueError):
    """The job request is invalid; ``problems`` lists every reason."""

    code = "INVALID_JOB"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))

    def details(self) -> dict[str, Any]:
        return {"problems": [p.to_dict() for p in self.problems]}


class _FieldError(Exception):
    def __init__(self, field_name: str, received: Any, allowed: Any, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.received = received
        self.allowed = allowed


# --- typed field readers -------------------------------------------------------------


def _int_field(raw: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    if name not in raw or raw[name] is None:
        return default
    value = raw[name]
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(name, value, f"an integer from {lo} to {hi}", f"'{name}' must be an integer")
    if not lo <= value <= hi:
        raise _FieldError(name, value, f"{lo}..{hi}", f"'{name}' must be from {lo} to {hi}, got {value}")
    return value


def _float_field(raw: Mapping[str, Any], name: str, lo: float, hi: float, default: float) -> float:
    if name not in raw or raw[name] is None:
        return default
    value = raw[name]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _FieldError(name, raw[name], f"a number from {lo} to {hi}", f"'{name}' must be a number")
    if not lo <= value <= hi:
        raise _FieldError(name, value, f"{lo}..{hi}", f"'{name}' must be from {lo} to {hi}, got {value}")
    return float(value)


def _choice_field(
    raw: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str | None, aliases: Mapping[str, str] = {}
) -> str | None:
    if name not in raw or raw[name] is None:
        if default is None:
            raise _FieldError(name, None, list(allowed), f"'{name}' is required")
        return default
    value = raw[name]
    if isinstance(value, str):
        value = aliases.get(value.strip().lower(), value.strip().lower())
    if value not in allowed:
        raise _FieldError(name, raw[name], list(allowed), f"'{name}' must be one of {', '.join(allowed)}")
    return value


def _color_field(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not _COLOR.match(value):
        raise _FieldError(name, value, "#RRGGBB or #RRGGBBAA", f"'{name}' must be a colour like #RRGGBB")
    return value.lower()


def _text_field(raw: Mapping[str, Any], name: str, max_len: int) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(name, value, f"a non-empty string of at most {max_len} characters", f"'{name}' is required")
    if len(value) > max_len:
        raise _FieldError(name, len(value), f"at most {max_len} characters", f"'{name}' is too long")
    if any(ord(c) < 32 for c in value):
        raise _FieldError(name, value, "printable characters", f"'{name}' must not contain control characters")
    return value


def _parse_size(value: str, name: str = "size") -> dict[str, int]:
    """``"800x600"``, ``"800x"``, ``"x600"`` or ``"800"`` into width/height fields."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"width": value}
    if not isinstance(value, str):
        raise _FieldError(name, value, "WIDTHxHEIGHT", f"'{name}' must be a string like 800x600")
    value = value.strip()
    if value.isdigit():
        return {"width": int(value)}
    match = _SIZE.match(value)
    if not match or not (match.group(1) or match.group(2)):
        raise _FieldError(name, value, "WIDTHxHEIGHT", f"'{name}' must look like 800x600, 800x or x600")
    out: dict[str, int] = {}
    if match.group(1):
        out["width"] = int(match.group(1))
    if match.group(2):
        out["height"] = int(match.group(2))
    return out


# --- operation parameter types ---------------------------------------------------------


@dataclass(frozen=True)
class Resize:
    """Fit within width x height, keeping the aspect ratio; never upscales unless asked."""

    width: int | None = None
    height: int | None = None
    upscale: bool = False


@dataclass(frozen=True)
class ForceResize:
    """Exactly width x height; the aspect ratio may change."""

    width: int
    height: int


@dataclass(frozen=True)
class Rotate:
    """Rotate clockwise by ``angle`` degrees; non-right angles fill corners with ``background``."""

    angle: float
    background: str = "#000000"


@dataclass(frozen=True)
class ConvertFormat:
    format: str
    quality: int | None = None


@dataclass(frozen=True)
class Watermark:
    """Text watermark; ``size`` is the text height as a fraction of the image height."""

    text: str
    position: str = "bottom-right"
    opacity: float = 0.5
    size: float = 0.05
    color: str = "#ffffff"


@dataclass(frozen=True)
class Thumbnail:
    """Shrink-on-load thumbnail fitting width x height (crop fills the box exactly)."""

    width: int
    height: int | None = None
    crop: bool = False


@dataclass(frozen=True)
class Transcode:
    """Adaptive-bitrate HLS ladder; rungs above the source height are skipped."""

    renditions: tuple[int, ...] = DEFAULT_LADDER
    segment_seconds: int = 6
    segment_type: str = "ts"


@dataclass(frozen=True)
class TranscodeResolution:
    """One MP4 (H.264 + AAC) scaled to ``height`` (aspect kept) or exactly width x height."""

    height: int
    width: int | None = None


@dataclass(frozen=True)
class Poster:
    """A JPEG frame at ``at_seconds`` (clamped to the duration), optionally scaled to ``width``."""

    at_seconds: float = 1.0
    width: int | None = None


Params = (
    Resize | ForceResize | Rotate | ConvertFormat | Watermark | Thumbnail | Transcode | TranscodeResolution | Poster
)


def _only(raw: Mapping[str, Any], allowed: set[str]) -> None:
    for key in raw:
        if key not in allowed:
            raise _FieldError(key, raw[key], sorted(allowed), f"unknown field '{key}'")


def _dims(raw: Mapping[str, Any], need_both: bool) -> tuple[int | None, int | None]:
    width = _int_field(raw, "width", 1, MAX_DIMENSION)
    height = _int_field(raw, "height", 1, MAX_DIMENSION)
    if need_both and (width is None or height is None):
        missing = "width" if width is None else "height"
        raise _FieldError(missing, None, f"an integer from 1 to {MAX_DIMENSION}", f"'{missing}' is required")
    if width is None and height is None:
        raise _FieldError("width", None, "width and/or height", "at least one of 'width' or 'height' is required")
    return width, height


def _bool_field(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise _FieldError(name, value, [True, False], f"'{name}' must be true or false")
    return value


def parse_resize(raw: Mapping[str, Any]) -> Resize:
    _only(raw, {"width", "height", "upscale"})
    width, height = _dims(raw, need_both=False)
    return Resize(width=width, height=height, upscale=_bool_field(raw, "upscale", False))


def parse_force_resize(raw: Mapping[str, Any]) -> ForceResize:
    _only(raw, {"width", "height"})
    width, height = _dims(raw, need_both=True)
    assert width is not None and height is not None
    return ForceResize(width=width, height=height)


def parse_rotate(raw: Mapping[str, Any]) -> Rotate:
    _only(raw, {"angle", "background"})
    if "angle" not in raw:
        raise _FieldError("angle", None, "a number of degrees from -360 to 360", "'angle' is required")
    angle = _float_field(raw, "angle", -360.0, 360.0, 0.0) % 360.0
    return Rotate(angle=angle, background=_color_field(raw, "background", "#000000"))


def parse_convert_format(raw: Mapping[str, Any]) -> ConvertFormat:
    _only(raw, {"format", "quality"})
    fmt = _choice_field(raw, "format", IMAGE_FORMATS, None, FORMAT_ALIASES)
    assert fmt is not None
    quality = _int_field(raw, "quality", 1, 100)
    if quality is not None and fmt in ("png", "gif"):
        raise _FieldError("quality", quality, "omitted for png and gif", f"'quality' does not apply to {fmt}")
    return ConvertFormat(format=fmt, quality=quality)


def parse_watermark(raw: Mapping[str, Any]) -> Watermark:
    _only(raw, {"text", "position", "opacity", "size", "color"})
    position = _choice_field(raw, "position", POSITIONS, "bottom-right")
    assert position is not None
    return Watermark(
        text=_text_field(raw, "text", 200),
        position=position,
        opacity=_float_field(raw, "opacity", 0.0, 1.0, 0.5),
        size=_float_field(raw, "size", 0.01, 1.0, 0.05),
        color=_color_field(raw, "color", "#ffffff"),
    )


def parse_thumbnail(raw: Mapping[str, Any]) -> Thumbnail:
    _only(raw, {"width", "height", "crop"})
    width = _int_field(raw, "width", 1, 4096)
    if width is None:
        raise _FieldError("width", None, "an integer from 1 to 4096", "'width' is required")
    return Thumbnail(width=width, height=_int_field(raw, "height", 1, 4096), crop=_bool_field(raw, "crop", False))


def parse_transcode(raw: Mapping[str, Any]) -> Transcode:
    _only(raw, {"renditions", "segment_seconds", "segment_type"})
    renditions = raw.get("renditions", list(DEFAULT_LADDER))
    if not isinstance(renditions, list | tuple) or not renditions:
        raise _FieldError("renditions", renditions, list(VIDEO_HEIGHTS), "'renditions' must be a non-empty list")
    heights: list[int] = []
    for item in renditions:
        height = _resolution(item, "renditions")
        if height in heights:
            raise _FieldError("renditions", renditions, "distinct heights", f"'renditions' repeats {height}p")
        heights.append(height)
    return Transcode(
        renditions=tuple(sorted(heights, reverse=True)),
        segment_seconds=_int_field(raw, "segment_seconds", 2, 10, 6) or 6,
        segment_type=_choice_field(raw, "segment_type", SEGMENT_TYPES, "ts") or "ts",
    )


def _resolution(item: Any, name: str) -> int:
    """``720``, ``"720"``, ``"720p"`` or ``"4k"`` into a ladder height."""
    value = item
    if isinstance(item, str):
        text = item.strip().lower()
        value = 2160 if text in ("4k", "2160p", "uhd") else None
        match = _RESOLUTION.match(text) or re.fullmatch(r"\d+", text)
        if value is None and match:
            value = int(match.group(1) if match.groups() else match.group(0))
    if isinstance(value, bool) or value not in VIDEO_HEIGHTS:
        raise _FieldError(
            name, item, [f"{h}p" for h in VIDEO_HEIGHTS], f"'{name}' has an unsupported resolution {item!r}"
        )
    return int(value)


def parse_transcode_resolution(raw: Mapping[str, Any]) -> TranscodeResolution:
    _only(raw, {"height", "width", "resolution"})
    if "resolution" in raw:
        if "height" in raw or "width" in raw:
            raise _FieldError(
                "resolution",
                raw["resolution"],
                "resolution or width/height",
                "give 'resolution' or 'width'/'height', not both",
            )
        return TranscodeResolution(height=_resolution(raw["resolution"], "resolution"))
    height = _int_field(raw, "height", 2, 4320)
    if height is None:
        raise _FieldError("height", None, "an even integer from 2 to 4320", "'height' is required")
    width = _int_field(raw, "width", 2, 7680)
    for name, value in (("height", height), ("width", width)):
        if value is not None and value % 2:
            raise _FieldError(name, value, "an even number (H.264 4:2:0)", f"'{name}' must be even, got {value}")
    return TranscodeResolution(height=height, width=width)


def parse_poster(raw: Mapping[str, Any]) -> Poster:
    _only(raw, {"at_seconds", "width"})
    return Poster(
        at_seconds=_float_field(raw, "at_seconds", 0.0, 86400.0, 1.0), width=_int_field(raw, "width", 16, 4096)
    )


# --- the seed's compact string values ----------------------------------------------------


def _seed_size(value: Any) -> dict[str, Any]:
    return _parse_size(value)


def _seed_rotate(value: Any) -> dict[str, Any]:
    return {"angle": value}


def _seed_format(value: Any) -> dict[str, Any]:
    return {"format": value}


def _seed_text(value: Any) -> dict[str, Any]:
    return {"text": value}


def _seed_transcode(value: Any) -> dict[str, Any]:
    if value in (None, "", True) or (
        isinstance(value, str) and value.strip().lower() in ("true", "yes", "default", "all")
    ):
        return {}
    if isinstance(value, str):
        return {"renditions": [v for v in re.split(r"[,\s]+", value.strip()) if v]}
    return {"renditions": value}


def _seed_resolution(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and _SIZE.match(value) and "x" in value.lower():
        return _parse_size(value, "resolution")
    return {"resolution": value}


def _seed_poster(value: Any) -> dict[str, Any]:
    return {} if value in (None, "") else {"at_seconds": value}


@dataclass(frozen=True)
class OperationSpec:
    """A registered operation: its name, job type, full-form parser and seed-value parser."""

    name: str
    job_type: JobType
    parse: Callable[[Mapping[str, Any]], Params]
    seed: Callable[[Any], dict[str, Any]]
    aliases: tuple[str, ...] = ()


REGISTRY: dict[str, OperationSpec] = {
    spec.name: spec
    for spec in (
        OperationSpec("resize", JobType.IMAGE, parse_resize, _seed_size),
        OperationSpec("force-resize", JobType.IMAGE, parse_force_resize, _seed_size),
        OperationSpec("rotate", JobType.IMAGE, parse_rotate, _seed_rotate),
        OperationSpec("convert-format", JobType.IMAGE, parse_convert_format, _seed_format),
        OperationSpec("watermark", JobType.IMAGE, parse_watermark, _seed_text),
        OperationSpec("thumbnail", JobType.IMAGE, parse_thumbnail, _seed_size, ("generate-thumbnail",)),
        OperationSpec("transcode", JobType.VIDEO, parse_transcode, _seed_transcode),
        OperationSpec("transcode-resolution", JobType.VIDEO, parse_transcode_resolution, _seed_resolution),
        OperationSpec("poster", JobType.VIDEO, parse_poster, _seed_poster, ("generate-poster",)),
    )
}
_BY_NAME: dict[str, OperationSpec] = {name: spec for spec in REGISTRY.values() for name in (spec.name, *spec.aliases)}


def lookup(name: Any) -> OperationSpec | None:
    """The operation registered under ``name`` (case-insensitive; ``_`` and ``-`` alike)."""
    if not isinstance(name, str):
        return None
    return _BY_NAME.get(name.strip().lower().replace("_", "-"))


# --- the job spec ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    params: Params

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"op": self.name}
        for f in fields(self.params):
            value = getattr(self.params, f.name)
            if value is not None:
                body[f.name] = list(value) if isinstance(value, tuple) else value
        return body


@dataclass(frozen=True)
class JobSpec:
    """A validated, normalised, immutable job: what the worker executes, in order."""

    job_type: JobType
    operations: tuple[Operation, ...] = field(default_factory=tuple)

    def to_json(self) -> list[dict[str, Any]]:
        """The canonical list form, as stored in ``jobs.operations``."""
        return [op.to_dict() for op in self.operations]

    @property
    def output_format(self) -> str | None:
        for op in reversed(self.operations):
            if isinstance(op.params, ConvertFormat):
                return op.params.format
        return None


def _normalise_items(operations: Any, problems: list[Problem]) -> list[tuple[Any, dict[str, Any]]]:
    """Both input forms as a list of (name, raw params)."""
    if isinstance(operations, str):
        try:
            operations = json.loads(operations)
        except ValueError:
            problems.append(
                Problem("'operations' is a string but not JSON", field="operations", received=operations[:100])
            )
            return []
    items: list[tuple[Any, dict[str, Any]]] = []
    if isinstance(operations, Mapping):
        for index, (name, value) in enumerate(operations.items()):
            spec = lookup(name)
            if spec is None:
                items.append((name, {}))
                continue
            try:
                items.append((name, spec.seed(value)))
            except _FieldError as err:
                problems.append(
                    Problem(
                        f"operation {index} ({spec.name}): {err}",
                        spec.name,
                        index,
                        err.field,
                        err.received,
                        err.allowed,
                    )
                )
                items.append((None, {}))
        return items
    if isinstance(operations, list):
        for index, item in enumerate(operations):
            if not isinstance(item, Mapping) or "op" not in item:
                problems.append(
                    Problem(
                        f"operation {index} must be an object with an 'op' field",
                        index=index,
                        field="op",
                        received=item,
                    )
                )
                items.append((None, {}))
                continue
            items.append((item["op"], {k: v for k, v in item.items() if k != "op"}))
        return items
    problems.append(
        Problem(
            '\'operations\' must be a list of {"op": ...} objects or an object such as {"ROTATE": "180"}',
            field="operations",
            received=type(operations).__name__,
        )
    )
    return []


def parse_job(job_type: Any, operations: Any) -> JobSpec:
    """Validate a job request in either form; raise ContractError listing every problem."""
    problems: list[Problem] = []
    kind: JobType | None = None
    if isinstance(job_type, str) and job_type.strip().upper() in JobType.__members__:
        kind = JobType(job_type.strip().upper())
    else:
        problems.append(
            Problem(
                f"'job_type' must be one of IMAGE, VIDEO, got {job_type!r}",
                field="job_type",
                received=job_type,
                allowed=["IMAGE", "VIDEO"],
            )
        )
    items = _normalise_items(operations, problems)
    if not items and not problems:
        problems.append(Problem("at least one operation is required", field="operations", received=[]))
    if len(items) > MAX_OPERATIONS:
        problems.append(
            Problem(
                f"at most {MAX_OPERATIONS} operations are allowed, got {len(items)}",
                field="operations",
                received=len(items),
            )
        )
    parsed: list[Operation] = []
    for index, (name, raw) in enumerate(items):
        if name is None:
            continue  # already reported
        spec = lookup(name)
        if spec is None:
            allowed = sorted(n for n, s in REGISTRY.items() if kind is None or s.job_type == kind)
            problems.append(
                Problem(f"operation {index}: unknown operation {name!r}", str(name), index, "op", name, allowed)
            )
            continue
        if kind is not None and spec.job_type != kind:
            problems.append(
                Problem(
                    f"operation {index}: '{spec.name}' is a {spec.job_type} operation and cannot run in a {kind} job",
                    spec.name,
                    index,
                    "op",
                    name,
                    sorted(n for n, s in REGISTRY.items() if s.job_type == kind),
                )
            )
            continue
        try:
            parsed.append(Operation(spec.name, spec.parse(raw)))
        except _FieldError as err:
            problems.append(
                Problem(
                    f"operation {index} ({spec.name}): {err}", spec.name, index, err.field, err.received, err.allowed
                )
            )
    counts: dict[str, int] = {}
    for op in parsed:
        counts[op.name] = counts.get(op.name, 0) + 1
    for name in ("convert-format", "transcode", "thumbnail"):
        if counts.get(name, 0) > 1:
            problems.append(
                Problem(
                    f"'{name}' may appear at most once, got {counts[name]}",
                    name,
                    field="op",
                    received=counts[name],
                    allowed=1,
                )
            )
    if problems:
        raise ContractError(problems)
    assert kind is not None
    return JobSpec(kind, tuple(parsed))


def job_from_json(job_type: str, operations: list[dict[str, Any]]) -> JobSpec:
    """Rebuild a stored (already validated) job; used by the worker."""
    return parse_job(job_type, operations)
