"""The lock files: one place that says which input each artifact's lock comes from, for which
Python and platform, and in which versions.

    python -m scripts.locks           # regenerate every lock (``make lock``; asks PyPI)
    python -m scripts.locks --check   # offline: exit 1 when a lock is stale or versions diverge

Every artifact installs its lock, never its ranges: ``make setup`` the development one, the
Lambda bundles theirs (constructs_lib._lambda stages it as the bundle's requirements.txt), the
worker image its own (runtime/worker/Dockerfile). The development lock is resolved first and
constrains the others, so a package has one version everywhere (what the tests run is what
ships) unless :data:`DIVERGENCES` names it with the reason.

A lock's header carries the sha256 of its input and settings; ``--check`` (and
tests/unit/test_locks.py) compare it without reaching the network.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The Lambda functions' Python (constructs_lib._lambda.LAMBDA_RUNTIME, checked by a test) and
#: their platform: Amazon Linux 2023 (glibc 2.34) on x86_64, the functions' architecture.
LAMBDA_PYTHON = "3.14"
LAMBDA_PLATFORM = "x86_64-manylinux_2_34"
#: Debian bookworm's python3 and glibc: the worker image's base and the development machine's.
BOOKWORM_PYTHON = "3.11"
BOOKWORM_PLATFORM = "x86_64-manylinux_2_36"

#: Packages allowed to have a different version in some lock than in the development one, with
#: the reason (they are left out of the constraints the artifacts are resolved under).
DIVERGENCES: dict[str, str] = {}

HASH_LINE = "# input-sha256: "


@dataclass(frozen=True)
class Lock:
    """One artifact's lock: ``output`` pins ``input`` and its dependencies for ``python``/``platform``."""

    name: str
    input: str
    output: str
    python: str
    platform: str
    #: Resolve from wheels only (a Lambda bundle installs nothing else) except these sdists.
    no_binary: tuple[str, ...] = ()
    only_binary: bool = True
    #: Constrained by the development lock (every lock but that one).
    constrained: bool = True

    def key(self, root: Path = ROOT) -> str:
        """What the lock is a function of, besides the index and the development lock."""
        settings = f"{self.python}|{self.platform}|{self.only_binary}|{','.join(self.no_binary)}|"
        return hashlib.sha256(settings.encode() + (root / self.input).read_bytes()).hexdigest()

    def argv(self, uv: str, constraints: Path | None) -> list[str]:
        argv = [uv, "pip", "compile", self.input, "--output-file", self.output, "--quiet"]
        argv += ["--python-version", self.python, "--python-platform", self.platform]
        argv += ["--custom-compile-command", "make lock", "--no-strip-markers"]
        if self.only_binary:
            argv += ["--only-binary", ":all:"]
        for name in self.no_binary:
            argv += ["--no-binary", name]
        if constraints is not None:
            argv += ["--constraints", str(constraints.relative_to(ROOT))]
        return argv


DEVELOPMENT = Lock(
    "development", "requirements.txt", "requirements.lock", BOOKWORM_PYTHON, BOOKWORM_PLATFORM,
    only_binary=False, constrained=False,
)  # fmt: skip
LOCKS: tuple[Lock, ...] = (
    DEVELOPMENT,
    Lock("API bundle", "runtime/api/requirements.txt", "runtime/api/requirements.lock", LAMBDA_PYTHON, LAMBDA_PLATFORM),
    Lock(
        "dispatcher bundle", "runtime/dispatcher/requirements.txt", "runtime/dispatcher/requirements.lock",
        LAMBDA_PYTHON, LAMBDA_PLATFORM,
    ),
    # pyvips is published as source only; without a compiler it installs in ABI mode (Dockerfile).
    Lock(
        "worker image", "runtime/worker/requirements.txt", "runtime/worker/requirements.lock",
        BOOKWORM_PYTHON, BOOKWORM_PLATFORM, no_binary=("pyvips",),
    ),
)  # fmt: skip

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a lock file (names normalized)."""
    found = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def recorded_key(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith(HASH_LINE):
            return line.removeprefix(HASH_LINE).strip()
    return None


def _requirements(path: Path) -> Iterable[str]:
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            yield line


def problems(root: Path = ROOT, locks: tuple[Lock, ...] = LOCKS) -> list[str]:
    """Everything wrong with the locks under ``root`` (no network): missing, stale (its input
    or settings changed since ``make lock``), not satisfying its input, or a package pinned at
    another version than in the development lock without a reason in DIVERGENCES."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    found: list[str] = []
    pinned: dict[str, dict[str, str]] = {}
    for lock in locks:
        output = root / lock.output
        if not output.is_file():
            found.append(f"{lock.output} is missing: run `make lock`")
            continue
        if recorded_key(output) != lock.key(root):
            found.append(f"{lock.output} is out of date with {lock.input}: run `make lock`")
        pinned[lock.name] = versions = pins(output)
        for line in _requirements(root / lock.input):
            requirement = Requirement(line)
            version = versions.get(normalize(requirement.name))
            if version is None or Version(version) not in requirement.specifier:
                found.append(f"{lock.output}: {requirement} is not satisfied (pinned: {version})")
    reference = pinned.get(DEVELOPMENT.name, {})
    for name, versions in pinned.items():
        if name == DEVELOPMENT.name:
            continue
        for package, version in sorted(versions.items()):
            if package in reference and reference[package] != version and package not in DIVERGENCES:
                found.append(
                    f"{package} is {version} in the {name} lock but {reference[package]} in the development "
                    "lock: run `make lock`, or state the reason in scripts/locks.py DIVERGENCES"
                )
    return found


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        raise SystemExit("uv is missing: make setup (requirements.txt installs it)")
    return found


def compile_all(locks: tuple[Lock, ...] = LOCKS) -> None:
    """Resolve every lock (the development one first: it constrains the others)."""
    uv = _uv()
    constraints = ROOT / "build" / "locks" / "development-versions.txt"
    for lock in sorted(locks, key=lambda lk: lk.constrained):
        use = None
        if lock.constrained:
            kept = {p: v for p, v in pins(ROOT / DEVELOPMENT.output).items() if p not in DIVERGENCES}
            constraints.parent.mkdir(parents=True, exist_ok=True)
            constraints.write_text("".join(f"{p}=={v}\n" for p, v in sorted(kept.items())))
            use = constraints
        subprocess.run(lock.argv(uv, use), cwd=ROOT, check=True)
        output = ROOT / lock.output
        text = output.read_text()
        header = f"{HASH_LINE}{lock.key()}\n# for Python {lock.python} on {lock.platform}\n"
        output.write_text(header + text)
        print(f"locked {lock.name}: {lock.output} ({len(pins(output))} packages)", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="check, offline, instead of resolving")
    args = parser.parse_args(argv)
    if not args.check:
        compile_all()
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
