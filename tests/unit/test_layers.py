"""Every test has exactly one layer (tests/layers.py), and a test without one stops collection."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.layers import BY_FOLDER, TESTS_DIR, folder_layer

REPO_ROOT = TESTS_DIR.parent


def _collect(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.layers"]\n')
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(tests))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        # Without the installed plugins (schemathesis, hypothesis...): seconds faster, not needed.
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_given_each_test_folder_when_its_layer_looked_up_then_it_has_one() -> None:
    folders = {p.parent.relative_to(TESTS_DIR).parts[0] for p in TESTS_DIR.rglob("test_*.py")}
    assert folders - set(BY_FOLDER) == set()
    assert folder_layer(TESTS_DIR / "e2e" / "test_local_parts.py") == "e2e"
    assert folder_layer(TESTS_DIR / "test_at_the_root.py") is None
    assert folder_layer(REPO_ROOT / "runtime" / "test_elsewhere.py") is None


def test_given_a_test_without_layer_when_collected_then_collection_fails_naming_it(tmp_path: Path) -> None:
    result = _collect(
        tmp_path,
        """
        import pytest

        @pytest.mark.unit
        def test_marked():
            pass

        def test_unmarked():
            pass

        @pytest.mark.unit
        @pytest.mark.integration
        def test_two_layers():
            pass
        """,
    )
    assert result.returncode != 0
    assert "test_sample.py::test_unmarked: no layer" in result.stderr
    assert "test_sample.py::test_two_layers: integration, unit" in result.stderr
    assert "test_marked" not in result.stderr


def test_given_every_test_marked_when_collected_then_collection_succeeds(tmp_path: Path) -> None:
    result = _collect(
        tmp_path,
        """
        import pytest

        pytestmark = pytest.mark.e2e

        def test_one():
            pass
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "1 test collected" in result.stdout
