"""JSON Schemas of request bodies (used to validate them AND published in /openapi.json, so
the document cannot drift from what the API accepts) and of the main responses.

The one exception is a job's ``operations``: their schema is the job contract's (generated from
its operation models), published here, while the contract itself checks them, so that a bad
operation is answered 422 INVALID_JOB naming its operation, index and field.
"""

from __future__ import annotations

from typing import Any

from runtime.shared.contract import operation_schema, operations_schema
from runtime.shared.status import JobStatus, UploadStatus

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


UUID = {"type": "string", "format": "uuid"}
TIMESTAMP = {"type": "string", "format": "date-time"}

# --- requests ---------------------------------------------------------------------------------

CREATE_USER = obj(
    {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
        },
        # The seed's bounds: username 6-18 characters.
        "username": {"type": "string", "minLength": 6, "maxLength": 18, "pattern": r"^[^\s\x00-\x1f\x7f]+$"},
        "email": {
            "type": "string",
            "maxLength": 254,
            "pattern": r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$",
        },
        # The seed allowed 6-30; longer passphrases are accepted too.
        "password": {"type": "string", "minLength": 6, "maxLength": 128},
    },
    ["name", "username", "email", "password"],
)

CREATE_SESSION = obj(
    {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "include_refresh_token": {
            "type": "boolean",
            "description": "true: the refresh token is in the body too, for clients that keep it themselves "
            "(CLIs, servers); a browser leaves it out and holds it in the HttpOnly cookie only",
        },
    },
    ["email", "password"],
)

REFRESH_SESSION = obj({"refresh_token": {"type": "string", "minLength": 1, "maxLength": 4096}})

CREATE_API_KEY = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_CONTROL},
        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
    }
)

CREATE_UPLOAD = obj(
    {
        "file_name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL},
        "file_type": {"type": "string", "enum": ["IMAGE", "VIDEO", "image", "video"]},
        "mime_type": {"type": "string", "minLength": 3, "maxLength": 127, "pattern": r"^[A-Za-z]+/[A-Za-z0-9.+-]+$"},
        "size_bytes": {"type": "integer", "minimum": 1, "maximum": 5 * 1024**4},
        "multipart": {"type": "boolean"},
    },
    ["file_name", "file_type", "mime_type"],
)

COMPLETE_UPLOAD = obj(
    {
        "parts": {
            "type": "array",
            "maxItems": 10000,
            "items": obj(
                {
                    "part_number": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "etag": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                ["part_number", "etag"],
            ),
        }
    }
)

#: The operation models' schemas, which OPERATIONS refers to (``components/schemas`` of /openapi.json).
OPERATIONS, COMPONENTS = operations_schema("#/components/schemas/{model}")

_PROCESS_FIELDS: dict[str, Any] = {
    "job_type": {"type": "string", "maxLength": 16},
    "upload_id": {"type": "string", "maxLength": 64},
}
#: Published: the operations as the job contract types them, in the list or the seed's object form.
PROCESS = obj({**_PROCESS_FIELDS, "operations": OPERATIONS}, ["job_type", "upload_id", "operations"])
#: Validated by the view: the same body with the operations left to the job contract.
PROCESS_ENVELOPE = obj(
    {**_PROCESS_FIELDS, "operations": {"anyOf": [{"type": "object"}, {"type": "array"}]}},
    ["job_type", "upload_id", "operations"],
)

# --- responses --------------------------------------------------------------------------------

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
        }
    },
}

MESSAGE = {"type": "object", "properties": {"message": {"type": "string"}}}
HEALTH = {"type": "object", "properties": {"status": {"type": "string"}}}

USER = {
    "type": "object",
    "properties": {
        "id": UUID,
        "name": {"type": "string"},
        "username": {"type": "string"},
        "email": {"type": "string"},
        "password": {"nullable": True, "description": "always null (present for the seed's clients)"},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
}

TOKENS = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "access_token": {"type": "string"},
        "refresh_token": {
            "type": "string",
            "description": "only when the login asked for it (include_refresh_token) or the refresh sent it",
        },
        "token_type": {"type": "string"},
        "expires_in": {"type": "integer"},
        "session_id": UUID,
        "user_id": UUID,
    },
}

SESSION = {
    "type": "object",
    "properties": {
        "id": UUID,
        "valid": {"type": "boolean"},
        "user_agent": {"type": "string", "nullable": True},
        "ip": {"type": "string", "nullable": True},
        "user_id": UUID,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "current": {"type": "boolean"},
    },
}

API_KEY = {
    "type": "object",
    "properties": {
        "id": UUID,
        "name": {"type": "string"},
        "prefix": {"type": "string"},
        "enabled": {"type": "boolean"},
        "key": {"type": "string", "description": "the secret, returned once at creation"},
        "user_id": UUID,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "last_used_at": {"type": "string", "format": "date-time", "nullable": True},
        "expires_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}

UPLOAD = {
    "type": "object",
    "properties": {
        "upload_id": UUID,
        "status": {"type": "string", "enum": [s.value for s in UploadStatus]},
        "presigned_url": {
            "type": "string",
            "nullable": True,
            "description": "send the file here with `method`: PUT with `headers` (size_bytes declared, "
            "Content-Length signed) or POST a form of `fields` then the file (no size_bytes: S3 bounds it "
            "by the policy's content-length-range)",
        },
        "method": {"type": "string", "enum": ["PUT", "POST"]},
        "headers": {"type": "object"},
        "fields": {"type": "object", "description": "the POST form's fields, when `method` is POST"},
        "expires_in": {"type": "integer"},
        "max_bytes": {"type": "integer"},
        "presigned_post": {"type": "object", "nullable": True, "description": "alternative browser form upload"},
        "multipart": {"type": "object", "nullable": True},
        "key": {"type": "string"},
    },
}

JOB = {
    "type": "object",
    "properties": {
        "job_id": UUID,
        "processing_job_id": UUID,
        "media_id": UUID,
        "upload_id": UUID,
        "job_type": {"type": "string", "enum": ["IMAGE", "VIDEO"]},
        "operations": {"type": "array", "items": operation_schema("#/components/schemas/{model}")},
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "error": {"type": "object", "nullable": True},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "runner": {
            "type": "string",
            "enum": ["lambda", "fargate", "local"],
            "nullable": True,
            "description": "where the job runs or ran (null until a worker is started)",
        },
        "task_cpu": {"type": "integer", "nullable": True, "description": "Fargate CPU units the task was given"},
        "task_memory_mib": {"type": "integer", "nullable": True, "description": "task or function memory"},
        "timeout_seconds": {"type": "integer", "nullable": True, "description": "the run's time limit"},
        "estimated_seconds": {"type": "number", "nullable": True, "description": "expected run time at that size"},
        "compute_seconds": {"type": "number", "nullable": True, "description": "measured run time (claim to result)"},
        "estimated_cost_usd": {
            "type": "number",
            "nullable": True,
            "description": "compute cost of the run at list prices (runtime.shared.prices: date and region)",
        },
    },
}

JOB_LIST = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": JOB}, "next_cursor": {"type": "string", "nullable": True}},
}

DOWNLOAD = {
    "type": "object",
    "properties": {
        "job_id": UUID,
        "status": {"type": "string"},
        "expires_in": {"type": "integer"},
        "result_url": {"type": "string", "nullable": True},
        "playback_url": {"type": "string", "nullable": True, "description": "HLS master playlist through the API"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string"},
                    "name": {"type": "string"},
                    "url": {"type": "string"},
                    "mime": {"type": "string"},
                    "bytes": {"type": "integer"},
                    "playback_url": {"type": "string", "nullable": True},
                },
            },
        },
    },
}
