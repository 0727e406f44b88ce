"""The contract's list of media formats: each MIME type has one reader, and magic bytes pick a
format (or none) without any parser (runtime/shared/contract/media.py)."""

from __future__ import annotations

import pytest

from runtime.shared.contract import MEDIA_FORMATS, MIME_ALIASES, MIME_TYPES, JobType, sniff

pytestmark = pytest.mark.unit


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 64


def _ts(packet: int, offset: int = 0) -> bytes:
    head = bytearray(b"\xff" * offset + b"\x00" * (packet * 6))
    for k in range(6):
        head[offset + k * packet] = 0x47
    return bytes(head)


def test_given_the_list_when_read_then_each_mime_type_names_exactly_one_format_of_its_job_type() -> None:
    for kind in JobType:
        declared = [m for f in MEDIA_FORMATS if f.job_type == kind for m in f.mime_types]
        assert len(declared) == len(set(declared)) and tuple(declared) == MIME_TYPES[kind.value]
    assert all(alias in MIME_TYPES["IMAGE"] + MIME_TYPES["VIDEO"] for alias in MIME_ALIASES)
    assert all(target in MIME_TYPES["IMAGE"] + MIME_TYPES["VIDEO"] for target in MIME_ALIASES.values())
    assert all(f.vips_class for f in MEDIA_FORMATS if f.job_type == JobType.IMAGE)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"GIF89a" + b"\x00" * 16, "gif"),
        (b"II*\x00" + b"\x00" * 16, "tiff"),
        (_ftyp(b"avif", b"mif1", b"miaf"), "heif"),
        (_ftyp(b"mif1", b"heic"), "heif"),
        (_ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "mov"),
        (_ftyp(b"qt  "), "mov"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mov"),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 16, "matroska"),
        (b"\x00\x00\x01\xba" + b"\x00" * 16, "mpeg"),
        (_ts(188), "mpegts"),
        (_ts(192, offset=4), "mpegts"),
        (b"OggS\x00\x02" + b"\x00" * 16, "ogg"),
        (b"FLV\x01\x05" + b"\x00" * 16, "flv"),
        (b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n", None),
        (b"ffconcat version 1.0\nfile 'x.mp4'\n", None),
        (b"file 'http://127.0.0.1/a.mp4'\n", None),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', None),
        (b"<?xml version='1.0'?><svg/>", None),
        (b"BM" + b"\x00" * 64, None),
        (b"%PDF-1.7\n", None),
        (b"v=0\no=- 0 0 IN IP4 127.0.0.1\n", None),
        (b"", None),
    ],
)
def test_given_leading_bytes_when_sniffed_then_the_one_listed_format_or_none(head: bytes, expected: str | None) -> None:
    found = sniff(head)
    assert (found.name if found else None) == expected


def test_given_a_heif_image_when_sniffed_as_video_then_no_video_format_claims_it() -> None:
    assert sniff(_ftyp(b"heic", b"mif1"), JobType.VIDEO) is None
    assert sniff(_ftyp(b"isom", b"mp41"), JobType.IMAGE) is None
