"""The Lambda bundles `cdk deploy` uploads, built by a synth WITHOUT TRANSCODEX_SKIP_BUNDLING.

Every function's asset must hold its handler module and the wheels of its requirements,
built for the runtime's Python (cp314 extension modules, not the host's cp311), within
Lambda's limits: 250 MB unzipped, 50 MB zipped (direct upload).
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from constructs_lib._lambda import LAMBDA_RUNTIME
from stacks.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bundles")]

UNZIPPED_LIMIT_MB = 250
ZIPPED_LIMIT_MB = 50


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("bundled")
    app, stack = create_app(skip_bundling=False, outdir=str(outdir), context={"aws:cdk:enable-asset-metadata": True})
    assembly = app.synth()
    template = json.loads(Path(assembly.directory, stack.template_file).read_text())
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function" or resource["Properties"].get("Runtime") != LAMBDA_RUNTIME.name:
            continue  # the CDK's own provider framework functions are not ours
        asset = Path(assembly.directory, resource["Metadata"]["aws:asset:path"])
        found.append({"id": logical_id, "handler": resource["Properties"]["Handler"], "dir": asset})
    return found


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _zipped_mb(folder: Path) -> float:
    with tempfile.TemporaryFile() as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder))
        return fh.tell() / 1e6


def _requirement_names(folder: Path) -> set[str]:
    names = set()
    for line in (folder / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("-", "_"))
    return names


def _installed(folder: Path) -> set[str]:
    return {p.name.split("-", 1)[0].lower().replace("-", "_") for p in folder.glob("*.dist-info") if p.is_dir()}


def test_given_a_bundled_synth_when_its_functions_are_read_then_every_one_of_ours_has_a_bundle(
    bundles: list[dict[str, Any]],
) -> None:
    handlers = {b["handler"] for b in bundles}
    assert {
        "runtime.api.app.app",
        "runtime.dispatcher.handler.handle_sqs",
        "runtime.dispatcher.handler.handle_dlq",
        "runtime.dispatcher.handler.handle_task_state_change",
        "runtime.dispatcher.handler.handle_sweep",
        "runtime.dispatcher.migrate.handler",
    } <= handlers
    assert all(b["dir"].is_dir() for b in bundles)


def test_given_each_bundle_when_inspected_then_handler_and_dependencies_for_the_runtime_are_inside(
    bundles: list[dict[str, Any]],
) -> None:
    tag = "cpython-" + LAMBDA_RUNTIME.name.removeprefix("python").replace(".", "")
    for bundle in bundles:
        folder: Path = bundle["dir"]
        module, _attr = bundle["handler"].rsplit(".", 1)
        assert (folder / (module.replace(".", "/") + ".py")).is_file(), bundle
        assert (folder / "runtime" / "shared" / "__init__.py").is_file(), bundle
        missing = _requirement_names(folder) - _installed(folder)
        assert not missing, f"{bundle['id']}: requirements not installed: {missing}"
        extensions = [p.name for p in folder.rglob("*.so") if "cpython-" in p.name]
        assert extensions and all(tag in name for name in extensions), (bundle["id"], extensions[:5])


def test_given_each_bundle_when_measured_then_within_lambda_size_limits(bundles: list[dict[str, Any]]) -> None:
    seen: dict[Path, tuple[float, float]] = {}
    for bundle in bundles:
        folder: Path = bundle["dir"]
        if folder not in seen:
            seen[folder] = (_size_mb(folder), _zipped_mb(folder))
        unzipped, zipped = seen[folder]
        print(f"{bundle['id']}: {unzipped:.1f} MB unzipped, {zipped:.1f} MB zipped ({folder.name[:18]})")
        assert unzipped < UNZIPPED_LIMIT_MB and zipped < ZIPPED_LIMIT_MB, bundle["id"]
