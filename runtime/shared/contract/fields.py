"""The building blocks of the operation models: field types, the base model, the seed's sizes.

A field type is declared once with its bounds (``Integer(1, 4096)``) and is at the same time
the check (today's lenient reading of the seed's values: ``"800"`` is an integer, ``"JPG"`` is
``jpeg``), the JSON Schema published in /openapi.json and the description of what is allowed
that an error carries. A check raises :class:`FieldError`, which the job parser turns into a
:class:`~runtime.shared.contract.problems.Problem`; pydantic's own messages never reach a client.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticUseDefault, core_schema

COLOUR = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_SIZE = re.compile(r"^\s*(\d*)\s*[xX\u00d7]\s*(\d*)\s*$")  # x or the multiplication sign
_DIGITS = re.compile(r"\s*\d+\s*")


class JobType(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class FieldError(ValueError):
    """What is wrong with one field: the value received and what is allowed.

    ``reason`` follows the field's name in the message (``'width' must be an integer``); a
    check that is not about its own field (cross-field rules, the seed's compact values) names
    the ``field`` and may give the whole ``message``.
    """

    def __init__(
        self,
        reason: str,
        received: Any = None,
        allowed: Any = None,
        *,
        field: str | None = None,
        message: str | None = None,
    ) -> None:
        self.reason = reason
        self.received = received
        self.allowed = allowed
        self.field = field
        self.message = message or (f"'{field}' {reason}" if field else reason)
        super().__init__(self.message)

    def message_for(self, name: str) -> str:
        """The message when the error belongs to field ``name`` (a field type's own check)."""
        return self.message if self.field else f"'{name}' {self.reason}"


class FieldType:
    """A field's check, JSON Schema and description of what is allowed (for errors).

    ``None`` is read as "not given" (the field's default, or "is required") unless
    ``none_is_value``: then it is checked like any other value, as the seed's readers did.
    """

    none_is_value: ClassVar[bool] = False

    @property
    def expected(self) -> Any:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def _validate(self, value: Any) -> Any:
        if value is None and not self.none_is_value:
            raise PydanticUseDefault()
        return self.check(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return self.json_schema()


@dataclass(frozen=True)
class Integer(FieldType):
    """An integer from ``lo`` to ``hi`` (the seed's digit strings such as ``"800"`` count)."""

    lo: int
    hi: int
    even: bool = False
    describe: str | None = None

    @property
    def expected(self) -> str:
        return self.describe or f"an integer from {self.lo} to {self.hi}"

    def check(self, value: Any) -> int:
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError("must be an integer", value, f"an integer from {self.lo} to {self.hi}")
        if not self.lo <= value <= self.hi:
            raise FieldError(f"must be from {self.lo} to {self.hi}, got {value}", value, f"{self.lo}..{self.hi}")
        if self.even and value % 2:
            raise FieldError(f"must be even, got {value}", value, "an even number (H.264 4:2:0)")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.lo, "maximum": self.hi}
        if self.even:
            schema["multipleOf"] = 2
        return schema


@dataclass(frozen=True)
class Number(FieldType):
    """A finite number from ``lo`` to ``hi`` (numeric strings such as ``"2.5"`` count)."""

    lo: float
    hi: float
    describe: str | None = None

    @property
    def expected(self) -> str:
        return self.describe or f"a number from {self.lo} to {self.hi}"

    def check(self, value: Any) -> float:
        raw = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise FieldError("must be a number", raw, f"a number from {self.lo} to {self.hi}")
        if not self.lo <= value <= self.hi:
            raise FieldError(f"must be from {self.lo} to {self.hi}, got {value}", value, f"{self.lo}..{self.hi}")
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Choice(FieldType):
    """One of ``allowed``, case-insensitive, with ``aliases`` (``jpg`` for ``jpeg``)."""

    allowed: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def expected(self) -> list[str]:
        return list(self.allowed)

    def check(self, value: Any) -> str:
        raw = value
        if isinstance(value, str):
            value = self.aliases.get(value.strip().lower(), value.strip().lower())
        if value not in self.allowed:
            raise FieldError(f"must be one of {', '.join(self.allowed)}", raw, list(self.allowed))
        return str(value)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.allowed)}


class Flag(FieldType):
    """``true`` or ``false``, nothing else."""

    none_is_value = True
    expected = [True, False]

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise FieldError("must be true or false", value, [True, False])
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Colour(FieldType):
    """``#RRGGBB`` or ``#RRGGBBAA``, stored lower-case."""

    none_is_value = True
    expected = "#RRGGBB or #RRGGBBAA"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not COLOUR.fullmatch(value):
            raise FieldError("must be a colour like #RRGGBB", value, self.expected)
        return value.lower()

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{COLOUR.pattern}$"}


@dataclass(frozen=True)
class Text(FieldType):
    """A non-blank string of printable characters, at most ``max_len`` long."""

    max_len: int
    none_is_value: ClassVar[bool] = True

    @property
    def expected(self) -> str:
        return f"a non-empty string of at most {self.max_len} characters"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise FieldError("is required", value, self.expected)
        if len(value) > self.max_len:
            raise FieldError("is too long", len(value), f"at most {self.max_len} characters")
        if any(ord(c) < 32 for c in value):
            raise FieldError("must not contain control characters", value, "printable characters")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_len,
            # one visible character; \x85 is whitespace to Python's strip() but not to ECMA's \s
            "pattern": r"^[^\x00-\x1f]*[^\s\x00-\x20\x85][^\x00-\x1f]*$",
        }


def parse_size(value: Any, name: str = "size") -> dict[str, int]:
    """The seed's ``"800x600"``, ``"800x"``, ``"x600"`` or ``"800"`` into width/height fields."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"width": value}
    if not isinstance(value, str):
        raise FieldError("must be a string like 800x600", value, "WIDTHxHEIGHT", field=name)
    value = value.strip()
    if value.isdigit():
        return {"width": int(value)}
    match = _SIZE.match(value)
    if not match or not (match.group(1) or match.group(2)):
        raise FieldError("must look like 800x600, 800x or x600", value, "WIDTHxHEIGHT", field=name)
    out: dict[str, int] = {}
    if match.group(1):
        out["width"] = int(match.group(1))
    if match.group(2):
        out["height"] = int(match.group(2))
    return out


def is_size(value: Any) -> bool:
    """Whether a seed value is written as a size (``1280x720``) rather than a resolution."""
    return isinstance(value, str) and bool(_SIZE.match(value)) and "x" in value.lower()


#: The seed's compact size, as published for the object form.
SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": "^\\s*(?:\\d+(?:\\s*[xX\u00d7]\\s*\\d*)?|[xX\u00d7]\\s*\\d+)\\s*$"},
        {"type": "integer", "minimum": 1},
    ],
    "description": "WIDTHxHEIGHT: 800x600, 800x (width only), x600 (height only) or 800",
}


def _publish(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """``op`` is what selects the model: required in the published form, without a default."""
    properties = schema.get("properties", {})
    for prop in properties.values():
        prop.pop("title", None)
        if prop.get("default", 0) is None:
            del prop["default"]
    properties.get("op", {}).pop("default", None)
    schema["required"] = ["op", *[name for name in schema.get("required", []) if name != "op"]]
    if issubclass(model, OperationModel):
        model.schema_extra(schema)


class OperationModel(BaseModel):
    """One operation of a job: its ``op`` and its typed, validated, immutable parameters.

    A subclass declares ``op: Literal["name"] = "name"`` (the discriminator), its fields with
    their types, the job type it belongs to, and ``seed``: the parser of the seed's compact value
    (``{"RESIZE": "800x600"}``) into its fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_publish)

    job_type: ClassVar[JobType]
    #: other names the seed used for this operation (``generate-thumbnail``)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: whether a job may hold this operation at most once
    once: ClassVar[bool] = False
    #: the JSON Schema of the seed's compact value, published for the object form
    seed_schema: ClassVar[dict[str, Any]] = {}
    #: input-only keys that a ``mode="before"`` validator turns into fields (``resolution``)
    input_only: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def schema_extra(schema: dict[str, Any]) -> None:
        """Add what field types cannot say (cross-field rules) to the published schema."""

    @classmethod
    def op_name(cls) -> str:
        name = cls.model_fields["op"].default
        assert isinstance(name, str), cls
        return name

    @classmethod
    def seed(cls, value: Any) -> dict[str, Any]:
        """The seed's compact value (``"800x600"``) as this operation's fields."""
        raise NotImplementedError(cls.__name__)

    @classmethod
    def field_type(cls, name: str) -> FieldType | None:
        info = cls.model_fields.get(name)
        return next((m for m in info.metadata if isinstance(m, FieldType)), None) if info else None

    @classmethod
    def only_known(cls, data: Any) -> bool:
        """Whether ``data`` names only this model's fields (unknown ones are reported first)."""
        return isinstance(data, Mapping) and set(data) <= set(cls.model_fields) | set(cls.input_only)

    def to_dict(self) -> dict[str, Any]:
        """The canonical list-form item, as stored in ``jobs.operations``."""
        return self.model_dump(mode="json", exclude_none=True)
