"""Every AWS call the runtime made during a recorded run is granted to its component's role.

Run after the suite, on its recordings (``make test`` does; ``make conformance`` records a
subset first): ``TRANSCODEX_AWS_CALL_LOG=DIR pytest -m conformance tests/conformance``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.shared.aws import COMPONENTS
from runtime.shared.settings import AWS_CALL_LOG_ENV
from tests.conformance.iam import Topology, read_calls, violations

pytestmark = pytest.mark.conformance

#: Components a subset run may legitimately not exercise (comma-separated), e.g. for
#: ``make conformance`` on tests/api only.
OPTIONAL_ENV = "TRANSCODEX_CONFORMANCE_OPTIONAL"
#: No recorded test makes an AWS call as these (they read the database URL, not a secret);
#: their grants are checked from the template in test_template.py.
NEVER_CALL_AWS_IN_TESTS = {"dead-letter", "task-state", "migrations"}


def _directory() -> Path:
    directory = Path(os.environ[AWS_CALL_LOG_ENV])
    files = list(directory.glob("calls-*.jsonl"))
    assert files, f"no recorded AWS calls in {directory}: run the suite first with {AWS_CALL_LOG_ENV}={directory}"
    return directory


def test_given_recorded_run_when_calls_evaluated_then_every_call_is_granted_to_its_component(
    topology: Topology,
) -> None:
    found = violations(read_calls(_directory()), topology)
    assert not found, "AWS calls the template does not grant:\n" + "\n".join(map(str, found))


def test_given_recorded_run_when_components_counted_then_each_calling_component_was_seen() -> None:
    seen = {call.component for call in read_calls(_directory())}
    optional = NEVER_CALL_AWS_IN_TESTS | set(filter(None, os.environ.get(OPTIONAL_ENV, "").split(",")))
    missing = set(COMPONENTS) - optional - seen
    assert not missing, f"no recorded AWS call by {sorted(missing)}: their calls went unchecked"
