"""The job contract: both input forms normalise to one spec; bad input names its problem."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from runtime.shared.contract import (
    DEFAULT_LADDER,
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
    parse_job,
)


def test_given_seed_object_form_when_parsed_then_operations_keep_key_order() -> None:
    spec = parse_job("IMAGE", {"ROTATE": "180", "WATERMARK": "bruh", "FORCE-RESIZE": "100x400"})
    assert [op.name for op in spec.operations] == ["rotate", "watermark", "force-resize"]
    assert spec.operations[0].params == Rotate(angle=180.0)
    assert spec.operations[1].params == Watermark(text="bruh")
    assert spec.operations[2].params == ForceResize(width=100, height=400)


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
        ([{"op": "thumbnail", "width": 200, "height": 200, "crop": True}], Thumbnail(200, 200, True)),
        ({"GENERATE-THUMBNAIL": "150x100"}, Thumbnail(150, 100)),
        ({"THUMBNAIL": "150"}, Thumbnail(150)),
        ({"resize": "x300"}, Resize(height=300)),
    ],
)
def test_given_valid_image_operation_when_parsed_then_typed_params(operations: Any, expected: object) -> None:
    spec = parse_job("IMAGE", operations)
    assert spec.operations[0].params == expected


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
    assert spec.operations[0].params == expected
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
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.operations[0].params.segment_seconds = 2  # type: ignore[misc]
