"""The S3 key layout (runtime/shared/keys.py): one owner, importable without the runtime's
dependencies (the CDK constructs grant their IAM prefixes from it)."""

from __future__ import annotations

import ast
import sys
import uuid
from pathlib import Path

import pytest

from runtime.shared import keys

pytestmark = pytest.mark.unit


def test_given_an_upload_when_keyed_then_it_lies_under_the_input_prefix_with_a_safe_name() -> None:
    user, upload = str(uuid.uuid4()), str(uuid.uuid4())
    assert keys.upload_key(user, upload, "holiday photo.JPG") == f"input/{user}/{upload}/holiday_photo.JPG"
    assert keys.upload_key(user, upload, "../../etc/passwd").endswith(f"/{upload}/passwd")
    assert keys.upload_key(user, upload, "...") == f"input/{user}/{upload}/file"
    assert keys.upload_key(user, upload, "x").startswith(keys.INPUT_PREFIX)


def test_given_a_job_when_its_outputs_are_keyed_then_relative_names_round_trip() -> None:
    user, job = uuid.uuid4(), uuid.uuid4()  # the database hands out UUIDs
    key = keys.output_key(user, job, "hls/720p/index.m3u8")
    assert key == f"output/{user}/{job}/hls/720p/index.m3u8"
    assert key.startswith(keys.output_prefix(user, job)) and key.startswith(keys.OUTPUT_PREFIX)
    assert keys.relative_name(user, job, key) == "hls/720p/index.m3u8"
    assert keys.relative_name(str(user), str(job), key) == "hls/720p/index.m3u8"
    # A key of another job is never shown with that job's folders.
    assert keys.relative_name(user, uuid.uuid4(), key) == "index.m3u8"


def test_given_the_key_module_when_its_imports_are_read_then_it_needs_the_standard_library_only() -> None:
    tree = ast.parse(Path(keys.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported, "expected at least one import to check"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
