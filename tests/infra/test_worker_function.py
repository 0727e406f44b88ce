"""The worker Lambda in the synthesized stack: the worker image with awslambdaric, its sizes
as props, no retries and the dead-letter queue for failed invocations, invoked only by the
dispatcher and the API; a props switch removes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs

from constructs_lib.worker_function import WorkerFunctionProps
from tests.infra.conftest import Synth, synthesize

pytestmark = pytest.mark.infra


def _worker_function(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v) for k, v in synth.resources("AWS::Lambda::Function").items() if "WorkerFunction" in k]
    return found


def test_given_default_props_when_synth_then_worker_function_is_the_worker_image_with_awslambdaric(
    synth: Synth,
) -> None:
    _, function = _worker_function(synth)
    props = function["Properties"]
    assert props["PackageType"] == "Image"
    assert props["ImageConfig"] == {
        "EntryPoint": ["python", "-m", "awslambdaric"],
        "Command": ["runtime.worker.lambda_handler.handler"],
    }
    (_, task_def) = synth.one("AWS::ECS::TaskDefinition")
    task_image = task_def["Properties"]["ContainerDefinitions"][0]["Image"]
    # the same asset (one build, one image): the same content hash in both URIs
    assert synth.template and str(props["Code"]["ImageUri"]).split(":")[-1][:64] in str(task_image)
    assert (props["MemorySize"], props["EphemeralStorage"]["Size"], props["Timeout"]) == (4096, 10240, 900)
    assert props["ReservedConcurrentExecutions"] == 5
    assert props["Architectures"] == ["x86_64"]
    env = props["Environment"]["Variables"]
    assert (env["TMPDIR"], env["TRANSCODEX_WORKER_TIMEOUT_SECONDS"]) == ("/tmp", "870")


def test_given_default_props_when_synth_then_async_invokes_never_retry_and_fail_to_the_dead_letter_queue(
    synth: Synth,
) -> None:
    key, _ = _worker_function(synth)
    (_, config) = synth.one("AWS::Lambda::EventInvokeConfig")
    assert config["Properties"]["FunctionName"] == {"Ref": key}
    assert (config["Properties"]["MaximumRetryAttempts"], config["Properties"]["MaximumEventAgeInSeconds"]) == (0, 3600)
    destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    (dlq_key,) = [k for k in synth.resources("AWS::SQS::Queue") if "DeadLetter" in k]
    assert destination == {"Fn::GetAtt": [dlq_key, "Arn"]}


def test_given_default_props_when_synth_then_only_dispatcher_and_api_may_invoke_it_and_know_its_limits(
    synth: Synth,
) -> None:
    key, _ = _worker_function(synth)
    invokers = set()
    for policy_key, policy in synth.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "lambda:InvokeFunction" in actions and {"Fn::GetAtt": [key, "Arn"]} in statement["Resource"]:
                invokers.add(policy_key)
    assert len(invokers) == 2 and all(("Dispatcher" in k or "Api" in k) for k in invokers), invokers
    for function_key, function in synth.resources("AWS::Lambda::Function").items():
        env = function["Properties"].get("Environment", {}).get("Variables", {})
        if "QueueFunction" in function_key or "ApiFunction" in function_key:
            assert env["TRANSCODEX_WORKER_FUNCTION"] == {"Ref": key}
            assert env["TRANSCODEX_WORKER_FUNCTION_TIMEOUT_SECONDS"] == "870"
            assert env["TRANSCODEX_FARGATE_MAX_CPU"] == "8192"


def test_given_worker_function_disabled_when_synth_then_no_function_and_no_routing(tmp_path: Path) -> None:
    off = synthesize(tmp_path, context={"transcodex:worker_function_enabled": "false"})
    assert not [k for k in off.resources("AWS::Lambda::Function") if "WorkerFunction" in k]
    for function in off.resources("AWS::Lambda::Function").values():
        assert "TRANSCODEX_WORKER_FUNCTION" not in function["Properties"].get("Environment", {}).get("Variables", {})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("memory_size_mib", 64, "memory_size_mib must be between 128 and 10240"),
        ("ephemeral_storage_mib", 20000, "ephemeral_storage_mib must be between 512 and 10240"),
        ("timeout_seconds", 901, "timeout_seconds must be between 60 and 900"),
        ("reserved_concurrency", 0, "reserved_concurrency must be between 1 and 1000"),
        ("architecture", "RISCV", "architecture must be one of"),
    ],
)
def test_given_out_of_range_prop_when_validated_then_error_names_it(field: str, value: Any, message: str) -> None:
    stack = Stack(App(), "S")
    vpc = ec2.Vpc(stack, "V")
    props = WorkerFunctionProps(
        vpc=vpc,
        input_bucket=s3.Bucket(stack, "I"),
        output_bucket=s3.Bucket(stack, "O"),
        database_secret=secretsmanager.Secret(stack, "D"),
        on_failure_queue=sqs.Queue(stack, "Q"),
        **{field: value},
    )
    with pytest.raises(ValueError, match=message):
        props.validate()
