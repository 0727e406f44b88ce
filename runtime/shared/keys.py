"""The S3 key layout, in one place: where uploads and job outputs live.

* input bucket: ``input/{user_id}/{upload_id}/{file name}``
* output bucket: ``output/{user_id}/{job_id}/{name}``, ``name`` relative to the job
  (``image.webp``, ``poster.jpg``, ``hls/master.m3u8``, ``hls/720p/seg_00001.m4s``…)

The API, the worker and playback build and read keys here, and the CDK constructs grant
their IAM prefixes from these constants (constructs_lib/_grants.py). So this module imports
the standard library only: synthesis must not pull in the runtime's dependencies.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: Key prefix of uploaded media, in the input bucket.
INPUT_PREFIX = "input/"
#: Key prefix of produced media, in the output bucket.
OUTPUT_PREFIX = "output/"


def safe_name(file_name: str) -> str:
    """The last path component, reduced to [A-Za-z0-9._-], never empty or hidden. The extension
    is kept whatever script the stem is in (``日本.jpg`` -> ``file.jpg``, not ``jpg``): the
    worker and downloads name outputs after it."""
    base = re.split(r"[\\/]", file_name.strip())[-1]
    stem, dot, ext = base.rpartition(".")
    if not (dot and re.fullmatch(r"[A-Za-z0-9]{1,10}", ext)):
        stem, ext = base, ""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:116] or "file"
    return f"{cleaned}.{ext}" if ext else cleaned


def upload_key(user_id: str, upload_id: str, file_name: str) -> str:
    """Where an upload's object goes; ``file_name`` is the client's, made safe here."""
    return f"{INPUT_PREFIX}{user_id}/{upload_id}/{safe_name(file_name)}"


def output_prefix(user_id: object, job_id: object) -> str:
    """The folder of one job's outputs (ids as the database returns them: UUID or str)."""
    return f"{OUTPUT_PREFIX}{user_id}/{job_id}/"


def output_key(user_id: object, job_id: object, name: str) -> str:
    """The key of an output named ``name`` relative to its job's folder."""
    return output_prefix(user_id, job_id) + name


class OutputKey(NamedTuple):
    """An output key read back: ``output/{user_id}/{job_id}/{name}``."""

    user_id: str
    job_id: str
    name: str


def parse_output_key(key: str) -> OutputKey | None:
    """The parts of an output key; None for a key outside the layout."""
    if not key.startswith(OUTPUT_PREFIX):
        return None
    user_id, _, rest = key[len(OUTPUT_PREFIX) :].partition("/")
    job_id, _, name = rest.partition("/")
    return OutputKey(user_id, job_id, name) if user_id and job_id and name else None


def relative_name(user_id: object, job_id: object, key: str) -> str:
    """An output key's name relative to its job's folder (the last component for a foreign key)."""
    prefix = output_prefix(user_id, job_id)
    return key[len(prefix) :] if key.startswith(prefix) else key.rsplit("/", 1)[-1]
