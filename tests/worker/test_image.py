"""Image operations on real libvips: sizes, order, orientation, metadata, formats, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from runtime.shared.contract import parse_job
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker.errors import Cancelled, JobFailure
from runtime.worker.image import process_image, read_header
from tests.media import make_exif_oriented_jpeg, make_image, make_png_claiming


def run(source: Path, tmp_path: Path, operations: object, limits: Limits | None = None, **kw: object):
    return process_image(source, tmp_path, parse_job("IMAGE", operations), limits or Limits(), **kw)


def test_given_rotate_then_force_resize_when_processed_then_differs_from_the_reverse_order(
    photo: Path, tmp_path: Path
) -> None:
    first = run(photo, tmp_path / "a", {"ROTATE": "90", "FORCE-RESIZE": "100x400"})
    second = run(
        photo, tmp_path / "b", [{"op": "force-resize", "width": 100, "height": 400}, {"op": "rotate", "angle": 90}]
    )
    assert (first.width, first.height) == (100, 400)
    assert (second.width, second.height) == (400, 100)


def test_given_resize_box_when_processed_then_fits_keeping_aspect(photo: Path, tmp_path: Path) -> None:
    result = run(photo, tmp_path, [{"op": "resize", "width": 300, "height": 300}])
    assert (result.width, result.height) == (300, 200)
    assert result.format == "jpeg" and result.path.name == "image.jpg"


def test_given_resize_larger_than_source_when_processed_then_not_upscaled(photo: Path, tmp_path: Path) -> None:
    result = run(photo, tmp_path, [{"op": "resize", "width": 4000}])
    assert (result.width, result.height) == (1200, 800)


def test_given_resize_with_upscale_when_processed_then_upscaled(photo: Path, tmp_path: Path) -> None:
    result = run(photo, tmp_path, [{"op": "resize", "height": 1600, "upscale": True}])
    assert (result.width, result.height) == (2400, 1600)


def test_given_rotate_after_resize_when_processed_then_rotation_reads_the_shrunk_image(
    photo: Path, tmp_path: Path
) -> None:
    result = run(photo, tmp_path, [{"op": "resize", "width": 300}, {"op": "rotate", "angle": 270}])
    assert (result.width, result.height) == (200, 300)


def test_given_arbitrary_angle_when_rotated_then_canvas_grows_and_corner_is_background(
    tmp_path: Path,
) -> None:
    source = make_image(tmp_path / "square.png", 200, 200)
    result = run(source, tmp_path / "o", [{"op": "rotate", "angle": 45, "background": "#00ff00"}])
    out = pyvips.Image.new_from_file(str(result.path))
    assert out.width > 270 and out.height > 270
    corner = out(2, 2)
    assert corner[1] > 200 and corner[0] < 50 and corner[2] < 50
    assert result.format == "png"


def test_given_exif_orientation_when_processed_then_auto_oriented_and_metadata_stripped(tmp_path: Path) -> None:
    source = make_exif_oriented_jpeg(tmp_path / "phone.jpg", 400, 200, orientation=6)
    result = run(source, tmp_path / "o", [{"op": "convert-format", "format": "jpeg", "quality": 80}])
    out = pyvips.Image.new_from_file(str(result.path))
    assert (out.width, out.height) == (200, 400)
    assert not out.get_typeof("exif-data")
    assert not out.get_typeof("orientation") or out.get("orientation") == 1


@pytest.mark.parametrize(
    ("fmt", "loader", "ext"),
    [
        ("png", "pngload", "png"),
        ("webp", "webpload", "webp"),
        ("avif", "heifload", "avif"),
        ("gif", "gifload", "gif"),
        ("tiff", "tiffload", "tiff"),
    ],
)
def test_given_convert_format_when_processed_then_written_in_that_format(
    photo: Path, tmp_path: Path, fmt: str, loader: str, ext: str
) -> None:
    result = run(photo, tmp_path, [{"op": "resize", "width": 200}, {"op": "convert-format", "format": fmt}])
    assert result.path.name == f"image.{ext}"
    assert pyvips.Image.new_from_file(str(result.path)).get("vips-loader") == loader


def test_given_watermark_when_processed_then_only_its_corner_changes(tmp_path: Path) -> None:
    source = make_image(tmp_path / "plain.png", 400, 300)
    result = run(
        source, tmp_path / "o", [{"op": "watermark", "text": "ACME", "size": 0.2, "opacity": 1.0, "color": "#ff00ff"}]
    )
    before = pyvips.Image.new_from_file(str(source))
    after = pyvips.Image.new_from_file(str(result.path))
    diff = (before - after).abs()
    assert diff.crop(200, 150, 200, 150).max() > 100  # bottom-right quadrant changed
    assert diff.crop(0, 0, 200, 150).max() == 0  # top-left untouched


def test_given_thumbnail_with_crop_when_processed_then_exact_box(photo: Path, tmp_path: Path) -> None:
    result = run(photo, tmp_path, {"GENERATE-THUMBNAIL": "120x120"})
    assert (result.width, result.height) == (120, 80)
    cropped = run(photo, tmp_path / "c", [{"op": "thumbnail", "width": 120, "height": 120, "crop": True}])
    assert (cropped.width, cropped.height) == (120, 120)


def test_given_png_with_alpha_when_converted_to_jpeg_then_flattened(tmp_path: Path) -> None:
    rgba = (pyvips.Image.black(64, 64, bands=3) + 100).cast("uchar").bandjoin_const(0).copy(interpretation="srgb")
    source = tmp_path / "alpha.png"
    rgba.write_to_file(str(source))
    result = run(source, tmp_path, [{"op": "convert-format", "format": "jpeg"}])
    out = pyvips.Image.new_from_file(str(result.path))
    assert out.bands == 3


def test_given_header_claiming_30000x30000_when_read_then_limit_exceeded_before_decoding(tmp_path: Path) -> None:
    bomb = make_png_claiming(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(JobFailure) as err:
        read_header(bomb, Limits())
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED
    assert "30000x30000 = 900,000,000 pixels; the limit is 100,000,000" in err.value.message


def test_given_text_file_named_jpg_when_processed_then_unsupported_format(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("hello, this is not an image\n" * 20)
    with pytest.raises(JobFailure) as err:
        run(fake, tmp_path, [{"op": "resize", "width": 10}])
    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("first", [{"op": "rotate", "angle": 180}, {"op": "resize", "width": 100}])
def test_given_truncated_jpeg_when_processed_then_input_unreadable(photo: Path, tmp_path: Path, first: dict) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[: photo.stat().st_size // 3])
    with pytest.raises(JobFailure) as err:
        run(cut, tmp_path, [first])
    assert err.value.code == ErrorCode.INPUT_UNREADABLE


def test_given_progress_hook_that_cancels_when_processing_then_cancelled_propagates(
    photo: Path, tmp_path: Path
) -> None:
    def cancel(fraction: float) -> None:
        raise Cancelled("job is CANCELLED")

    with pytest.raises(Cancelled):
        run(photo, tmp_path, [{"op": "rotate", "angle": 33}], on_progress=cancel)


def test_given_deadline_in_the_past_when_processing_then_timeout(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(JobFailure) as err:
        run(photo, tmp_path, [{"op": "rotate", "angle": 33}], deadline=0.0)
    assert err.value.code == ErrorCode.TIMEOUT


def test_given_resize_to_a_huge_result_when_processed_then_limit_exceeded_before_computing(
    photo: Path, tmp_path: Path
) -> None:
    with pytest.raises(JobFailure) as err:
        run(photo, tmp_path, [{"op": "force-resize", "width": 16000, "height": 16000}], Limits(max_image_pixels=10**8))
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED and "16000x16000" in err.value.message
    assert list(tmp_path.iterdir()) == []
