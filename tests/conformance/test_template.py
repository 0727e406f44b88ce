"""The conformance checker against the template itself: what moto's evaluator cannot see
(conditions), what the environment implies (secrets), and that the checker can fail."""

from __future__ import annotations

import json
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult

from tests.conformance.iam import Call, Topology, secret_needs, violations


def _statements(topology: Topology, component: str) -> list[dict[str, Any]]:
    return topology.policy(component)["Statement"]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def test_given_default_stack_when_listbucket_granted_then_it_carries_an_s3_prefix_condition(
    topology: Topology,
) -> None:
    """moto ignores conditions: this pins that no role may list a whole bucket."""
    seen = 0
    for component in topology.roles:
        for statement in _statements(topology, component):
            if "s3:ListBucket" in _actions(statement):
                seen += 1
                prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                assert prefixes, f"{component}: s3:ListBucket without an s3:prefix condition: {statement}"
                values = prefixes if isinstance(prefixes, list) else [prefixes]
                assert all(v in ("input/*", "output/*") for v in values), f"{component}: {values}"
    assert seen >= 4, "the API, worker and sweeper read objects and must see 404s (s3:ListBucket)"


def _role_environment(topology: Topology, role_lid: str) -> dict[str, Any]:
    for res in topology.template["Resources"].values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Function" and props.get("Role") == {"Fn::GetAtt": [role_lid, "Arn"]}:
            return props.get("Environment", {}).get("Variables", {})
        if res["Type"] == "AWS::ECS::TaskDefinition" and props.get("TaskRoleArn") == {"Fn::GetAtt": [role_lid, "Arn"]}:
            return {e["Name"]: e["Value"] for c in props["ContainerDefinitions"] for e in c.get("Environment", [])}
    return {}


def test_given_secret_arns_in_environment_when_evaluated_then_each_role_may_read_its_secrets(
    topology: Topology,
) -> None:
    """Tests use a database URL; deployed components read these secrets at cold start."""
    checked = 0
    for component, role in topology.roles.items():
        env = _role_environment(topology, role)
        policy = IAMPolicy(json.dumps(topology.policy(component)))
        for name, secret in (
            ("TRANSCODEX_DATABASE_SECRET_ARN", topology.database_secret),
            ("TRANSCODEX_JWT_SECRET_ARN", topology.jwt_secret),
        ):
            if name in env:
                checked += 1
                for need in secret_needs(secret, topology, name):
                    result = policy.is_action_permitted(need.action, need.resource)
                    assert result == PermissionResult.PERMITTED, f"{component}: {need}"
    assert checked >= 7, f"expected every component to read the database secret, checked {checked}"


def _call(component: str, service: str, operation: str, **params: Any) -> Call:
    return Call(component=component, service=service, operation=operation, params=params, site="test.py:1")


def test_given_ungranted_calls_when_evaluated_then_each_violation_names_component_action_resource_site(
    topology: Topology,
) -> None:
    found = violations(
        [
            _call("worker", "s3", "DeleteObject", Bucket="input-x", Key="input/u/up/a.jpg"),
            _call("sweeper", "sqs", "DeleteMessage", QueueUrl="http://127.0.0.1:1/123/jobs-x"),
            _call("dead-letter", "ecs", "RunTask", cluster="c", taskDefinition="worker-x", tags=True),
        ],
        topology,
    )
    text = "\n".join(map(str, found))
    assert "worker: s3:DeleteObject on arn:aws:s3:::" in text and "input/u/up/a.jpg" in text
    assert "sweeper: sqs:DeleteMessage" in text
    assert "dead-letter: ecs:RunTask" in text and "dead-letter: iam:PassRole" in text
    assert all(v.site == "test.py:1" for v in found)


def test_given_granted_calls_when_evaluated_then_no_violation(topology: Topology) -> None:
    calls = [
        _call("api", "sqs", "SendMessage", QueueUrl="http://127.0.0.1:1/123/jobs-x"),
        _call("worker", "s3", "PutObject", Bucket="output-x", Key="output/u/j/a.webp"),
        _call("dispatcher", "ecs", "RunTask", cluster="c", taskDefinition="worker-x", tags=True),
    ]
    assert violations(calls, topology) == []


def test_given_default_stack_when_deletes_granted_then_only_on_the_components_own_prefix(
    topology: Topology,
) -> None:
    """The worker prunes its outputs, the API deletes aborted or oversized inputs, the sweeper
    oversized inputs and a deleted account's media in both buckets; nothing else deletes."""
    input_arn = topology.resolver.get_att(topology.input_bucket, "Arn")
    output_arn = topology.resolver.get_att(topology.output_bucket, "Arn")
    expected = {
        "worker": [f"{output_arn}/output/*"],
        "api": [f"{input_arn}/input/*"],
        "sweeper": [f"{input_arn}/input/*", f"{output_arn}/output/*"],
    }
    for component in topology.roles:
        resources = [
            resource
            for statement in _statements(topology, component)
            if "s3:DeleteObject" in _actions(statement)
            for resource in (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
        ]
        assert resources == expected.get(component, []), component
