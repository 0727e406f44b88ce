"""Lambda bundles built with pip for the function's runtime and architecture, no container needed.

A bundle is the staged sources (``runtime/__init__.py``, ``runtime/shared``, the component)
plus the wheels of its ``requirements.txt``, installed by the synthesizing Python's pip with
``--platform manylinux… --only-binary=:all: --python-version <runtime> --implementation cp``:
the same wheels the SAM build image would pick, without Docker. When pip cannot (no pip, no
index, a dependency without a wheel for the runtime), ``try_bundle`` returns False and the
CDK falls back to its Docker bundling in the SAM build image, as for any CDK user
(``TRANSCODEX_BUNDLING=docker`` forces it; ``CDK_DOCKER=podman`` runs it with podman;
``TRANSCODEX_BUNDLING_IMAGE`` names another image with the runtime's Python and pip, such as a
registry mirror of the SAM image).

The installed dependencies are cached outside the clone, keyed by the requirements, the
Python version and the platform (``$TRANSCODEX_CACHE_DIR``, default
``~/.cache/transcodex/lambda-deps``), so repeated synths only copy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from runtime.shared.settings import tool_settings

#: Lambda architecture name -> the manylinux platform tags of its wheels (Amazon Linux 2023: glibc 2.34).
PLATFORM_TAGS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
}
#: The Docker fallback's command (the CDK mounts the source at /asset-input, the bundle at /asset-output).
DOCKER_COMMAND = (
    "bash",
    "-c",
    "pip install --no-cache-dir -r requirements.txt -t /asset-output && cp -R . /asset-output",
)


def _say(message: str) -> None:
    print(f"[bundling] {message}", file=sys.stderr, flush=True)


def deps_cache_dir() -> Path:
    return tool_settings().cache_dir / "lambda-deps"


def python_version(runtime: lambda_.Runtime) -> str:
    """``python3.14`` -> ``3.14``."""
    name = runtime.name
    if not name.startswith("python"):
        raise ValueError(f"pip bundling needs a Python runtime, got {name!r}")
    return name.removeprefix("python")


def pip_install_argv(requirements: Path, target: Path, version: str, architecture: str) -> list[str]:
    """The pip command that installs ``requirements`` as the runtime would load them."""
    tags = PLATFORM_TAGS.get(architecture)
    if tags is None:
        raise ValueError(f"architecture must be one of {sorted(PLATFORM_TAGS)}, got {architecture!r}")
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    for tag in tags:
        argv += ["--platform", tag]
    return [
        *argv,
        "--only-binary=:all:",
        "--python-version",
        version,
        "--implementation",
        "cp",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """ILocalBundling: pip-installs the requirements for the runtime, then copies the sources."""

    def __init__(self, source: Path, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> None:
        self.source = source
        self.version = python_version(runtime)
        self.architecture = architecture.name

    def _dependencies(self) -> Path | None:
        requirements = self.source / "requirements.txt"
        key = hashlib.sha256(f"{self.version}|{self.architecture}|".encode() + requirements.read_bytes()).hexdigest()[
            :16
        ]
        cached = deps_cache_dir() / f"py{self.version}-{self.architecture}-{key}"
        if cached.is_dir():
            _say(f"reused dependencies {cached.name}")
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{cached.name}-", dir=cached.parent))
        argv = pip_install_argv(requirements, partial, self.version, self.architecture)
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            _say(f"pip could not install {requirements} for Python {self.version}; using Docker\n{proc.stderr}")
            return None
        try:
            partial.rename(cached)
        except OSError:  # a concurrent synth made the same one
            shutil.rmtree(partial, ignore_errors=True)
        _say(f"installed dependencies {cached.name}")
        return cached

    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        if tool_settings().docker_bundling:
            return False
        deps = self._dependencies()
        if deps is None:
            return False
        shutil.copytree(deps, output_dir, dirs_exist_ok=True)
        shutil.copytree(self.source, output_dir, dirs_exist_ok=True)
        return True


def bundled_code(
    source: Path, runtime: lambda_.Runtime, architecture: lambda_.Architecture = lambda_.Architecture.X86_64
) -> lambda_.Code:
    """The function's code: ``source`` plus its requirements, bundled locally or in the SAM image."""
    image = tool_settings().bundling_image
    return lambda_.Code.from_asset(
        str(source),
        bundling=BundlingOptions(
            image=DockerImage.from_registry(image) if image else runtime.bundling_image,
            command=list(DOCKER_COMMAND),
            platform=f"linux/{'amd64' if architecture.name == 'x86_64' else 'arm64'}",
            local=PipLocalBundling(source, runtime, architecture),
        ),
    )
