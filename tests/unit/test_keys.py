"""The S3 key layout (runtime/shared/keys.py): one owner, importable without the runtime's
dependencies (the CDK constructs grant their IAM prefixes from it)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from runtime.shared import keys, settings, status

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


def test_given_output_keys_when_parsed_then_parts_come_back_and_foreign_keys_are_none() -> None:
    user, job = uuid.uuid4(), uuid.uuid4()
    assert keys.parse_output_key(keys.output_key(user, job, "hls/720p/seg_1.m4s")) == keys.OutputKey(
        str(user), str(job), "hls/720p/seg_1.m4s"
    )
    for foreign in (keys.upload_key(str(user), str(job), "a.png"), keys.output_prefix(user, job), "output/u", "x"):
        assert keys.parse_output_key(foreign) is None, foreign


def test_given_download_bodies_when_the_client_names_files_then_it_follows_the_key_layout() -> None:
    from runtime.local.client import _relative_name

    user, job = str(uuid.uuid4()), str(uuid.uuid4())
    assert _relative_name({"name": "hls/720p/index.m3u8"}, job) == "hls/720p/index.m3u8"
    assert _relative_name({"key": keys.output_key(user, job, "hls/master.m3u8")}, job) == "hls/master.m3u8"
    # another job's key (or a key outside the layout) never lends its folders to this job's
    assert _relative_name({"object_key": keys.output_key(user, uuid.uuid4(), "hls/a/b.ts")}, job) == "b.ts"
    assert _relative_name({}, job) == "output"


def test_given_a_clean_interpreter_when_the_cli_client_is_imported_then_no_database_driver_loads() -> None:
    code = "import json, sys\nimport runtime.local.client\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "runtime.local.client" in modules and "runtime.shared.status" in modules
    assert sorted(m for m in modules if m.split(".")[0] in {"psycopg", "psycopg_pool", "boto3", "chalice"}) == []


@pytest.mark.parametrize("module", [keys, settings, status], ids=lambda m: m.__name__)
def test_given_a_module_the_constructs_or_the_cli_import_when_its_imports_are_read_then_stdlib_only(
    module: ModuleType,
) -> None:
    tree = ast.parse(Path(str(module.__file__)).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported, "expected at least one import to check"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
