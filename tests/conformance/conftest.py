"""One synthesized default stack for the conformance tests."""

from __future__ import annotations

import pytest

from tests.conformance.iam import Topology, synth_topology


@pytest.fixture(scope="session")
def topology() -> Topology:
    return synth_topology()
