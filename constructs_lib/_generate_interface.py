"""Regenerate constructs_lib/runtime_interface.json from the runtime (``make runtime-interface``).

The only module of the package that imports the runtime (and so Chalice, psycopg and argon2);
nothing imports it at synth.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from constructs_lib import _runtime_interface as interface
from constructs_lib._runtime_interface import APP_ATTRIBUTE, APP_MODULE, AppSpec, render

NOTE = "Generated from the runtime by `make runtime-interface`; do not edit by hand."


def generate() -> dict[str, Any]:
    """Read the facts from the runtime itself (imports Chalice, psycopg and argon2)."""
    from runtime.api.chalicelib.deps import POOL_SIZE_ENV
    from runtime.api.chalicelib.errors import BASE_HEADERS, GATEWAY_NOT_FOUND
    from runtime.dispatcher.service import CLAIM_TIMEOUT_ENV
    from runtime.shared.log import METRICS_NAMESPACE
    from runtime.shared.migrate import content_hash
    from runtime.shared.status import JobStatus

    spec = AppSpec.from_chalice(getattr(importlib.import_module(APP_MODULE), APP_ATTRIBUTE))
    return {
        "_note": NOTE,
        "api": {
            "routes": [
                {"path": r.path, "methods": list(r.methods), "cors": dict(r.cors) if r.cors is not None else None}
                for r in spec.routes
            ],
            "binary_media_types": list(spec.binary_media_types),
            "response_headers": dict(BASE_HEADERS),
            "not_found": dict(GATEWAY_NOT_FOUND),
            "pool_size_env": POOL_SIZE_ENV,
        },
        "dispatcher": {"claim_timeout_env": CLAIM_TIMEOUT_ENV},
        "migrations": {"hash": content_hash()},
        "metrics": {"namespace": METRICS_NAMESPACE, "job_statuses": [status.value for status in JobStatus]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m constructs_lib._generate_interface", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the runtime")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.check:
        if interface.INTERFACE_FILE.read_text() != text:
            print(f"{interface.INTERFACE_FILE} is stale: run `make runtime-interface`", file=sys.stderr)
            return 1
        return 0
    interface.INTERFACE_FILE.write_text(text)
    print(f"wrote {interface.INTERFACE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
