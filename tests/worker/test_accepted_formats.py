"""The API accepts exactly what the worker reads: one list (runtime/shared/contract/media.py).

Every accepted MIME type has a sample here, made with real ffmpeg or libvips, that the worker
opens with the reader the contract names and processes; files that ffmpeg or libvips could read
but the list does not name are refused before any parser sees them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runtime.shared.contract import MIME_TYPES, JobSpec, JobType, Poster, Resize, media
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker import sandbox
from runtime.worker.errors import JobFailure
from runtime.worker.image import process_image, read_header
from runtime.worker.video import probe, process_video
from tests.media import FFMPEG

pytestmark = pytest.mark.integration

_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-b:a", "64k"]
#: accepted video MIME type -> (file name, ffmpeg output arguments)
VIDEO_SAMPLES: dict[str, tuple[str, list[str]]] = {
    "video/mp4": ("clip.mp4", [*_H264, *_AAC, "-f", "mp4"]),
    "video/x-m4v": ("clip.m4v", [*_H264, *_AAC, "-f", "ipod"]),
    "video/quicktime": ("clip.mov", [*_H264, *_AAC, "-f", "mov"]),
    "video/3gpp": ("clip.3gp", [*_H264, *_AAC, "-f", "3gp"]),
    "video/webm": ("clip.webm", ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus", "-f", "webm"]),
    "video/x-matroska": ("clip.mkv", [*_H264, *_AAC, "-f", "matroska"]),
    "video/x-msvideo": ("clip.avi", ["-c:v", "mpeg4", "-c:a", "pcm_s16le", "-f", "avi"]),
    "video/mpeg": ("clip.mpg", ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpeg"]),
    "video/mp2t": ("clip.ts", [*_H264, *_AAC, "-f", "mpegts"]),
    "video/ogg": ("clip.ogv", ["-c:v", "libtheora", "-c:a", "libvorbis", "-f", "ogg"]),
    "video/x-flv": ("clip.flv", [*_H264, *_AAC, "-f", "flv"]),
}
#: accepted image MIME type -> (file name, libvips save options). HEIC proper is HEVC-coded, but
#: this libheif cannot encode HEVC: its sample is the same HEIF container with AV1, so what it
#: proves for image/heic is the sniffing and the loader, not the HEVC decoder.
IMAGE_SAMPLES: dict[str, tuple[str, dict[str, object]]] = {
    "image/jpeg": ("photo.jpg", {}),
    "image/jpg": ("photo.jpg", {}),
    "image/pjpeg": ("photo.jpg", {"interlace": True}),
    "image/png": ("photo.png", {}),
    "image/webp": ("photo.webp", {}),
    "image/avif": ("photo.avif", {"compression": "av1"}),
    "image/heif": ("photo.heif", {"compression": "av1"}),
    "image/heic": ("photo.heic", {"compression": "av1"}),
    "image/gif": ("photo.gif", {}),
    "image/tiff": ("photo.tiff", {}),
}


def _video_sample(folder: Path, mime: str) -> Path:
    name, out_args = VIDEO_SAMPLES[mime]
    target = folder / mime.replace("/", "_") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"]
    args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", *out_args, str(target)]
    subprocess.run(args, check=True, capture_output=True)
    return target


def _image_sample(folder: Path, mime: str) -> Path:
    import pyvips

    name, options = IMAGE_SAMPLES[mime]
    target = folder / mime.replace("/", "_") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    image = pyvips.Image.xyz(96, 64).extract_band(0).bandjoin([128, 64]).cast("uchar")
    image.write_to_file(str(target), **options)
    return target


def test_given_the_contract_when_listed_then_every_accepted_type_has_a_sample_here_and_no_more() -> None:
    assert set(VIDEO_SAMPLES) == set(MIME_TYPES["VIDEO"])
    assert set(IMAGE_SAMPLES) == set(MIME_TYPES["IMAGE"])
    assert "image/bmp" not in MIME_TYPES["IMAGE"]  # libvips here has no BMP loader: not accepted


@pytest.mark.parametrize("mime", sorted(VIDEO_SAMPLES))
def test_given_a_sample_of_each_accepted_video_type_when_processed_then_it_is_read_with_its_demuxer(
    mime: str, tmp_path: Path
) -> None:
    source = _video_sample(tmp_path, mime)

    info = probe(source)
    (tmp_path / "out").mkdir()
    outputs = process_video(source, tmp_path / "out", [Poster(at_seconds=0.5, width=64)], Limits())

    assert info.container is not None and mime in info.container.mime_types
    assert info.duration == pytest.approx(1.0, abs=0.2) and (info.width, info.height) == (160, 120)
    assert [o.key for o in outputs] == ["poster.jpg"] and outputs[0].width == 64


@pytest.mark.parametrize("mime", sorted(IMAGE_SAMPLES))
def test_given_a_sample_of_each_accepted_image_type_when_processed_then_it_is_read_with_its_loader(
    mime: str, tmp_path: Path
) -> None:
    source = _image_sample(tmp_path, mime)

    header = read_header(source, Limits())
    result = process_image(source, tmp_path / "out", JobSpec(JobType.IMAGE, (Resize(width=48),)), Limits())

    assert header.source_format is not None and mime in header.source_format.mime_types
    assert header.loader.startswith(header.source_format.reader)
    assert (result.width, result.height) == (48, 32)


def _bmp(path: Path) -> Path:
    subprocess.run(
        [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _vips_file(path: Path) -> Path:
    import pyvips

    pyvips.Image.black(16, 16).write_to_file(str(path))
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


#: files that ffmpeg or libvips could open, but that no accepted type names
UNLISTED_IMAGES = {
    "bmp": lambda d: _bmp(d / "a.bmp"),
    "vips": lambda d: _vips_file(d / "a.v"),
    "csv": lambda d: _vips_file(d / "a.csv"),
    "matrix": lambda d: _vips_file(d / "a.mat"),
    "svg": lambda d: _text(d / "a.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'),
}


@pytest.mark.parametrize("name", sorted(UNLISTED_IMAGES))
def test_given_an_image_format_not_on_the_list_when_read_then_unsupported_before_libvips(
    name: str, tmp_path: Path
) -> None:
    path = UNLISTED_IMAGES[name](tmp_path)

    with pytest.raises(JobFailure) as err:
        read_header(path, Limits())

    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT, err.value.message


@pytest.mark.parametrize("name", ["svg", "csv", "matrix", "vips"])
def test_given_restricted_loaders_when_libvips_guesses_the_loader_then_only_listed_loaders_exist(
    name: str, tmp_path: Path
) -> None:
    import pyvips

    path = UNLISTED_IMAGES[name](tmp_path)
    sandbox.restrict_loaders()

    with pytest.raises(pyvips.Error, match="not a known file format"):
        pyvips.Image.thumbnail(str(path.rename(path.with_suffix(".png"))), 8)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("hls", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n"),
        ("ffconcat", "ffconcat version 1.0\nfile 'clip.mp4'\n"),
        ("concat", "file 'clip.mp4'\n"),
        ("sdp", "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n"),
    ],
)
def test_given_a_list_format_named_like_a_video_when_probed_then_unsupported_and_ffprobe_never_runs(
    name: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ffmpeg

    path = tmp_path / "input.mp4"
    path.write_text(text)
    called: list[str] = []
    monkeypatch.setattr(ffmpeg, "probe", lambda *a, **k: called.append(str(a)))

    with pytest.raises(JobFailure) as err:
        probe(path)

    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT and "playlists" in err.value.message
    assert called == []


def test_given_every_format_when_sniffed_then_no_two_formats_claim_the_same_sample(tmp_path: Path) -> None:
    samples = [_video_sample(tmp_path, m) for m in ("video/mp4", "video/mp2t", "video/webm")]
    samples += [_image_sample(tmp_path, m) for m in ("image/avif", "image/tiff", "image/webp")]
    for path in samples:
        head = sandbox.read_head(path)
        assert sum(f.magic(head) for f in media.FORMATS) == 1, path
