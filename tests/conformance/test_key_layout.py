"""The IAM grants and the key layout have one owner (runtime/shared/keys.py): a key the layout
makes for an upload or a job is granted to each component that uses it, and a key outside the
layout is not."""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

import pytest

from runtime.shared import keys
from tests.conformance.iam import Call, Topology, violations

pytestmark = pytest.mark.infra

USER, UPLOAD, JOB = (str(uuid.uuid4()) for _ in range(3))
INPUT_KEY = keys.upload_key(USER, UPLOAD, "holiday clip.MOV")
OUTPUT_KEYS = [keys.output_key(USER, JOB, name) for name in ("image.webp", "poster.jpg", "hls/720p/seg_00001.m4s")]


def _call(component: str, operation: str, bucket: str, key: str | None = None, **params: Any) -> Call:
    named = {"Bucket": bucket, **({"Key": key} if key is not None else {}), **params}
    return Call(component=component, service="s3", operation=operation, params=named, site="keys")


def test_given_keys_made_by_the_layout_when_each_component_uses_them_then_its_role_grants_them(
    topology: Topology,
) -> None:
    calls = [
        _call("api", "PutObject", "input-x", INPUT_KEY),
        _call("api", "CreateMultipartUpload", "input-x", INPUT_KEY),
        _call("api", "HeadObject", "input-x", INPUT_KEY),
        _call("api", "DeleteObject", "input-x", INPUT_KEY),
        _call("sweeper", "HeadObject", "input-x", INPUT_KEY),
        _call("worker", "HeadObject", "input-x", INPUT_KEY),
        _call("worker", "GetObject", "input-x", INPUT_KEY),
        _call("worker", "ListObjectsV2", "output-x", Prefix=keys.output_prefix(USER, JOB)),
        _call("worker", "DeleteObjects", "output-x", Keys=OUTPUT_KEYS),
    ]
    calls += [_call("worker", "PutObject", "output-x", key) for key in OUTPUT_KEYS]
    calls += [_call("api", "GetObject", "output-x", key) for key in OUTPUT_KEYS]
    assert violations(calls, topology) == []


def test_given_keys_outside_the_layout_when_used_then_the_grants_refuse_each_one(topology: Topology) -> None:
    """The check can fail: the same calls on keys the layout never makes are violations."""
    found = violations(
        [
            _call("worker", "PutObject", "output-x", keys.upload_key(USER, UPLOAD, "x.jpg")),  # input layout
            _call("worker", "GetObject", "input-x", OUTPUT_KEYS[0]),  # output layout in the input bucket
            _call("api", "PutObject", "input-x", f"uploads/{USER}/{UPLOAD}/x.jpg"),
        ],
        topology,
    )
    assert [(v.component, v.action) for v in found] == [
        ("api", "s3:PutObject"),
        ("worker", "s3:GetObject"),
        ("worker", "s3:PutObject"),
    ]


def test_given_the_granted_listings_when_matched_then_the_layouts_prefixes_and_only_they_may_be_listed(
    topology: Topology,
) -> None:
    """moto ignores conditions; the ``s3:prefix`` patterns are matched here against keys.py."""
    patterns: dict[str, list[str]] = {}
    for component in topology.roles:
        for statement in topology.policy(component)["Statement"]:
            actions = statement.get("Action", [])
            if "s3:ListBucket" in (actions if isinstance(actions, list) else [actions]):
                values = statement["Condition"]["StringLike"]["s3:prefix"]
                patterns.setdefault(component, []).extend(values if isinstance(values, list) else [values])
    assert {"api", "worker", "sweeper"} <= set(patterns)
    for component, granted in patterns.items():
        assert set(granted) <= {keys.INPUT_PREFIX + "*", keys.OUTPUT_PREFIX + "*"}, component
    worker = patterns["worker"]
    assert any(fnmatch.fnmatchcase(keys.output_prefix(USER, JOB), p) for p in worker)
    assert any(fnmatch.fnmatchcase(INPUT_KEY, p) for p in worker)
    assert not any(fnmatch.fnmatchcase(f"private/{USER}/", p) for p in worker)
