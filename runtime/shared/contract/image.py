"""Image operations (libvips in the worker): one model each, discriminated on ``op``.

Adding one: a model here (fields, ``seed`` parser), its member in :data:`ImageUnion`, and its
implementation registered in ``runtime/worker/image.py`` (a test fails until both exist).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from runtime.shared.contract.fields import (
    SIZE_SCHEMA,
    Choice,
    Colour,
    FieldError,
    Flag,
    Integer,
    JobType,
    Number,
    OperationModel,
    Text,
    parse_size,
)

MAX_DIMENSION = 16384
IMAGE_FORMATS = ("jpeg", "png", "webp", "avif", "gif", "tiff")
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
#: formats without a quality setting
LOSSLESS = ("png", "gif")
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")

Dimension = Integer(1, MAX_DIMENSION)
ThumbnailSide = Integer(1, 4096)


class ImageModel(OperationModel):
    job_type: ClassVar[JobType] = JobType.IMAGE


class Resize(ImageModel):
    """Fit within width x height, keeping the aspect ratio; never upscales unless asked."""

    op: Literal["resize"] = "resize"
    width: Annotated[int | None, Dimension] = None
    height: Annotated[int | None, Dimension] = None
    upscale: Annotated[bool, Flag()] = False

    seed_schema: ClassVar[dict[str, Any]] = SIZE_SCHEMA

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return parse_size(value)

    @model_validator(mode="before")
    @classmethod
    def _a_side(cls, data: Any) -> Any:
        if cls.only_known(data) and data.get("width") is None and data.get("height") is None:
            raise FieldError(
                "is required",
                None,
                "width and/or height",
                field="width",
                message="at least one of 'width' or 'height' is required",
            )
        return data

    @staticmethod
    def schema_extra(schema: dict[str, Any]) -> None:
        schema["anyOf"] = [{"required": ["width"]}, {"required": ["height"]}]


class ForceResize(ImageModel):
    """Exactly width x height; the aspect ratio may change."""

    op: Literal["force-resize"] = "force-resize"
    width: Annotated[int, Dimension]
    height: Annotated[int, Dimension]

    seed_schema: ClassVar[dict[str, Any]] = SIZE_SCHEMA

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return parse_size(value)


class Rotate(ImageModel):
    """Rotate clockwise by ``angle`` degrees; non-right angles fill corners with ``background``."""

    op: Literal["rotate"] = "rotate"
    angle: Annotated[float, Number(-360.0, 360.0, describe="a number of degrees from -360 to 360")]
    background: Annotated[str, Colour()] = "#000000"

    seed_schema: ClassVar[dict[str, Any]] = {
        "anyOf": [{"type": "number", "minimum": -360, "maximum": 360}, {"type": "string"}],
        "description": "degrees clockwise, e.g. 90 or -45.5",
    }

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return {"angle": value}

    @field_validator("angle", mode="before")
    @classmethod
    def _null_is_zero(cls, value: Any) -> Any:
        return 0.0 if value is None else value  # the seed's reader took a given null as 0

    @field_validator("angle")
    @classmethod
    def _clockwise(cls, value: float) -> float:
        return value % 360.0


class ConvertFormat(ImageModel):
    """The output's format, chosen when the image is saved; ``quality`` (1-100) applies to jpeg,
    webp, avif and tiff. At most once per job."""

    op: Literal["convert-format"] = "convert-format"
    format: Annotated[str, Choice(IMAGE_FORMATS, FORMAT_ALIASES)]
    quality: Annotated[int | None, Integer(1, 100)] = None

    once: ClassVar[bool] = True
    seed_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "description": f"one of {', '.join(IMAGE_FORMATS)} (jpg and tif too; any case)",
    }

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return {"format": value}

    @model_validator(mode="after")
    def _quality_applies(self) -> ConvertFormat:
        if self.quality is not None and self.format in LOSSLESS:
            raise FieldError(
                f"does not apply to {self.format}", self.quality, "omitted for png and gif", field="quality"
            )
        return self

    @staticmethod
    def schema_extra(schema: dict[str, Any]) -> None:
        lossy = [f for f in IMAGE_FORMATS if f not in LOSSLESS]
        schema["anyOf"] = [{"properties": {"format": {"enum": lossy}}}, {"not": {"required": ["quality"]}}]


class Watermark(ImageModel):
    """Text watermark; ``size`` is the text height as a fraction of the image height."""

    op: Literal["watermark"] = "watermark"
    text: Annotated[str, Text(200)]
    position: Annotated[str, Choice(POSITIONS)] = "bottom-right"
    opacity: Annotated[float, Number(0.0, 1.0)] = 0.5
    size: Annotated[float, Number(0.01, 1.0)] = 0.05
    color: Annotated[str, Colour()] = "#ffffff"

    seed_schema: ClassVar[dict[str, Any]] = {"type": "string", "minLength": 1, "maxLength": 200}

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return {"text": value}


class Thumbnail(ImageModel):
    """Shrink-on-load thumbnail fitting width x height (crop fills the box exactly). At most once
    per job."""

    op: Literal["thumbnail"] = "thumbnail"
    width: Annotated[int, ThumbnailSide]
    height: Annotated[int | None, ThumbnailSide] = None
    crop: Annotated[bool, Flag()] = False

    aliases: ClassVar[tuple[str, ...]] = ("generate-thumbnail",)
    once: ClassVar[bool] = True
    seed_schema: ClassVar[dict[str, Any]] = SIZE_SCHEMA

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        return parse_size(value)


#: Every image operation's model, as a plain union.
ImageUnion = Resize | ForceResize | Rotate | ConvertFormat | Watermark | Thumbnail
#: Every image operation; ``op`` selects the model.
ImageOperation = Annotated[ImageUnion, Field(discriminator="op")]
