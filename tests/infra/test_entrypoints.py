"""``python app.py`` and the standard CLI (``npx cdk synth``) both synthesize, nag-clean, without Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT, STACK_NAME

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("infra-wheel")]


def _env(outdir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDK_")}
    env["TRANSCODEX_SKIP_BUNDLING"] = "1"
    if outdir is not None:
        env["CDK_OUTDIR"] = str(outdir)
    return env


def _assert_clean_assembly(outdir: Path) -> None:
    template = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    assert "BundlingSkipped" in template["Rules"]
    report = json.loads((outdir / "validation-report.json").read_text())
    assert [(p["pluginName"], p["conclusion"], p["violations"]) for p in report["pluginReports"]] == [
        ("AwsSolutions", "success", [])
    ]


def test_given_skip_bundling_when_python_app_py_then_assembly_is_nag_clean(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "TRANSCODEX_SKIP_BUNDLING=1" in result.stderr  # never silent
    _assert_clean_assembly(tmp_path)


@pytest.mark.skipif(
    not (REPO_ROOT / "node_modules" / ".bin" / "cdk").exists() or shutil.which("node") is None,
    reason="the pinned CDK CLI is not installed (npm ci)",
)
def test_given_skip_bundling_when_cdk_cli_synth_then_assembly_is_nag_clean(tmp_path: Path) -> None:
    env = _env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(REPO_ROOT / "node_modules" / ".bin" / "cdk"), "synth", "-q", "--no-notices", "-o", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    _assert_clean_assembly(tmp_path)
