"""One synthesized assembly shared by the infra tests (bundling skipped: no Docker)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# tests/conftest.py (loaded first) has set the dummy credentials, the region and Node; a synth
# here must not pick up an account, a region or a skip from the caller's shell.
for _key in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION", "TRANSCODEX_SKIP_BUNDLING"):
    os.environ.pop(_key, None)

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "Transcodex"
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass
class Synth:
    """A synthesized TranscodeX assembly."""

    outdir: Path
    template: dict[str, Any]
    report: dict[str, Any]

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_}

    def one(self, type_: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.items()))


def synthesize(outdir: Path, **kwargs: Any) -> Synth:
    from stacks import apply_policy_checks, create_app

    app, stack = create_app(skip_bundling=True, outdir=str(outdir), **kwargs)
    apply_policy_checks(app)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    report_file = outdir / "validation-report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Synth(outdir=outdir, template=template, report=report)


def mask_hashes(value: Any) -> Any:
    """Replace content hashes (assets, migrations) so the snapshot reflects the infrastructure only."""
    return json.loads(_HASH.sub("<HASH>", json.dumps(value)))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(tmp_path_factory.mktemp("cdk-out"))
