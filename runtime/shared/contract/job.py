"""A job: its type and an ordered list of operations, read from either input form.

* the list form: ``[{"op": "resize", "width": 800}, {"op": "convert-format", "format": "webp"}]``
  (each item is validated as the :data:`Operation` union, which ``op`` discriminates);
* the seed's object form: ``{"ROTATE": "180", "FORCE-RESIZE": "100x400"}``, applied in key
  order, each value a compact string read by its operation's ``seed`` parser.

Both normalise into one immutable :class:`JobSpec`. The operation count is checked before any
operation is read; then every problem is collected, so a client fixes all of them in one round
trip. An unknown operation is an error, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, cast, get_args

from pydantic import Field, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from runtime.shared.contract.fields import FieldError, JobType, OperationModel
from runtime.shared.contract.image import ConvertFormat, ImageOperation, ImageUnion
from runtime.shared.contract.problems import ContractError, Problem
from runtime.shared.contract.video import VideoOperation, VideoUnion

#: The most operations one job may hold: enforced here and published in /openapi.json.
MAX_OPERATIONS = 20

IMAGE_MODELS: tuple[type[OperationModel], ...] = get_args(get_args(ImageOperation)[0])
VIDEO_MODELS: tuple[type[OperationModel], ...] = get_args(get_args(VideoOperation)[0])
#: Every operation of every job type; ``op`` selects the model (the two unions flatten into one).
Operation = Annotated[ImageUnion | VideoUnion, Field(discriminator="op")]

#: operation name -> model, in declaration order
REGISTRY: dict[str, type[OperationModel]] = {model.op_name(): model for model in (*IMAGE_MODELS, *VIDEO_MODELS)}
_BY_NAME = {name: model for model in REGISTRY.values() for name in (model.op_name(), *model.aliases)}
_ADAPTER: TypeAdapter[Operation] = TypeAdapter(Operation)
_LIST: TypeAdapter[list[Operation]] = TypeAdapter(list[Operation])


def lookup(name: Any) -> type[OperationModel] | None:
    """The operation registered under ``name`` (case-insensitive; ``_`` and ``-`` alike)."""
    if not isinstance(name, str):
        return None
    return _BY_NAME.get(name.strip().lower().replace("_", "-"))


@dataclass(frozen=True)
class JobSpec:
    """A validated, normalised, immutable job: what the worker executes, in order."""

    job_type: JobType
    operations: tuple[OperationModel, ...] = field(default_factory=tuple)

    def to_json(self) -> list[dict[str, Any]]:
        """The canonical list form, as stored in ``jobs.operations``."""
        return [op.to_dict() for op in self.operations]

    @property
    def output_format(self) -> str | None:
        for op in reversed(self.operations):
            if isinstance(op, ConvertFormat):
                return op.format
        return None


def _job_type(job_type: Any, problems: list[Problem]) -> JobType | None:
    if isinstance(job_type, str) and job_type.strip().upper() in JobType.__members__:
        return JobType(job_type.strip().upper())
    problems.append(
        Problem(
            f"'job_type' must be one of IMAGE, VIDEO, got {job_type!r}",
            field="job_type",
            received=job_type,
            allowed=["IMAGE", "VIDEO"],
        )
    )
    return None


def _entries(operations: Any, problems: list[Problem]) -> tuple[list[tuple[Any, Any]], bool]:
    """Either form as (name, value) pairs and whether they are the seed's compact values;
    nothing is read per operation when the count is over the limit."""
    if isinstance(operations, str):
        try:
            operations = json.loads(operations)
        except ValueError:
            problems.append(
                Problem("'operations' is a string but not JSON", field="operations", received=operations[:100])
            )
            return [], False
    if isinstance(operations, Mapping):
        entries, seeded = list(operations.items()), True
    elif isinstance(operations, list):
        entries, seeded = [(None, item) for item in operations], False
    else:
        problems.append(
            Problem(
                '\'operations\' must be a list of {"op": ...} objects or an object such as {"ROTATE": "180"}',
                field="operations",
                received=type(operations).__name__,
            )
        )
        return [], False
    if len(entries) > MAX_OPERATIONS:
        problems.append(
            Problem(
                f"at most {MAX_OPERATIONS} operations are allowed, got {len(entries)}",
                field="operations",
                received=len(entries),
            )
        )
        return [], False
    if not entries and not problems:
        problems.append(Problem("at least one operation is required", field="operations", received=[]))
    return entries, seeded


def _names(kind: JobType | None) -> list[str]:
    return sorted(name for name, model in REGISTRY.items() if kind is None or model.job_type == kind)


def _read(
    index: int, name: Any, value: Any, seeded: bool, kind: JobType | None
) -> tuple[type[OperationModel], dict[str, Any]] | Problem:
    """One entry as (model, fields), or the problem that stops it before its fields are read."""
    if not seeded:
        if not isinstance(value, Mapping) or "op" not in value:
            return Problem(
                f"operation {index} must be an object with an 'op' field", index=index, field="op", received=value
            )
        name, value = value["op"], {k: v for k, v in value.items() if k != "op"}
    model = lookup(name)
    if model is None:
        return Problem(f"operation {index}: unknown operation {name!r}", str(name), index, "op", name, _names(kind))
    op = model.op_name()
    if seeded:
        try:
            value = model.seed(value)
        except FieldError as err:
            return Problem(f"operation {index} ({op}): {err.message}", op, index, err.field, err.received, err.allowed)
    if kind is not None and model.job_type != kind:
        return Problem(
            f"operation {index}: '{op}' is a {model.job_type} operation and cannot run in a {kind} job",
            op,
            index,
            "op",
            name,
            _names(kind),
        )
    return model, value


def _problems(read: list[tuple[int, type[OperationModel]]], error: ValidationError) -> dict[int, list[Problem]]:
    """pydantic's errors in the contract's shape (never pydantic's own), by operation index."""
    problems: dict[int, list[Problem]] = {}
    for item in error.errors(include_url=False):
        index, model = read[int(item["loc"][0])]
        op = model.op_name()
        where = [str(part) for part in item["loc"][2:]]  # [1] is the discriminator's tag
        name = where[0] if where else None
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            field_name = cause.field or name
            message = cause.message_for(name) if name else cause.message
            received, allowed = cause.received, cause.allowed
        elif item["type"] == "missing" and name:
            field_name, message, received = name, f"'{name}' is required", None
            field_type = model.field_type(name)
            allowed = field_type.expected if field_type else None
        elif item["type"] == "extra_forbidden" and name:
            field_name, message, received = name, f"unknown field '{name}'", item["input"]
            allowed = sorted({*model.model_fields, *model.input_only} - {"op"})
        else:  # not reached by today's models; still no pydantic wording
            field_name, message, received, allowed = name, f"'{name or op}' is invalid", item["input"], None
        problem = Problem(f"operation {index} ({op}): {message}", op, index, field_name, received, allowed)
        problems.setdefault(index, []).append(problem)
    return problems


def parse_job(job_type: Any, operations: Any) -> JobSpec:
    """Validate a job request in either form; raise ContractError listing every problem."""
    problems: list[Problem] = []
    kind = _job_type(job_type, problems)
    entries, seeded = _entries(operations, problems)
    per_operation: dict[int, list[Problem]] = {}
    read: list[tuple[int, type[OperationModel]]] = []
    values: list[dict[str, Any]] = []
    for index, (name, value) in enumerate(entries):
        outcome = _read(index, name, value, seeded, kind)
        if isinstance(outcome, Problem):
            per_operation[index] = [outcome]
        else:
            read.append((index, outcome[0]))
            values.append({**outcome[1], "op": outcome[0].op_name()})
    try:
        parsed = _LIST.validate_python(values)  # one call: the common case is a valid body
    except ValidationError as err:
        per_operation.update(_problems(read, err))
        parsed = []
    problems += [problem for index in sorted(per_operation) for problem in per_operation[index]]
    valid = [model for index, model in read if index not in per_operation]
    for name, model in REGISTRY.items():
        count = valid.count(model)
        if model.once and count > 1:
            problems.append(
                Problem(f"'{name}' may appear at most once, got {count}", name, field="op", received=count, allowed=1)
            )
    if problems:
        raise ContractError(problems)
    assert kind is not None
    return JobSpec(kind, tuple(parsed))


# --- the published JSON Schema ----------------------------------------------------------------


class _OpenApi30(GenerateJsonSchema):
    """JSON Schema as OpenAPI 3.0's schema objects take it (``enum``, not ``const``)."""

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        result = super().literal_schema(schema)
        if "const" in result:
            result["enum"] = [result.pop("const")]
        return result


@cache
def _published(ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    union = _ADAPTER.json_schema(ref_template=ref_template, schema_generator=_OpenApi30)
    definitions = union.pop("$defs")
    list_form = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_OPERATIONS,
        "items": union,
        "description": "The operations in the order they are applied; `op` selects each one's fields.",
    }
    object_form = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": MAX_OPERATIONS,
        "properties": {
            name.upper(): model.seed_schema for model in REGISTRY.values() for name in (model.op_name(), *model.aliases)
        },
        "additionalProperties": False,
        "description": "The seed's form: operation -> compact value, applied in key order "
        '(e.g. {"ROTATE": "180", "FORCE-RESIZE": "100x400"}); names are case-insensitive.',
    }
    schema = {
        "oneOf": [list_form, object_form],
        "description": f"At most {MAX_OPERATIONS} operations, all of the job's type "
        f"(IMAGE: {', '.join(_names(JobType.IMAGE))}; VIDEO: {', '.join(_names(JobType.VIDEO))}).",
    }
    return schema, definitions


def operations_schema(ref_template: str = "#/components/schemas/{model}") -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of a request's ``operations`` (the operation models' own, in both forms)
    and the definitions it refers to through ``ref_template``; for OpenAPI 3.0."""
    schema, definitions = _published(ref_template)
    return _copy(schema), _copy(definitions)


def operation_schema(ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """The JSON Schema of one canonical operation (a stored ``jobs.operations`` item)."""
    return _copy(_published(ref_template)[0]["oneOf"][0]["items"])


def _copy(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy in plain JSON types (a JSON object stays one): callers may edit it without
    touching the cached schema."""
    return cast("dict[str, Any]", json.loads(json.dumps(schema)))
