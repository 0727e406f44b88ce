"""One set of versions: every artifact's lock is fresh with its input, pins the development
lock's versions, and the test environment runs the development lock (scripts/locks.py)."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from pathlib import Path

import pytest

from scripts import locks


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    """The inputs and locks of every artifact, copied where a test may break them."""
    for lock in locks.LOCKS:
        for name in (lock.input, lock.output):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(locks.ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_given_the_repository_locks_when_checked_then_each_is_fresh_satisfies_its_input_and_agrees() -> None:
    assert locks.problems() == []
    for lock in locks.LOCKS:
        print(f"{lock.output}: {len(locks.pins(locks.ROOT / lock.output))} pins for Python {lock.python}")


def test_given_an_input_changed_after_make_lock_when_checked_then_that_lock_is_reported_out_of_date(
    repo_copy: Path,
) -> None:
    _edit(repo_copy / "runtime/dispatcher/requirements.txt", "psycopg_pool>=3.2,<4", "psycopg_pool>=3.2,<4\npyjwt>=2")

    found = locks.problems(repo_copy)

    assert any("runtime/dispatcher/requirements.lock is out of date" in p for p in found), found
    assert any("pyjwt>=2 is not satisfied" in p for p in found), found


def test_given_a_package_pinned_apart_from_the_development_lock_when_checked_then_it_fails_unless_a_reason_is_stated(
    repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = locks.pins(repo_copy / "runtime/worker/requirements.lock")["boto3"]
    _edit(repo_copy / "runtime/worker/requirements.lock", f"boto3=={version}", "boto3==1.34.0")

    found = locks.problems(repo_copy)
    monkeypatch.setitem(locks.DIVERGENCES, "boto3", "a test's stated reason")
    excused = locks.problems(repo_copy)

    assert found == [
        f"boto3 is 1.34.0 in the worker image lock but {version} in the development lock: run `make lock`, "
        "or state the reason in scripts/locks.py DIVERGENCES"
    ]
    assert excused == []


def test_given_the_lock_settings_when_compared_with_the_artifacts_then_each_lock_is_for_its_runtimes_python() -> None:
    from constructs_lib._lambda import LAMBDA_RUNTIME

    by_name = {lock.name: lock for lock in locks.LOCKS}
    assert {"development", "API bundle", "dispatcher bundle", "worker image"} == set(by_name)
    assert by_name["API bundle"].python == by_name["dispatcher bundle"].python == LAMBDA_RUNTIME.name[len("python") :]
    # the tests run the development lock's Python (the worker image's is checked against its build)
    assert by_name["development"].python == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_given_the_test_environment_when_compared_with_the_development_lock_then_it_runs_those_versions() -> None:
    """What the tests import is what the locks pin: `make setup` installs requirements.lock."""
    drift = {}
    for name, version in locks.pins(locks.ROOT / "requirements.lock").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, f"requirements.lock pin -> installed (run `make setup`): {drift}"
