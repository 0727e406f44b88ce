"""The job contract before (hand-written readers) and after (pydantic models): import time and
``parse_job`` time, side by side.

"Before" is ``runtime/shared/contract.py`` as it was in the commit before the package replaced it
(read with ``git show``, loaded as a standalone module: it only needs the standard library).
Import time is ``python -X importtime``'s cumulative time of the module (its parents included) in
a fresh interpreter, and the CPU time that import adds to an empty interpreter (steadier on a busy
machine), medians of several runs; parse time is CPU time per call, the best of several repeats.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("TRANSCODEX_BENCH_QUICK") == "1"

#: A typical full body: 20 image operations in the list form.
TWENTY = [
    {"op": "resize", "width": 1600, "height": 1200},
    {"op": "rotate", "angle": 90},
    {"op": "watermark", "text": "(c) ACME", "position": "bottom-right", "opacity": 0.4},
    {"op": "force-resize", "width": 800, "height": 600},
    {"op": "rotate", "angle": 33.5, "background": "#ffffff"},
] * 3 + [
    {"op": "resize", "width": 640},
    {"op": "watermark", "text": "sample", "position": "center", "size": 0.1},
    {"op": "rotate", "angle": -90},
    {"op": "thumbnail", "width": 256, "height": 256, "crop": True},
    {"op": "convert-format", "format": "webp", "quality": 80},
]
#: The seed's own body, object form.
SEED = {"ROTATE": "180", "WATERMARK": "bruh", "FORCE-RESIZE": "100x400"}
#: 20 operations, each with a bad field: the error path.
INVALID = [{"op": "resize", "width": 0}, {"op": "rotate", "angle": "sideways"}] * 10
CASES: dict[str, tuple[str, Any]] = {
    "20 ops, list form": ("IMAGE", TWENTY),
    "seed object form (3 ops)": ("IMAGE", SEED),
    "20 bad ops (error path)": ("IMAGE", INVALID),
}


def before_source() -> str:
    """The hand-written contract.py from the commit before the one that removed it."""
    path = "runtime/shared/contract.py"
    if (ROOT / path).is_file():
        return (ROOT / path).read_text()  # not removed in this checkout
    last = subprocess.run(
        ["git", "rev-list", "-1", "HEAD", "--", path], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    for rev in filter(None, (os.environ.get("TRANSCODEX_BENCH_CONTRACT_BEFORE"), last, f"{last}^")):
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:  # ``last`` removed it (committed) or still had it (not yet)
            return shown.stdout
    raise RuntimeError(f"no revision before {last} holds {path}")


def import_ms(module: str, path: Path, runs: int) -> float:
    """Median cumulative -X importtime of ``module`` and its parent packages, in ms."""
    totals = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            cwd=path,
            env={**os.environ, "PYTHONPATH": str(path)},
            capture_output=True,
            text=True,
            check=True,
        )
        wanted = {".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)}
        total = 0
        for line in result.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if match and match.group(2) in wanted:
                total += int(match.group(1))
        totals.append(total / 1000)
    return statistics.median(totals)


def import_cpu_ms(module: str, path: Path, runs: int) -> float:
    """Median CPU time (user + system) ``import module`` adds to an empty interpreter, in ms."""

    def cpu(code: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], cwd=path, env={**os.environ, "PYTHONPATH": str(path)}, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000

    return statistics.median(cpu(f"import {module}") - cpu("pass") for _ in range(runs))


def parse_us(parse: Callable[[str, Any], Any], error: type[Exception], job_type: str, operations: Any) -> float:
    def call() -> None:
        with contextlib.suppress(error):
            parse(job_type, operations)

    number = 200 if QUICK else 1000
    samples = timeit.repeat(call, number=number, repeat=3 if QUICK else 7, timer=time.process_time)
    return min(samples) / number * 1e6


def main() -> None:
    runs = 3 if QUICK else 9
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "contract_before.py").write_text(before_source())
        imports = [
            (import_ms(name, where, runs), import_cpu_ms(name, where, runs))
            for name, where in (("contract_before", folder), ("runtime.shared.contract", ROOT))
        ]
        sys.path.insert(0, str(folder))
        import contract_before as before

        from runtime.shared import contract as after

        print(f"{'':28} {'before':>12} {'after':>12}")
        print(f"{'import (ms, -X importtime)':28} {imports[0][0]:12.1f} {imports[1][0]:12.1f}")
        print(f"{'import (ms CPU)':28} {imports[0][1]:12.1f} {imports[1][1]:12.1f}")
        for name, (job_type, operations) in CASES.items():
            old = parse_us(before.parse_job, before.ContractError, job_type, operations)
            new = parse_us(after.parse_job, after.ContractError, job_type, operations)
            print(f"{name + ' (us)':28} {old:12.1f} {new:12.1f}")


if __name__ == "__main__":
    main()
