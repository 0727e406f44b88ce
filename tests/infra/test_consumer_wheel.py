"""The constructs as a library: build the wheel, install it into a fresh venv, synthesize an app
that imports TranscodexPlatform from it (not from this checkout)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("infra-wheel")]

_SKIPPED_PARTS = {"__pycache__", "tests"}

CONSUMER_APP = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    from aws_cdk import App, RemovalPolicy, Stack, Validations
    from cdk_nag import AwsSolutionsChecks

    import constructs_lib
    import runtime
    from constructs_lib import TranscodexPlatform, TranscodexPlatformProps

    site_packages = Path(sys.argv[1]).resolve()
    for module in (constructs_lib, runtime):
        assert site_packages in Path(module.__file__).resolve().parents, module.__file__

    app = App(outdir=sys.argv[2], post_cli_context={"aws:cdk:bundling-stacks": []})
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, "MediaConsumer")
    TranscodexPlatform(
        stack,
        "Media",
        TranscodexPlatformProps(
            removal_policy=RemovalPolicy.DESTROY, database_deletion_protection=False, worker_cpu_architecture="ARM64"
        ),
    )
    assembly = app.synth()
    template = assembly.get_stack_by_name("MediaConsumer").template
    print(json.dumps(sorted({r["Type"] for r in template["Resources"].values()})))
    """
)


def _runtime_files(root: Path) -> set[str]:
    files = set()
    for component in ("shared", "api", "dispatcher", "worker"):
        base = root / "runtime" / component
        for path in base.rglob("*") if base.is_dir() else ():
            rel = path.relative_to(root)
            if (
                path.is_file()
                and not _SKIPPED_PARTS & set(rel.parts)
                and not any(p.startswith(".") for p in rel.parts)
                and path.suffix != ".pyc"
            ):
                files.add(rel.as_posix())
    return files


def _build_wheel(dist: Path) -> Path:
    base = [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "-q", "-w", str(dist)]
    result = subprocess.run([*base, "--no-build-isolation"], capture_output=True, text=True, check=False)
    if result.returncode != 0:  # build backend not installed here: let pip fetch it from PyPI
        subprocess.run(base, capture_output=True, text=True, check=True)
    (wheel,) = dist.glob("transcodex-*.whl")
    return wheel


def test_given_built_wheel_when_installed_in_fresh_venv_then_consumer_app_synthesizes(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = sorted(_runtime_files(REPO_ROOT) - names)
    assert not missing, f"the wheel lacks runtime files the artifacts need: {missing}"
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "node_modules/", "cdk.out/"))]
    # Typed (PEP 561), and the runtime facts synth reads instead of importing the runtime.
    assert {"constructs_lib/py.typed", "constructs_lib/runtime_interface.json"} <= names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    target = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # The jsii libraries (aws-cdk-lib is ~100 MB) come from this environment, appended after the
    # venv's own site-packages: the wheel's modules win, and this checkout is not on the path.
    # A .pth in a plain directory is not processed, so an editable install here does not leak in.
    (target / "_transcodex_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "app.py").write_text(CONSUMER_APP)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRANSCODEX_SKIP_BUNDLING")}
    result = subprocess.run(
        [python, "app.py", str(target), str(tmp_path / "cdk.out")],
        cwd=consumer,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    types = result.stdout.strip().splitlines()[-1]
    for expected in ("AWS::ApiGateway::RestApi", "AWS::ECS::TaskDefinition", "AWS::RDS::DBInstance"):
        assert expected in types
    # The Lambda bundles were staged from the installed runtime package.
    staged = [p for p in (tmp_path / "cdk.out").glob("asset.*") if (p / "runtime" / "shared").is_dir()]
    assert staged, "no Lambda asset holds runtime/shared"
