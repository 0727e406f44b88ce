"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import STACK_NAME, Synth

pytestmark = pytest.mark.xdist_group("infra")

_LAMBDA_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
_LAMBDAS = (
    "Api/Function",
    "Dispatcher/QueueFunction",
    "Dispatcher/DeadLetterFunction",
    "Dispatcher/TaskStateFunction",
    "Dispatcher/SweepFunction",
    "Migrations/Function",
    "WorkerFunction/Function",
)

#: Every acknowledged finding: (finding id, construct path below the stack). A new finding
#: fails the synth itself; a new acknowledgement fails here, so it is reviewed and listed in
#: the README.
EXPECTED_ACKNOWLEDGEMENTS = {
    ("APIG3", "Platform/Api/RestApi/DeploymentStage.v1/Resource"),
    ("ECS2", "Platform/Worker/TaskDefinition/Resource"),
    ("RDS11", "Platform/Database/Instance/Resource"),
    ("RDS3", "Platform/Database/Instance/Resource"),
    ("SMG4", "Platform/Api/JwtSecret/Resource"),
    (
        f"IAM4[{_LAMBDA_POLICY}AmazonAPIGatewayPushToCloudWatchLogs]",
        "Platform/Api/RestApi/CloudWatchRole/Resource",
    ),
    (
        f"IAM4[{_LAMBDA_POLICY}AWSLambdaBasicExecutionRole]",
        "Platform/Migrations/Provider/framework-onEvent/ServiceRole/Resource",
    ),
    (
        "IAM5[Resource::<PlatformMigrationsFunctionEA742D69.Arn>:*]",
        "Platform/Migrations/Provider/framework-onEvent/ServiceRole/DefaultPolicy/Resource",
    ),
    ("IAM5[Resource::*]", "Platform/Worker/TaskDefinition/ExecutionRole/DefaultPolicy/Resource"),
    (
        "IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<PlatformWorkerClusterCB82B822>/*]",
        "Platform/Dispatcher/QueueFunction/ServiceRole/DefaultPolicy/Resource",
    ),
    *(
        (f"IAM5[Resource::<PlatformStorage{bucket}.Arn>/{prefix}/*]", f"{role}/DefaultPolicy/Resource")
        for bucket, prefix in (("InputBucket5D24F046", "input"), ("OutputBucketDAE8074B", "output"))
        for role in (
            "Platform/Worker/TaskDefinition/TaskRole",
            "Platform/Api/Function/ServiceRole",
            "Platform/WorkerFunction/Function/ServiceRole",
        )
    ),
    # The dispatcher invokes the worker function (unqualified or a version); the API to probe.
    *(
        ("IAM5[Resource::<PlatformWorkerFunction083B6149.Arn>:*]", f"Platform/{fn}/ServiceRole/DefaultPolicy/Resource")
        for fn in ("Dispatcher/QueueFunction", "Api/Function")
    ),
    # The sweeper HEADs stale uploads' objects and deletes oversized ones (input/), and deletes a
    # deleted account's media (input/ and output/).
    *(
        (
            f"IAM5[Resource::<PlatformStorage{bucket}.Arn>/{prefix}/*]",
            "Platform/Dispatcher/SweepFunction/ServiceRole/DefaultPolicy/Resource",
        )
        for bucket, prefix in (("InputBucket5D24F046", "input"), ("OutputBucketDAE8074B", "output"))
    ),
    *(
        (f"IAM4[{_LAMBDA_POLICY}{policy}]", f"Platform/{fn}/ServiceRole/Resource")
        for fn in _LAMBDAS
        for policy in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")
    ),
    *(("IAM5[Resource::*]", f"Platform/{fn}/ServiceRole/DefaultPolicy/Resource") for fn in _LAMBDAS),
}
#: Acknowledged on every API method: authentication is the Chalice app's own.
PER_METHOD_RULES = {"APIG4", "COG4"}


def test_given_platform_when_synth_with_aws_solutions_then_no_unacknowledged_finding(synth: Synth) -> None:
    (report,) = synth.report["pluginReports"]
    assert report["pluginName"] == "AwsSolutions"
    assert report["conclusion"] == "success"
    assert report["violations"] == []


def test_given_platform_when_synth_then_acknowledgements_are_exactly_the_reviewed_ones(synth: Synth) -> None:
    (report,) = synth.report["pluginReports"]
    found = set()
    for violation in report["suppressedViolations"]:
        rule = violation["acknowledgedId"].removeprefix("AwsSolutions::AwsSolutions-")
        assert violation["reason"].strip(), violation
        for construct in violation["violatingConstructs"]:
            path = construct["constructPath"].removeprefix(f"{STACK_NAME}/")
            if rule in PER_METHOD_RULES:
                assert path.startswith("Platform/Api/RestApi/Default/"), path
                continue
            found.add((rule, path))
    assert found == EXPECTED_ACKNOWLEDGEMENTS


def test_given_a_new_unacknowledged_finding_when_synth_then_synth_fails(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = Stack(app, "Probe")
    sqs.Queue(stack, "PlainQueue")  # no DLQ, no TLS enforcement
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for v in report["pluginReports"][0]["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_given_synthesized_template_when_cfn_lint_then_no_errors(synth: Synth) -> None:
    from cfnlint.api import lint_file

    matches = lint_file(synth.outdir / f"{STACK_NAME}.template.json")
    errors = [str(m) for m in matches if str(m.rule.id).startswith("E")]
    assert not errors, "\n".join(errors)
