"""How the worker opens an upload: by its bytes, with one reader from the contract's list.

An upload is a stranger's file. ffmpeg left to probe would pick any of its demuxers (HLS and
concat lists that open other files and URLs, image2 sequences...) and libvips any of its
loaders (SVG with its external references, CSV, matrix, raw, vips...). So the format is
decided here, from the leading bytes and :data:`runtime.shared.contract.media.FORMATS` only,
and the parser is then told exactly what it reads: ffmpeg/ffprobe get ``-f`` with that demuxer,
``-format_whitelist`` naming only it (nested opens inherit it) and ``-protocol_whitelist file``;
libvips gets the explicit loader, every other loader blocked for the process.
"""

from __future__ import annotations

from pathlib import Path

from runtime.shared.contract import JobType, MediaFormat, media
from runtime.shared.status import ErrorCode
from runtime.worker.errors import JobFailure

#: the only protocol an upload's demuxer may open: the scratch file itself
PROTOCOLS = "file"
#: the protocols of the one remote read: POST /media/process's work estimate ffprobes the input
#: in our own bucket through a presigned URL (runtime.worker.lambda_handler.probe_object), its
#: demuxer still pinned by the object's leading bytes (a ranged GET), so the file itself cannot
#: name another input (the pinned demuxers open none; mov's data references are off by default)
REMOTE_PROTOCOLS = "https,http,tls,tcp"


def read_head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(media.HEAD_BYTES)


def _names(job_type: JobType) -> str:
    return ", ".join(f.name.upper() for f in media.formats(job_type))


def video_format(path: Path, head: bytes | None = None) -> MediaFormat:
    """The upload's container, from its bytes (``head``: its leading bytes when ``path`` is a
    URL); UNSUPPORTED_FORMAT when it is none we read."""
    head = read_head(path) if head is None else head
    found = media.sniff(head, JobType.VIDEO)
    if found is not None:
        return found
    image = media.sniff(head, JobType.IMAGE)
    if image is not None:
        raise JobFailure(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the file is a still image ({image.name}), not a video; submit it as an IMAGE job",
        )
    raise JobFailure(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"the file is not a video container we read ({_names(JobType.VIDEO)}); playlists, concat lists "
        "and other files that point at other media are refused",
    )


def ffmpeg_input_options(fmt: MediaFormat, protocols: str = PROTOCOLS) -> dict[str, str]:
    """Input options that pin ffmpeg/ffprobe to ``fmt``'s demuxer and to ``protocols`` (local
    files unless told otherwise)."""
    return {"f": fmt.reader, "format_whitelist": fmt.reader, "protocol_whitelist": protocols}


def ffmpeg_input_args(fmt: MediaFormat, protocols: str = PROTOCOLS) -> list[str]:
    """:func:`ffmpeg_input_options` as command-line arguments (to put before ``-i``)."""
    return [arg for key, value in ffmpeg_input_options(fmt, protocols).items() for arg in (f"-{key}", value)]


def image_format(path: Path) -> MediaFormat:
    """The upload's image format, from its bytes; UNSUPPORTED_FORMAT when it is none we read."""
    found = media.sniff(read_head(path), JobType.IMAGE)
    if found is None:
        raise JobFailure(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the file is not an image format we read ({_names(JobType.IMAGE)}); "
            "check that you uploaded an image and not a renamed file of another type",
        )
    return found


def restrict_loaders() -> None:
    """Block every libvips loader but the contract's image formats, for this process (idempotent):
    a path libvips resolves itself (``thumbnail``) cannot reach SVG, CSV, matrix, raw or vips."""
    import pyvips

    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for fmt in media.formats(JobType.IMAGE):
        assert fmt.vips_class is not None, fmt
        pyvips.operation_block_set(fmt.vips_class, False)
