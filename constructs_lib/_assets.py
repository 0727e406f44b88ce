"""Locate the runtime package and stage the minimal source tree of each artifact.

Every artifact (a Lambda bundle, the worker image) needs ``runtime/__init__.py``,
``runtime/shared`` and its own component, and nothing else: never ``.venv``,
``tests``, ``node_modules`` or ``cdk.out``. Staging a copy of exactly those files
makes the asset hash depend on them alone, and works the same from a git checkout
and from an installed wheel (where the "repository root" is ``site-packages``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

#: The directory that holds the ``runtime`` package (repo root or site-packages).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = PACKAGE_ROOT / "runtime"

_SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", "chalice.out"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def runtime_path(*parts: str) -> Path:
    """Return a path inside the runtime package, failing early with what is missing."""
    path = RUNTIME_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"TranscodeX runtime file {path} is missing; the constructs need the 'runtime' package "
            f"installed next to 'constructs_lib' (looked in {PACKAGE_ROOT})"
        )
    return path


def _files(source: Path) -> Iterable[Path]:
    if source.is_file():
        yield source
        return
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(_SKIPPED_SUFFIXES):
                yield Path(dirpath) / name


def content_hash(paths: Iterable[Path], suffixes: tuple[str, ...] = ()) -> str:
    """SHA-256 over relative paths and contents of the files under ``paths``."""
    digest = hashlib.sha256()
    for root in paths:
        for file in _files(root):
            if suffixes and not file.name.endswith(suffixes):
                continue
            digest.update(str(file.relative_to(PACKAGE_ROOT)).encode())
            digest.update(b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def stage_runtime(name: str, components: Iterable[str], extra_files: Mapping[str, Path] | None = None) -> Path:
    """Copy ``runtime/__init__.py``, ``runtime/shared`` and ``components`` into a staging dir.

    ``extra_files`` maps a destination (relative to the staging root) to a source file,
    e.g. ``{"requirements.txt": runtime/dispatcher/requirements.txt}`` so that
    PythonFunction finds the component's dependencies at the bundle root.

    The directory is named after the content hash, so repeated synths reuse it and
    the resulting asset hash changes only when the staged content changes.
    """
    sources: list[tuple[str, Path]] = [("runtime/__init__.py", runtime_path("__init__.py"))]
    for component in ["shared", *components]:
        base = runtime_path(component)
        sources.extend((str(f.relative_to(PACKAGE_ROOT)), f) for f in _files(base))
    for dest, src in sorted((extra_files or {}).items()):
        if not src.is_file():
            raise FileNotFoundError(f"TranscodeX asset file {src} is missing")
        sources.append((dest, src))
    digest = hashlib.sha256()
    for dest, src in sources:
        digest.update(dest.encode() + b"\0" + src.read_bytes() + b"\0")
    target = Path(tempfile.gettempdir()) / "transcodex-assets" / f"{name}-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    for dest, src in sources:
        out = partial / dest
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
    try:
        partial.rename(target)
    except OSError:  # another synth staged the same content concurrently
        shutil.rmtree(partial, ignore_errors=True)
    return target
