"""AWS quotas as synth invariants, for the default stack and the largest configuration.

The figures come from stacks.quotas, the same code `make synth` prints them with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks import quotas
from tests.infra.conftest import STACK_NAME, Synth, synthesize

pytestmark = [pytest.mark.xdist_group("infra"), pytest.mark.infra]


@pytest.fixture(scope="module")
def largest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    context = {**quotas.LARGEST_CONTEXT, "transcodex": quotas.LARGEST_CONFIG}
    yield synthesize(tmp_path_factory.mktemp("cdk-out-largest"), context=context)


def _figures(synth: Synth) -> list[quotas.Figure]:
    body = (synth.outdir / f"{STACK_NAME}.template.json").stat().st_size
    return quotas.figures(synth.template, body)


def test_given_default_props_when_synth_then_every_aws_quota_figure_is_within_its_limit(synth: Synth) -> None:
    failing = [str(f) for f in _figures(synth) if not f.ok]
    assert not failing, "\n".join(failing)


def test_given_the_largest_configuration_when_synth_then_every_aws_quota_figure_is_within_its_limit(
    largest: Synth,
) -> None:
    assert len(largest.resources("AWS::EC2::Subnet")) == 18  # six AZs really synthesized
    failing = [str(f) for f in _figures(largest) if not f.ok]
    assert not failing, "\n".join(failing)


def test_given_default_props_when_synth_then_the_api_function_has_one_api_wide_permission(synth: Synth) -> None:
    (api_id,) = (k for k in synth.resources("AWS::Lambda::Function") if "ApiFunction" in k)
    permissions = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [api_id, "Arn"]}
    ]
    assert len(permissions) == 1
    source = quotas.resolve(permissions[0]["SourceArn"], synth.template["Resources"])
    assert source.endswith(":a1b2c3d4e5/*/*/*"), source


def test_given_two_permissions_per_method_when_measured_then_the_policy_exceeds_20_kb() -> None:
    """The estimator can fail: 28 methods x 2 per-method permissions, as CDK's default makes them."""
    function = {"Type": "AWS::Lambda::Function", "Properties": {}}
    api = {"Type": "AWS::ApiGateway::RestApi", "Properties": {}}
    resources: dict = {"Fn": function, "Api": api}
    for index in range(56):
        resources[f"PlatformApiRestApiresourcepathmethodApiPermissionTranscodexPlatformApi{index:04d}"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]},
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": {
                    "Fn::Join": [
                        "",
                        [
                            "arn:",
                            {"Ref": "AWS::Partition"},
                            ":execute-api:",
                            {"Ref": "AWS::Region"},
                            ":",
                            {"Ref": "AWS::AccountId"},
                            ":",
                            {"Ref": "Api"},
                            "/v1/POST/media/upload/{upload_id}/complete",
                        ],
                    ]
                },
            },
        }

    (size,) = quotas.function_policy_sizes({"Resources": resources}).values()

    assert size > quotas.LAMBDA_POLICY_BYTES


@pytest.mark.parametrize(
    ("cpu", "memory", "valid"),
    [(2048, 4096, True), (16384, 122880, True), (256, 4096, False), (4096, 31744, False), (8192, 18432, False)],
)
def test_given_a_task_size_when_checked_then_only_fargate_pairs_pass(cpu: int, memory: int, valid: bool) -> None:
    template = {
        "Resources": {
            "Task": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {"RequiresCompatibilities": ["FARGATE"], "Cpu": str(cpu), "Memory": str(memory)},
            }
        }
    }
    (figure,) = (f for f in quotas.figures(template, 0) if f.name.startswith("Fargate"))
    assert figure.ok is valid


def test_given_a_package_directory_when_measured_then_its_unzipped_bytes_are_counted(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_bytes(b"x" * 1000)
    (tmp_path / "b.so").write_bytes(b"y" * 24)
    assert quotas.directory_bytes(tmp_path) == 1024
    assert quotas.directory_bytes(tmp_path) < quotas.LAMBDA_UNZIPPED_PACKAGE_BYTES


def test_given_default_props_when_synth_then_the_api_holds_one_connection_per_reserved_container(
    synth: Synth,
) -> None:
    from runtime.api.chalicelib.deps import POOL_SIZE_ENV

    (api,) = (v["Properties"] for k, v in synth.resources("AWS::Lambda::Function").items() if "ApiFunction" in k)
    assert api["Environment"]["Variables"][POOL_SIZE_ENV] == "1"
    assert api["ReservedConcurrentExecutions"] == 100
    instance_class, lambda_side, available, workers = quotas.connection_budget(synth.template)
    assert (instance_class, quotas.max_connections(instance_class)) == ("db.t4g.small", 202)
    assert lambda_side <= available and workers >= 20, (lambda_side, available, workers)


def test_given_a_database_function_without_a_concurrency_bound_when_budgeted_then_it_counts_as_the_account_limit() -> (
    None
):
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "runtime.dispatcher.handler.handle_task_state_change",
                    "Environment": {"Variables": {"TRANSCODEX_DATABASE_SECRET_ARN": "arn"}},
                },
            },
            "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.t4g.small"}},
        }
    }
    (figure,) = (f for f in quotas.figures(template, 0) if f.name.startswith("database connections"))
    assert figure.value == 1000 * quotas.DISPATCHER_POOL_SIZE and not figure.ok
