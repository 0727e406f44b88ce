"""The constructs' copy of the runtime (constructs_lib/runtime_interface.json) equals the runtime,
and importing the constructs loads none of the runtime's dependencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from constructs_lib import _generate_interface as generator
from constructs_lib import _runtime_interface as interface
from constructs_lib.api import load_app_spec

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Top-level packages synth must not import: the API's framework and the database and hashing
#: libraries it pulls in.
FORBIDDEN = {"chalice", "psycopg", "psycopg_pool", "argon2", "jsonschema", "jwt"}
#: The only runtime modules the constructs may import: the stdlib-only key layout, settings (the
#: tools' settings: cache folder, bundling) and work estimate (Fargate's valid task sizes, which
#: the task definition and the dispatcher's sizing both check), and their parents.
ALLOWED_RUNTIME = {
    "runtime",
    "runtime.shared",
    "runtime.shared.keys",
    "runtime.shared.settings",
    "runtime.shared.estimate",
}


def test_given_runtime_when_interface_regenerated_then_checked_in_file_is_identical() -> None:
    expected = interface.render(generator.generate())
    assert interface.INTERFACE_FILE.read_text() == expected, (
        "constructs_lib/runtime_interface.json differs from the runtime: run `make runtime-interface`"
    )


def test_given_chalice_app_when_load_app_spec_then_every_declared_route_and_method_is_there() -> None:
    from runtime.api.app import app

    spec = load_app_spec()
    declared = {(path, method) for path, entries in app.routes.items() for method in entries}
    assert {(r.path, m) for r in spec.routes for m in r.methods} == declared
    assert spec.binary_media_types == tuple(app.api.binary_types)
    with_cors = {path for path, entries in app.routes.items() if any(e.cors for e in entries.values())}
    assert {r.path for r in spec.routes if r.cors is not None} == with_cors


def test_given_stale_file_when_check_then_fails_and_regeneration_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "runtime_interface.json"
    data = json.loads(interface.INTERFACE_FILE.read_text())
    data["api"]["routes"] = data["api"]["routes"][1:]
    stale.write_text(interface.render(data))
    monkeypatch.setattr(interface, "INTERFACE_FILE", stale)

    assert generator.main(["--check"]) == 1
    assert "make runtime-interface" in capsys.readouterr().err
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
    assert interface.parse(json.loads(stale.read_text())) == interface.runtime_interface()


def test_given_clean_interpreter_when_constructs_and_stacks_imported_then_no_runtime_dependency_loads() -> None:
    code = "import json, sys\nimport constructs_lib, stacks\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "constructs_lib.api" in modules and "aws_cdk" in modules  # the import did happen
    assert sorted(m for m in modules if m.split(".")[0] in FORBIDDEN) == []
    assert sorted(m for m in modules if m.split(".")[0] == "runtime" and m not in ALLOWED_RUNTIME) == []
