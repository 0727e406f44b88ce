"""The job contract: both input forms normalise to one spec; bad input names its problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.shared.contract import (
    DEFAULT_LADDER,
    IMAGE_MODELS,
    MAX_OPERATIONS,
    REGISTRY,
    VIDEO_MODELS,
    ContractError,
    ConvertFormat,
    ForceResize,
    JobType,
    Poster,
    Resize,
    Rotate,
    Thumbnail,
    Transcode,
    TranscodeResolution,
    Watermark,
    lookup,
    parse_job,
)

ROOT = Path(__file__).resolve().parents[2]


def test_given_seed_object_form_when_parsed_then_operations_keep_key_order() -> None:
    spec = parse_job("IMAGE", {"ROTATE": "180", "WATERMARK": "bruh", "FORCE-RESIZE": "100x400"})
    assert [op.op for op in spec.operations] == ["rotate", "watermark", "force-resize"]
    assert spec.operations[0] == Rotate(angle=180.0)
    assert spec.operations[1] == Watermark(text="bruh")
    assert spec.operations[2] == ForceResize(width=100, height=400)


def test_given_list_form_when_parsed_then_equals_seed_form() -> None:
    seed = parse_job("IMAGE", {"RESIZE": "800x600", "CONVERT-FORMAT": "webp"})
    listed = parse_job(
        "image", [{"op": "resize", "width": 800, "height": 600}, {"op": "convert-format", "format": "webp"}]
    )
    assert seed == listed
    assert listed.job_type is JobType.IMAGE
    assert listed.output_format == "webp"


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ([{"op": "resize", "width": 800}], Resize(width=800)),
        ([{"op": "resize", "height": 600, "upscale": True}], Resize(height=600, upscale=True)),
        ([{"op": "rotate", "angle": -90}], Rotate(angle=270.0)),
        ([{"op": "rotate", "angle": 33.5, "background": "#FF0000"}], Rotate(angle=33.5, background="#ff0000")),
        ([{"op": "convert-format", "format": "JPG", "quality": 80}], ConvertFormat(format="jpeg", quality=80)),
        ([{"op": "convert-format", "format": "avif"}], ConvertFormat(format="avif")),
        (
            [{"op": "watermark", "text": "© me", "position": "center", "opacity": 0.3, "size": 0.1}],
            Watermark(text="© me", position="center", opacity=0.3, size=0.1),
        ),
        ([{"op": "thumbnail", "width": 200, "height": 200, "crop": True}], Thumbnail(width=200, height=200, crop=True)),
        ({"GENERATE-THUMBNAIL": "150x100"}, Thumbnail(width=150, height=100)),
        ({"THUMBNAIL": "150"}, Thumbnail(width=150)),
        ({"resize": "x300"}, Resize(height=300)),
    ],
)
def test_given_valid_image_operation_when_parsed_then_typed_params(operations: Any, expected: object) -> None:
    spec = parse_job("IMAGE", operations)
    assert spec.operations[0] == expected


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ({"TRANSCODE": ""}, Transcode()),
        ({"TRANSCODE": "720p, 1080p"}, Transcode(renditions=(1080, 720))),
        ({"TRANSCODE": "4k,480p"}, Transcode(renditions=(2160, 480))),
        (
            [{"op": "transcode", "renditions": [360], "segment_type": "fmp4", "segment_seconds": 4}],
            Transcode(renditions=(360,), segment_seconds=4, segment_type="fmp4"),
        ),
        ({"TRANSCODE-RESOLUTION": "1280x720"}, TranscodeResolution(height=720, width=1280)),
        ({"TRANSCODE-RESOLUTION": "480p"}, TranscodeResolution(height=480)),
        ([{"op": "transcode-resolution", "height": 720}], TranscodeResolution(height=720)),
        ({"POSTER": "2.5"}, Poster(at_seconds=2.5)),
        ([{"op": "poster"}], Poster()),
    ],
)
def test_given_valid_video_operation_when_parsed_then_typed_params(operations: Any, expected: object) -> None:
    spec = parse_job("VIDEO", operations)
    assert spec.operations[0] == expected
    assert DEFAULT_LADDER == (2160, 1440, 1080, 720, 480, 360)


BAD_INPUTS: list[tuple[str, Any, Any, str]] = [
    # (job_type, operations, expected field, fragment of the message)
    ("AUDIO", [{"op": "resize", "width": 1}], "job_type", "IMAGE, VIDEO"),
    ("IMAGE", [], "operations", "at least one operation"),
    ("IMAGE", "not json", "operations", "not JSON"),
    ("IMAGE", 42, "operations", "must be a list"),
    ("IMAGE", [{"width": 10}], "op", "'op' field"),
    ("IMAGE", [{"op": "sharpen"}], "op", "unknown operation 'sharpen'"),
    ("IMAGE", {"BLUR": "3"}, "op", "unknown operation 'BLUR'"),
    ("IMAGE", [{"op": "transcode"}], "op", "VIDEO operation"),
    ("VIDEO", {"ROTATE": "90"}, "op", "IMAGE operation"),
    ("IMAGE", [{"op": "resize"}], "width", "at least one of 'width' or 'height'"),
    ("IMAGE", [{"op": "resize", "width": 0}], "width", "from 1 to 16384"),
    ("IMAGE", [{"op": "resize", "width": 99999}], "width", "from 1 to 16384"),
    ("IMAGE", [{"op": "resize", "width": "wide"}], "width", "must be an integer"),
    ("IMAGE", [{"op": "resize", "width": True}], "width", "must be an integer"),
    ("IMAGE", [{"op": "resize", "width": 5, "colour": "red"}], "colour", "unknown field 'colour'"),
    ("IMAGE", {"FORCE-RESIZE": "100"}, "height", "'height' is required"),
    ("IMAGE", {"FORCE-RESIZE": "axb"}, "size", "must look like 800x600"),
    ("IMAGE", [{"op": "rotate"}], "angle", "'angle' is required"),
    ("IMAGE", {"ROTATE": "sideways"}, "angle", "must be a number"),
    ("IMAGE", {"ROTATE": "720"}, "angle", "from -360.0 to 360.0"),
    ("IMAGE", [{"op": "rotate", "angle": 45, "background": "red"}], "background", "colour like #RRGGBB"),
    ("IMAGE", {"CONVERT-FORMAT": "bmp"}, "format", "one of jpeg, png, webp, avif, gif, tiff"),
    ("IMAGE", [{"op": "convert-format", "format": "png", "quality": 80}], "quality", "does not apply to png"),
    ("IMAGE", [{"op": "convert-format", "format": "jpeg", "quality": 101}], "quality", "from 1 to 100"),
    ("IMAGE", {"WATERMARK": ""}, "text", "'text' is required"),
    ("IMAGE", [{"op": "watermark", "text": "x" * 201}], "text", "too long"),
    ("IMAGE", [{"op": "watermark", "text": "a\nb"}], "text", "control characters"),
    ("IMAGE", [{"op": "watermark", "text": "hi", "opacity": 2}], "opacity", "from 0.0 to 1.0"),
    ("IMAGE", [{"op": "watermark", "text": "hi", "position": "middle"}], "position", "one of top-left"),
    ("IMAGE", [{"op": "thumbnail", "height": 10}], "width", "'width' is required"),
    ("VIDEO", {"TRANSCODE": "999p"}, "renditions", "unsupported resolution"),
    ("VIDEO", {"TRANSCODE": "720p,720"}, "renditions", "repeats 720p"),
    ("VIDEO", [{"op": "transcode", "renditions": []}], "renditions", "non-empty list"),
    ("VIDEO", [{"op": "transcode", "segment_type": "webm"}], "segment_type", "one of ts, fmp4"),
    ("VIDEO", [{"op": "transcode-resolution", "height": 721}], "height", "must be even"),
    ("VIDEO", [{"op": "transcode-resolution"}], "height", "'height' is required"),
    ("VIDEO", [{"op": "poster", "at_seconds": -1}], "at_seconds", "from 0.0 to 86400.0"),
    (
        "IMAGE",
        [{"op": "convert-format", "format": "png"}, {"op": "convert-format", "format": "gif"}],
        "op",
        "at most once",
    ),
    ("IMAGE", [{"op": "resize", "width": 10}] * 21, "operations", "at most 20 operations"),
]


@pytest.mark.parametrize(("job_type", "operations", "field", "fragment"), BAD_INPUTS)
def test_given_bad_input_when_parsed_then_error_names_field_and_problem(
    job_type: str, operations: Any, field: str, fragment: str
) -> None:
    with pytest.raises(ContractError) as caught:
        parse_job(job_type, operations)
    problems = caught.value.problems
    assert any(p.field == field and fragment in p.message for p in problems), problems
    details = caught.value.details()["problems"]
    assert all("message" in p for p in details)


def test_given_bad_operation_when_parsed_then_problem_names_operation_index_received_and_allowed() -> None:
    with pytest.raises(ContractError) as caught:
        parse_job("IMAGE", [{"op": "resize", "width": 5}, {"op": "convert-format", "format": "bmp"}])
    (problem,) = caught.value.problems
    assert problem.operation == "convert-format"
    assert problem.index == 1
    assert problem.received == "bmp"
    assert "webp" in problem.allowed


def test_given_several_bad_operations_when_parsed_then_every_problem_is_reported() -> None:
    with pytest.raises(ContractError) as caught:
        parse_job("IMAGE", {"ROTATE": "x", "BLUR": "1", "CONVERT-FORMAT": "bmp"})
    assert [p.index for p in caught.value.problems] == [0, 1, 2]


def test_given_a_spec_when_round_tripped_through_json_then_it_is_equal_and_immutable() -> None:
    spec = parse_job(
        "VIDEO",
        [{"op": "transcode", "renditions": ["720p", 360]}, {"op": "poster", "at_seconds": 3}],
    )
    stored = spec.to_json()
    assert stored == [
        {"op": "transcode", "renditions": [720, 360], "segment_seconds": 6, "segment_type": "ts"},
        {"op": "poster", "at_seconds": 3.0},
    ]
    assert parse_job("VIDEO", stored) == spec
    with pytest.raises(ValidationError, match="frozen"):
        spec.operations[0].segment_seconds = 2  # type: ignore[misc]


PROBLEM_KEYS = {"message", "operation", "index", "field", "received", "allowed"}


@pytest.mark.parametrize(("job_type", "operations", "field", "fragment"), BAD_INPUTS)
def test_given_bad_input_when_reported_then_problems_keep_the_contract_shape_not_pydantics(
    job_type: str, operations: Any, field: str, fragment: str
) -> None:
    with pytest.raises(ContractError) as caught:
        parse_job(job_type, operations)
    for problem in caught.value.details()["problems"]:
        assert set(problem) <= PROBLEM_KEYS, problem
        assert "Input should" not in problem["message"] and "pydantic" not in problem["message"].lower()


def test_given_one_operation_with_several_bad_fields_when_parsed_then_each_field_is_named() -> None:
    with pytest.raises(ContractError) as caught:
        parse_job("IMAGE", [{"op": "resize", "width": 0, "height": "tall"}, {"op": "force-resize"}])
    named = [(p.index, p.field, p.received, p.allowed) for p in caught.value.problems]
    assert named == [
        (0, "width", 0, "1..16384"),
        (0, "height", "tall", "an integer from 1 to 16384"),
        (1, "width", None, "an integer from 1 to 16384"),
        (1, "height", None, "an integer from 1 to 16384"),
    ]


def test_given_more_operations_than_the_limit_when_parsed_then_only_the_count_is_reported() -> None:
    with pytest.raises(ContractError) as listed:
        parse_job("IMAGE", [{"op": "sharpen", "radius": -1}] * (MAX_OPERATIONS + 1))
    with pytest.raises(ContractError) as seeded:
        parse_job("IMAGE", {f"BLUR{n}": "x" for n in range(MAX_OPERATIONS + 1)})
    for caught in (listed, seeded):
        (problem,) = caught.value.problems
        assert (problem.field, problem.received) == ("operations", MAX_OPERATIONS + 1)
        assert f"at most {MAX_OPERATIONS} operations" in problem.message
    assert len(parse_job("IMAGE", [{"op": "rotate", "angle": 90}] * MAX_OPERATIONS).operations) == MAX_OPERATIONS


@pytest.mark.parametrize(
    ("operations", "field"),
    [
        ([{"op": None}], "op"),  # was read as a job of no operations
        ([{"op": "rotate", "angle": 90, "background": "#ffffff\n"}], "background"),  # crashed the worker
    ],
)
def test_given_bodies_that_were_let_through_by_mistake_when_parsed_then_they_are_refused(
    operations: Any, field: str
) -> None:
    with pytest.raises(ContractError) as caught:
        parse_job("IMAGE", operations)
    assert [p.field for p in caught.value.problems] == [field]


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ([{"op": "rotate", "angle": None}], Rotate(angle=0.0)),
        ([{"op": "resize", "width": None, "height": "300"}], Resize(height=300)),
        ([{"op": "watermark", "text": "hi", "opacity": None, "position": None}], Watermark(text="hi")),
        ([{"op": "GENERATE_THUMBNAIL", "width": "64"}], Thumbnail(width=64)),
        ({"transcode": 1}, Transcode()),
        ([{"op": "transcode-resolution", "resolution": " uhd "}], TranscodeResolution(height=2160)),
    ],
)
def test_given_the_seeds_lenient_values_when_parsed_then_they_keep_their_meaning(
    operations: Any, expected: object
) -> None:
    job_type = "VIDEO" if isinstance(expected, Transcode | TranscodeResolution) else "IMAGE"
    assert parse_job(job_type, operations).operations == (expected,)


def test_given_resolution_and_a_size_when_parsed_then_refused_naming_resolution() -> None:
    with pytest.raises(ContractError) as caught:
        parse_job("VIDEO", [{"op": "transcode-resolution", "resolution": "720p", "height": 720}])
    (problem,) = caught.value.problems
    assert (problem.field, problem.received, problem.allowed) == ("resolution", "720p", "resolution or width/height")


def test_given_the_registry_when_looked_up_then_names_aliases_and_seed_parsers_resolve() -> None:
    assert lookup(" Generate_Thumbnail ") is Thumbnail and lookup("generate-poster") is Poster
    assert lookup("blur") is None and lookup(42) is None
    assert Thumbnail.seed("150x100") == {"width": 150, "height": 100}
    assert set(REGISTRY) == {model.op_name() for model in (*IMAGE_MODELS, *VIDEO_MODELS)}
    assert all(model.job_type is JobType.IMAGE for model in IMAGE_MODELS)
    assert all(model.job_type is JobType.VIDEO for model in VIDEO_MODELS)


def test_given_the_dispatchers_handlers_when_imported_then_neither_the_contract_nor_pydantic_loads() -> None:
    """The dispatcher's bundle has no pydantic: it must not need the contract."""
    code = (
        "import sys, runtime.dispatcher.handler, runtime.dispatcher.migrate, runtime.dispatcher.sweeper; "
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'runtime.shared.contract'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
