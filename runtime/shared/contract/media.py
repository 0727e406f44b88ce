"""The media formats we accept, in ONE list: the API's accepted MIME types and the worker's readers.

An upload's declared MIME type is the client's word and its bytes are a stranger's, so the
worker never lets ffmpeg or libvips guess: it reads the first bytes, finds the format here by
its magic, and opens the file with that format's reader only (an explicit ffmpeg demuxer,
``-f``; an explicit libvips loader, the others blocked). A file whose bytes match no format
here fails UNSUPPORTED_FORMAT before any parser sees it, whatever it claimed to be: HLS
playlists, concat lists, SVG, PDF and image sequences are not on the list, so the demuxers
and loaders that follow URLs or read other files are never reached.

Adding a format: an entry in :data:`FORMATS` (its MIME types, reader and magic), a sample of it
in tests/worker/test_accepted_formats.py (a test fails until it exists).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.shared.contract.fields import JobType

#: how many leading bytes :func:`sniff` needs (the MPEG-TS check looks at five 204-byte packets)
HEAD_BYTES = 4096

#: ISO BMFF brands of HEIF still images (AVIF and HEIC); any other ``ftyp`` is a movie.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1", b"avif", b"avis", b"avio"}
)
#: QuickTime/MP4 top-level boxes a movie may start with (old QuickTime files have no ``ftyp``).
_MOV_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"})


def _brands(head: bytes) -> set[bytes]:
    """The ``ftyp`` box's major and compatible brands, or nothing when it does not start the file."""
    if head[4:8] != b"ftyp":
        return set()
    size = int.from_bytes(head[0:4], "big")
    end = min(len(head), size if size >= 16 else 16)
    return {head[8:12], *(head[i : i + 4] for i in range(16, end - 3, 4))}


def _is_heif(head: bytes) -> bool:
    return bool(_brands(head) & _HEIF_BRANDS)


def _is_mov(head: bytes) -> bool:
    return head[4:8] in _MOV_BOXES and not _is_heif(head)


def _is_mpegts(head: bytes) -> bool:
    """Sync bytes (0x47) every 188, 192 (M2TS) or 204 bytes, five packets in a row."""
    for packet in (188, 192, 204):
        for start in range(packet):
            if start + 4 * packet >= len(head):
                break
            if all(head[start + k * packet] == 0x47 for k in range(5)):
                return True
    return False


@dataclass(frozen=True)
class MediaFormat:
    """One readable format: what clients may declare for it and how the worker opens it."""

    name: str
    job_type: JobType
    #: MIME types the API accepts for it (a declared type is not trusted: the bytes decide)
    mime_types: tuple[str, ...]
    #: VIDEO: the ffmpeg demuxer given as ``-f``; IMAGE: the libvips loader operation
    reader: str
    #: the leading bytes (at least :data:`HEAD_BYTES`, fewer for a smaller file) are this format
    magic: Callable[[bytes], bool]
    #: IMAGE: the libvips class the loader belongs to (left unblocked, with its subclasses)
    vips_class: str | None = None


FORMATS: tuple[MediaFormat, ...] = (
    MediaFormat(
        "jpeg", JobType.IMAGE, ("image/jpeg", "image/jpg", "image/pjpeg"), "jpegload",
        lambda h: h[:3] == b"\xff\xd8\xff", "VipsForeignLoadJpeg",
    ),
    MediaFormat(
        "png", JobType.IMAGE, ("image/png",), "pngload",
        lambda h: h[:8] == b"\x89PNG\r\n\x1a\n", "VipsForeignLoadPng",
    ),
    MediaFormat(
        "webp", JobType.IMAGE, ("image/webp",), "webpload",
        lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", "VipsForeignLoadWebp",
    ),
    MediaFormat(
        "heif", JobType.IMAGE, ("image/avif", "image/heic", "image/heif"), "heifload", _is_heif, "VipsForeignLoadHeif"
    ),
    MediaFormat(
        "gif", JobType.IMAGE, ("image/gif",), "gifload",
        lambda h: h[:6] in (b"GIF87a", b"GIF89a"), "VipsForeignLoadNsgif",
    ),
    MediaFormat(
        "tiff", JobType.IMAGE, ("image/tiff",), "tiffload",
        lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "VipsForeignLoadTiff",
    ),
    MediaFormat("mov", JobType.VIDEO, ("video/mp4", "video/x-m4v", "video/quicktime", "video/3gpp"), "mov", _is_mov),
    MediaFormat(
        "matroska", JobType.VIDEO, ("video/webm", "video/x-matroska"), "matroska",
        lambda h: h[:4] == b"\x1a\x45\xdf\xa3",
    ),
    MediaFormat(
        "avi", JobType.VIDEO, ("video/x-msvideo",), "avi",
        lambda h: h[:4] == b"RIFF" and h[8:12] in (b"AVI ", b"AVIX"),
    ),
    MediaFormat("mpeg", JobType.VIDEO, ("video/mpeg",), "mpeg", lambda h: h[:4] == b"\x00\x00\x01\xba"),
    MediaFormat("mpegts", JobType.VIDEO, ("video/mp2t",), "mpegts", _is_mpegts),
    MediaFormat("ogg", JobType.VIDEO, ("video/ogg",), "ogg", lambda h: h[:4] == b"OggS"),
    MediaFormat("flv", JobType.VIDEO, ("video/x-flv",), "flv", lambda h: h[:4] == b"FLV\x01"),
)  # fmt: skip

#: job type -> the MIME types a client may declare for an upload of that type
MIME_TYPES: dict[str, tuple[str, ...]] = {
    kind.value: tuple(mime for f in FORMATS if f.job_type == kind for mime in f.mime_types) for kind in JobType
}
#: Non-standard names clients send (the seed's own example uses image/jpg) -> what browsers send.
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "video/x-m4v": "video/mp4"}


def formats(job_type: JobType) -> tuple[MediaFormat, ...]:
    return tuple(f for f in FORMATS if f.job_type == job_type)


def sniff(head: bytes, job_type: JobType | None = None) -> MediaFormat | None:
    """The format whose magic ``head`` (the file's first :data:`HEAD_BYTES`) has, or None."""
    return next((f for f in FORMATS if (job_type is None or f.job_type == job_type) and f.magic(head)), None)
