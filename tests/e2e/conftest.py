"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder per test module of our own, not pytest's numbered tmp (a concurrent pytest
    session may prune those while a platform still writes there)."""
    folder = Path(tempfile.mkdtemp(prefix=f"transcodex-e2e-{request.module.__name__.rsplit('.', 1)[-1]}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
