"""Reading requests safely: JSON bodies, query and header parameters validated against the same
JSON Schemas the OpenAPI document publishes, ids, client address and the public base URL.

The route wrapper (routing.py) calls these with what a route declares; views get the results.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from chalice.app import Request
from jsonschema import Draft7Validator, ValidationError

from runtime.api.chalicelib.domain import Invalid, TooLarge

#: Largest JSON body accepted; every body the API takes is small.
MAX_BODY_BYTES = 64 * 1024


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft7Validator:
    return Draft7Validator(json.loads(schema_json))


def _problem(error: ValidationError) -> dict[str, Any]:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}  # an object's schema here
        known = set(schema.get("properties", {}))
        unknown = sorted(str(k) for k in error.instance if k not in known)
        return {
            "field": ".".join(filter(None, [path, unknown[0] if len(unknown) == 1 else ""])) or path,
            "message": f"unknown field(s): {', '.join(unknown)}",
            "unknown": unknown,
            "allowed": sorted(known),
        }
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else ""
        return {"field": ".".join(filter(None, [path, name])), "message": f"'{name}' is required"}
    problem: dict[str, Any] = {"field": path, "message": error.message[:300]}
    if error.validator in ("enum", "minLength", "maxLength", "minimum", "maximum", "pattern", "type", "maxItems"):
        problem["constraint"] = {error.validator: error.validator_value}
    return problem


def validate(data: Any, schema: dict[str, Any]) -> None:
    """Raise 400 INVALID_BODY listing every problem (missing, unknown, wrong type, out of range)."""
    errors = sorted(
        _validator(json.dumps(schema, sort_keys=True)).iter_errors(data), key=lambda e: list(e.absolute_path)
    )
    if errors:
        # Every problem goes in; the answer lists the first few (errors.capped).
        problems = [_problem(e) for e in errors]
        raise Invalid("INVALID_BODY", "the request body is invalid: " + problems[0]["message"], {"problems": problems})


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def json_body(request: Request, schema: dict[str, Any] | None, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, validated. An empty body counts as ``{}`` when not required."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge("PAYLOAD_TOO_LARGE", f"the request body must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            raise Invalid("BODY_REQUIRED", "this request needs a JSON object body")
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise Invalid("MALFORMED_JSON", f"the request body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise Invalid("INVALID_BODY", f"the request body must be a JSON object, got {type(data).__name__}")
    if _has_nul(data):
        # PostgreSQL text cannot hold NUL, and no field has a use for it.
        raise Invalid("INVALID_BODY", "strings in the request body must not contain NUL characters")
    if schema is not None:
        validate(data, schema)
    return data


@dataclass(frozen=True)
class Param:
    """A declared query or header parameter: its schema validates it and is published as is."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    #: ``query`` or ``header``.
    location: str = "query"
    #: The code of the 400 when the value is missing or breaks the schema
    #: (default: INVALID_QUERY, INVALID_HEADER).
    code: str | None = None
    #: The message of that 400 instead of one generated from the schema.
    message: str | None = None
    #: Applied to the received text before it is validated (``str.upper``: a case-insensitive enum).
    normalise: Callable[[str], str] | None = None

    @property
    def arg(self) -> str:
        """The keyword the view receives it as (``Idempotency-Key`` -> ``idempotency_key``)."""
        return re.sub(r"\W", "_", self.name.lower())

    @property
    def error_code(self) -> str:
        return self.code or ("INVALID_HEADER" if self.location == "header" else "INVALID_QUERY")


@dataclass(frozen=True)
class QueryParam(Param):
    location: str = "query"


@dataclass(frozen=True)
class HeaderParam(Param):
    location: str = "header"


def _coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """The text as the schema's type (parameters arrive as strings); unchanged when it is not one."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _param_problem(param: Param, error: ValidationError) -> Invalid:
    schema = param.schema
    details: dict[str, Any] = {"field": param.name}
    if param.message is not None:
        message = param.message
    elif schema.get("type") == "integer" and {"minimum", "maximum"} <= set(schema):
        message = f"{param.name} must be an integer from {schema['minimum']} to {schema['maximum']}"
    elif "enum" in schema:
        message = f"{param.name} must be one of {', '.join(map(str, schema['enum']))}"
        details["allowed"] = list(schema["enum"])
    elif error.validator == "maxLength":
        message = f"{param.name} must be at most {error.validator_value} characters"
    else:
        message = f"{param.name} is invalid: {error.message[:200]}"
    if error.validator in ("enum", "minLength", "maxLength", "minimum", "maximum", "pattern", "type"):
        details["constraint"] = {error.validator: error.validator_value}
    return Invalid(param.error_code, message, details)


def read_params(request: Request, params: Sequence[Param], *, strict_query: bool = False) -> dict[str, Any]:
    """The declared parameters by :attr:`Param.arg`, validated (absent optional ones are None).

    An empty header counts as absent. ``strict_query`` refuses undeclared query parameters.
    """
    received = dict(request.query_params or {})
    if strict_query:
        declared = [p.name for p in params if p.location == "query"]
        unknown = sorted(set(received) - set(declared))
        if unknown:
            raise Invalid("INVALID_QUERY", f"unknown query parameter(s): {', '.join(unknown)}", {"allowed": declared})
    values: dict[str, Any] = {}
    for param in params:
        raw = received.get(param.name) if param.location == "query" else header(request, param.name)
        if raw is None:
            if param.required:
                raise Invalid(param.error_code, param.message or f"{param.name} is required", {"field": param.name})
            values[param.arg] = None
            continue
        text = param.normalise(raw) if param.normalise else raw
        value = _coerce(text, param.schema)
        error = next(iter(_validator(json.dumps(param.schema, sort_keys=True)).iter_errors(value)), None)
        if error is not None:
            raise _param_problem(param, error)
        values[param.arg] = value
    return values


def parse_id(value: str, what: str = "id") -> str:
    """A canonical UUID, or 400 INVALID_ID (ids in paths are UUIDs)."""
    try:
        return str(uuid.UUID(unquote(value)))
    except (ValueError, AttributeError, TypeError):
        raise Invalid("INVALID_ID", f"{what} must be a UUID, got {value[:60]!r}", {"field": what}) from None


def header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def client_ip(request: Request) -> str | None:
    identity = (request.context or {}).get("identity") or {}
    return identity.get("sourceIp") or None


#: C0 and C1 control characters and DEL: never meaningful in a stored header (and PostgreSQL
#: text cannot hold NUL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str | None, limit: int = 512) -> str | None:
    """A header value fit to store and echo: control characters removed, at most ``limit`` characters."""
    if value is None:
        return None
    cleaned = _CONTROL.sub("", value).strip()[:limit]
    return cleaned or None


def user_agent(request: Request) -> str | None:
    return printable(header(request, "user-agent"))


def base_url(request: Request, override: str | None = None) -> str:
    """The absolute URL of the API root as the caller reached it (Host, scheme, API Gateway stage)."""
    if override:
        return override
    host = header(request, "host") or "localhost"
    if not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", host):
        host = "localhost"
    proto = (header(request, "x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "https" if host.endswith(".amazonaws.com") else "http"
    stage = (request.context or {}).get("stage") or ""
    prefix = f"/{stage}" if stage and host.endswith(".amazonaws.com") else ""
    return f"{proto}://{host}{prefix}"
