"""Run every benchmark module in this package (``python -m bench.run [name ...] [--quick]``).

A benchmark module is any ``bench.<name>`` with a ``main() -> None`` (or ``run()``); new ones
(e.g. ``bench.api``) are picked up without changes here. ``--quick`` sets
TRANSCODEX_BENCH_QUICK=1, which modules read to use smaller inputs.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path

SKIP = {"run", "__init__", "__main__"}


def discover() -> list[str]:
    folder = Path(__file__).resolve().parent
    return sorted(
        m.name for m in pkgutil.iter_modules([str(folder)]) if m.name not in SKIP and not m.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {discover()})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs (TRANSCODEX_BENCH_QUICK=1)")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["TRANSCODEX_BENCH_QUICK"] = "1"
    names = args.names or discover()
    unknown = set(names) - set(discover())
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; available: {discover()}")
    failed: list[str] = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            entry = getattr(module, "main", None) or getattr(module, "run", None)
            if entry is None:
                print(f"bench.{name} has no main() or run(); skipped")
                continue
            # a module's own argument parser must not read this runner's command line
            entry([]) if inspect.signature(entry).parameters else entry()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"--- bench.{name}: {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
