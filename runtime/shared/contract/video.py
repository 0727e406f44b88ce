"""Video operations (ffmpeg in the worker): one model each, discriminated on ``op``.

Adding one: a model here (fields, ``seed`` parser), its member in :data:`VideoUnion`, and its
implementation registered in ``runtime/worker/video.py`` (a test fails until both exist).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from runtime.shared.contract.fields import (
    Choice,
    FieldError,
    FieldType,
    Integer,
    JobType,
    Number,
    OperationModel,
    is_size,
    parse_size,
)

VIDEO_HEIGHTS = (2160, 1440, 1080, 720, 480, 360, 240)
#: the default ladder reaches 4K; rungs above the source are skipped (runtime/worker/video.py).
DEFAULT_LADDER = (2160, 1440, 1080, 720, 480, 360)
SEGMENT_TYPES = ("ts", "fmp4")
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[pP]\s*$")


def read_resolution(item: Any) -> int:
    """``720``, ``"720"``, ``"720p"`` or ``"4k"`` into a ladder height."""
    value = item
    if isinstance(item, str):
        text = item.strip().lower()
        value = 2160 if text in ("4k", "2160p", "uhd") else None
        match = _RESOLUTION.match(text) or re.fullmatch(r"\d+", text)
        if value is None and match:
            value = int(match.group(1) if match.groups() else match.group(0))
    if isinstance(value, bool) or value not in VIDEO_HEIGHTS:
        raise FieldError(f"has an unsupported resolution {item!r}", item, [f"{h}p" for h in VIDEO_HEIGHTS])
    return int(value)


RESOLUTION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "enum": list(VIDEO_HEIGHTS)},
        {"type": "string", "enum": [*(f"{h}p" for h in VIDEO_HEIGHTS), "4k"]},
    ]
}


class Resolution(FieldType):
    """A ladder height: ``720``, ``"720p"`` or ``"4k"``."""

    none_is_value = True
    expected = [f"{h}p" for h in VIDEO_HEIGHTS]

    def check(self, value: Any) -> int:
        return read_resolution(value)

    def json_schema(self) -> dict[str, Any]:
        return RESOLUTION_SCHEMA


class Renditions(FieldType):
    """Distinct ladder heights, kept tallest first."""

    none_is_value = True
    expected = list(VIDEO_HEIGHTS)

    def check(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, list | tuple) or not value:
            raise FieldError("must be a non-empty list", value, list(VIDEO_HEIGHTS))
        heights: list[int] = []
        for item in value:
            height = read_resolution(item)
            if height in heights:
                raise FieldError(f"repeats {height}p", value, "distinct heights")
            heights.append(height)
        return tuple(sorted(heights, reverse=True))

    def json_schema(self) -> dict[str, Any]:
        # Heights as stored; "720p" and "4k" are read too, but 720 and "720p" would pass uniqueItems.
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": len(VIDEO_HEIGHTS),
            "uniqueItems": True,
            "items": {"type": "integer", "enum": list(VIDEO_HEIGHTS)},
            "description": 'distinct heights, e.g. [1080, 720]; "720p" and "4k" are read as heights too',
        }


class VideoModel(OperationModel):
    job_type: ClassVar[JobType] = JobType.VIDEO


class Transcode(VideoModel):
    """Adaptive-bitrate HLS ladder; rungs above the source height are skipped. At most once per job."""

    op: Literal["transcode"] = "transcode"
    renditions: Annotated[tuple[int, ...], Renditions()] = DEFAULT_LADDER
    segment_seconds: Annotated[int, Integer(2, 10)] = 6
    segment_type: Annotated[str, Choice(SEGMENT_TYPES)] = "ts"

    once: ClassVar[bool] = True
    seed_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "array", "items": RESOLUTION_SCHEMA}],
        "description": 'the rungs, e.g. "720p, 1080p" or "4k,480p"; "" or "default" for the default ladder',
    }

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        if value in (None, "", True) or (
            isinstance(value, str) and value.strip().lower() in ("true", "yes", "default", "all")
        ):
            return {}
        if isinstance(value, str):
            return {"renditions": [v for v in re.split(r"[,\s]+", value.strip()) if v]}
        return {"renditions": value}


class TranscodeResolution(VideoModel):
    """One MP4 (H.264 + AAC) scaled to ``height`` (aspect kept) or exactly width x height."""

    op: Literal["transcode-resolution"] = "transcode-resolution"
    height: Annotated[int, Integer(2, 4320, even=True, describe="an even integer from 2 to 4320")]
    width: Annotated[int | None, Integer(2, 7680, even=True)] = None

    input_only: ClassVar[tuple[str, ...]] = ("resolution",)
    seed_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"type": "string"}, {"type": "integer", "enum": list(VIDEO_HEIGHTS)}],
        "description": 'a resolution ("720p", "4k") or an exact size ("1280x720")',
    }

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return parse_size(value, "resolution") if is_size(value) else {"resolution": value}

    @model_validator(mode="before")
    @classmethod
    def _resolution(cls, data: Any) -> Any:
        """``resolution`` ("720p") is shorthand for ``height``; it cannot be given with a size."""
        if not isinstance(data, dict) or "resolution" not in data:
            return data
        rest = {k: v for k, v in data.items() if k != "resolution"}
        known = cls.only_known(data)  # else the unknown fields are the problem to report
        if "height" in data or "width" in data:
            if known:
                raise FieldError(
                    "conflicts with width/height",
                    data["resolution"],
                    "resolution or width/height",
                    field="resolution",
                    message="give 'resolution' or 'width'/'height', not both",
                )
            return rest
        try:
            return {**rest, "height": read_resolution(data["resolution"])}
        except FieldError as err:
            if known:
                raise FieldError(err.reason, err.received, err.allowed, field="resolution") from None
            return rest

    @staticmethod
    def schema_extra(schema: dict[str, Any]) -> None:
        schema["properties"]["resolution"] = {**RESOLUTION_SCHEMA, "description": "instead of height: 720p, 4k..."}
        schema["required"] = ["op"]
        schema["oneOf"] = [{"required": ["height"]}, {"required": ["resolution"]}]
        schema["not"] = {"required": ["resolution", "width"]}


class Poster(VideoModel):
    """A JPEG frame at ``at_seconds`` (clamped to the duration), optionally scaled to ``width``."""

    op: Literal["poster"] = "poster"
    at_seconds: Annotated[float, Number(0.0, 86400.0)] = 1.0
    width: Annotated[int | None, Integer(16, 4096)] = None

    aliases: ClassVar[tuple[str, ...]] = ("generate-poster",)
    seed_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"type": "number", "minimum": 0, "maximum": 86400}, {"type": "string"}],
        "description": 'seconds into the video ("" for 1 s)',
    }

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return {} if value in (None, "") else {"at_seconds": value}


#: Every video operation's model, as a plain union.
VideoUnion = Transcode | TranscodeResolution | Poster
#: Every video operation; ``op`` selects the model.
VideoOperation = Annotated[VideoUnion, Field(discriminator="op")]
