"""The operations' JSON Schema in /openapi.json is the job contract's: generated from its models,
with its operation limit, accepting the bodies the contract accepts and refusing the ones it
refuses (a body the published schema allows is never one the contract turns down, but for the
rules the document states in words: one job type per job, some operations at most once)."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from jsonschema import Draft7Validator

from runtime.api.app import api
from runtime.api.chalicelib import schemas
from runtime.shared.contract import MAX_OPERATIONS, REGISTRY, ContractError, lookup, parse_job

DOCUMENT = api.openapi("http://127.0.0.1:1")
PROCESS_BODY = "#/paths/~1media~1process/post/requestBody/content/application~1json/schema"


def published() -> Draft7Validator:
    """The served document's process body, its $refs resolved inside the document."""
    return Draft7Validator({**DOCUMENT, "$ref": PROCESS_BODY})


def body(operations: Any, job_type: str = "IMAGE") -> dict[str, Any]:
    return {"job_type": job_type, "upload_id": "7b0e7d4e-2f0a-4a55-9a43-3f2bd3f0c8a1", "operations": operations}


def test_given_the_document_when_read_then_operations_carry_the_contracts_limit_and_every_model() -> None:
    operations = DOCUMENT["paths"]["/media/process"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    listed, seed = operations["properties"]["operations"]["oneOf"]
    assert listed["maxItems"] == MAX_OPERATIONS and seed["maxProperties"] == MAX_OPERATIONS
    assert listed["minItems"] == 1 and seed["minProperties"] == 1
    mapping = listed["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(REGISTRY)
    components = DOCUMENT["components"]["schemas"]
    for name, model in REGISTRY.items():
        target = mapping[name].removeprefix("#/components/schemas/")
        assert components[target]["properties"]["op"] == {"enum": [name], "type": "string"}
        assert set(components[target]["properties"]) >= set(model.model_fields)
    assert {name.upper() for name in REGISTRY} <= set(seed["properties"])
    assert "GENERATE-THUMBNAIL" in seed["properties"]


def test_given_the_view_and_the_document_when_compared_then_they_differ_only_in_who_checks_operations() -> None:
    envelope = {k: v for k, v in schemas.PROCESS_ENVELOPE["properties"].items() if k != "operations"}
    assert envelope == {k: v for k, v in schemas.PROCESS["properties"].items() if k != "operations"}
    assert schemas.PROCESS_ENVELOPE["required"] == schemas.PROCESS["required"]


GOOD: list[tuple[str, Any]] = [
    ("IMAGE", {"ROTATE": "180", "WATERMARK": "bruh", "FORCE-RESIZE": "100x400"}),
    ("IMAGE", {"RESIZE": "800x600", "CONVERT-FORMAT": "webp"}),
    ("IMAGE", {"GENERATE-THUMBNAIL": "150x100"}),
    ("IMAGE", {"RESIZE": "x300", "ROTATE": 90}),
    ("VIDEO", {"TRANSCODE": "720p, 1080p", "POSTER": "2.5"}),
    ("VIDEO", {"TRANSCODE-RESOLUTION": "1280x720"}),
    (
        "IMAGE",
        [{"op": "resize", "width": 800, "height": 600}, {"op": "convert-format", "format": "webp", "quality": 80}],
    ),
    ("IMAGE", [{"op": "rotate", "angle": 33.5, "background": "#ff0000"}, {"op": "watermark", "text": "© me"}]),
    ("IMAGE", [{"op": "watermark", "text": "hi", "position": "center", "opacity": 0.3, "size": 0.1}]),
    ("IMAGE", [{"op": "thumbnail", "width": 200, "height": 200, "crop": True}]),
    ("IMAGE", [{"op": "convert-format", "format": "png"}]),
    ("VIDEO", [{"op": "transcode", "renditions": [1080, 720], "segment_type": "fmp4"}, {"op": "poster"}]),
    ("VIDEO", [{"op": "transcode-resolution", "resolution": "4k"}]),
    ("VIDEO", [{"op": "transcode-resolution", "height": 720, "width": 1280}, {"op": "poster", "at_seconds": 3}]),
    ("IMAGE", [{"op": "resize", "width": 10}] * MAX_OPERATIONS),
]


@pytest.mark.parametrize(("job_type", "operations"), GOOD)
def test_given_a_good_body_when_checked_then_the_document_and_the_contract_accept_it(
    job_type: str, operations: Any
) -> None:
    assert list(published().iter_errors(body(operations, job_type))) == []
    assert parse_job(job_type, operations).operations


BAD: list[tuple[str, Any]] = [
    ("IMAGE", []),
    ("IMAGE", {}),
    ("IMAGE", "[]"),
    ("IMAGE", 42),
    ("IMAGE", [{"width": 10}]),
    ("IMAGE", [{"op": "sharpen"}]),
    ("IMAGE", {"BLUR": "3"}),
    ("IMAGE", [{"op": "resize"}]),
    ("IMAGE", [{"op": "resize", "width": 0}]),
    ("IMAGE", [{"op": "resize", "width": 99999}]),
    ("IMAGE", [{"op": "resize", "width": True}]),
    ("IMAGE", [{"op": "resize", "width": 5, "colour": "red"}]),
    ("IMAGE", [{"op": "force-resize", "width": 100}]),
    ("IMAGE", [{"op": "rotate"}]),
    ("IMAGE", [{"op": "rotate", "angle": 720}]),
    ("IMAGE", [{"op": "rotate", "angle": 45, "background": "red"}]),
    ("IMAGE", [{"op": "convert-format", "format": "bmp"}]),
    ("IMAGE", [{"op": "convert-format", "format": "png", "quality": 80}]),
    ("IMAGE", [{"op": "convert-format", "format": "jpeg", "quality": 101}]),
    ("IMAGE", [{"op": "watermark", "text": ""}]),
    ("IMAGE", [{"op": "watermark", "text": "x" * 201}]),
    ("IMAGE", [{"op": "watermark", "text": "\x1f"}]),  # whitespace to Python, not to ECMA's \s
    ("IMAGE", [{"op": "watermark", "text": "hi", "position": "middle"}]),
    ("IMAGE", [{"op": "watermark", "text": "hi", "opacity": 2}]),
    ("IMAGE", [{"op": "thumbnail", "height": 10}]),
    ("VIDEO", [{"op": "transcode", "renditions": []}]),
    ("VIDEO", [{"op": "transcode", "renditions": [720, 720]}]),
    ("VIDEO", [{"op": "transcode", "renditions": [999]}]),
    ("VIDEO", [{"op": "transcode", "renditions": [240, "240p"]}]),  # distinct to uniqueItems, not to us
    ("VIDEO", [{"op": "transcode", "segment_type": "webm"}]),
    ("VIDEO", [{"op": "transcode", "segment_seconds": 11}]),
    ("VIDEO", [{"op": "transcode-resolution", "height": 721}]),
    ("VIDEO", [{"op": "transcode-resolution"}]),
    ("VIDEO", [{"op": "transcode-resolution", "resolution": "720p", "width": 1280}]),
    ("VIDEO", [{"op": "poster", "at_seconds": -1}]),
    ("VIDEO", [{"op": "poster", "width": 8}]),
    ("IMAGE", [{"op": "resize", "width": 10}] * (MAX_OPERATIONS + 1)),
    ("IMAGE", {"ROTATE": "90", **{"r" + "o" * n + "tate": "90" for n in range(MAX_OPERATIONS)}}),
]


@pytest.mark.parametrize(("job_type", "operations"), BAD)
def test_given_a_bad_body_when_checked_then_the_document_and_the_contract_refuse_it(
    job_type: str, operations: Any
) -> None:
    assert list(published().iter_errors(body(operations, job_type))) != []
    with pytest.raises(ContractError):
        parse_job(job_type, operations)


_PROCESS = schemathesis.openapi.from_dict(DOCUMENT)["/media/process"]["POST"]


@given(case=_PROCESS.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
@hypothesis.settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_given_operations_the_document_allows_when_parsed_then_the_contract_accepts_them(case: Any) -> None:
    operations = case.body["operations"]
    hypothesis.assume(isinstance(operations, list))  # the seed's compact values are documented in words
    models = [lookup(item["op"]) for item in operations]
    kinds = {model.job_type for model in models if model is not None}
    hypothesis.assume(len(kinds) == 1)  # one job type per job: stated in the document, not typed
    hypothesis.assume(all(not model.once or models.count(model) == 1 for model in models if model is not None))
    spec = parse_job(kinds.pop(), operations)
    assert [op.op for op in spec.operations] == [item["op"] for item in operations]
