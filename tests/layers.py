"""Test layers: every test is exactly one of unit, integration, infra or e2e, so ``-m unit`` is a
lane that needs no service (``make check``) and each layer can run alone (``make test LAYER=...``).

A test takes its layer from the first folder under tests/ (``BY_FOLDER``) unless it carries a
layer marker itself; collection stops with the list of tests that end up with none or several.
Loaded by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

LAYERS = ("unit", "integration", "infra", "e2e")

TESTS_DIR = Path(__file__).resolve().parent

#: The layer of each folder of tests/. ``api``, ``dispatcher`` and ``worker`` hold component tests
#: on real PostgreSQL, S3, moto, ffmpeg and libvips; ``conformance`` synthesizes the template.
BY_FOLDER = {
    "unit": "unit",
    "integration": "integration",
    "api": "integration",
    "dispatcher": "integration",
    "worker": "integration",
    "infra": "infra",
    "conformance": "infra",
    "e2e": "e2e",
}


def folder_layer(path: Path) -> str | None:
    """The layer of a test file from its folder under tests/, None outside a known folder."""
    try:
        relative = path.resolve().relative_to(TESTS_DIR)
    except ValueError:
        return None
    return BY_FOLDER.get(relative.parts[0]) if len(relative.parts) > 1 else None


def _layers(item: pytest.Item) -> set[str]:
    return {marker.name for marker in item.iter_markers() if marker.name in LAYERS}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        if not _layers(item) and (layer := folder_layer(item.path)) is not None:
            item.add_marker(layer)
        found = _layers(item)
        if len(found) != 1:
            problems.append(f"{item.nodeid}: {', '.join(sorted(found)) or 'no layer'}")
    if problems:
        raise pytest.UsageError(
            f"every test needs exactly one layer marker of {', '.join(LAYERS)} (from its folder under "
            "tests/, see tests/layers.py BY_FOLDER, or a pytest.mark):\n  " + "\n  ".join(problems)
        )
