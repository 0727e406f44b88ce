"""The whole template, with content hashes masked: any infrastructure change shows up in review."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Synth, mask_hashes

pytestmark = pytest.mark.xdist_group("infra")


def test_given_default_props_when_synth_then_template_matches_snapshot(
    synth: Synth, snapshot: SnapshotAssertion
) -> None:
    assert mask_hashes(synth.template) == snapshot.use_extension(JSONSnapshotExtension)
