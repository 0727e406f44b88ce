"""The one way TranscodeX builds its Python Lambda functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs_lib._assets import runtime_path, stage_runtime
from constructs_lib._bundling import bundled_code
from constructs_lib._nag import acknowledge

#: cdk-nag (AwsSolutions-L1) requires the newest runtime CDK knows of.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14

_MANAGED_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{}"


def acknowledge_lambda_managed_policies(function: lambda_.IFunction, in_vpc: bool = True) -> None:
    """Acknowledge the AWS managed policies CDK attaches to every (VPC) Lambda role."""
    if function.role is None:
        return
    policies = ["AWSLambdaBasicExecutionRole"] + (["AWSLambdaVPCAccessExecutionRole"] if in_vpc else [])
    acknowledge(
        function.role,
        "IAM4",
        "AWS managed Lambda execution policies: CloudWatch Logs writes and, in a VPC, the ENI "
        "management that Lambda itself performs; AWS maintains them as the service changes.",
        *(_MANAGED_POLICY.format(p) for p in policies),
    )


def runtime_function(
    scope: Construct,
    construct_id: str,
    *,
    component: str,
    index: str,
    handler: str,
    description: str,
    vpc: ec2.IVpc,
    vpc_subnets: ec2.SubnetSelection,
    security_groups: Sequence[ec2.ISecurityGroup],
    environment: Mapping[str, str],
    timeout: Duration,
    memory_size_mib: int,
    log_retention: logs.RetentionDays,
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
) -> lambda_.Function:
    """A function whose bundle holds ``runtime/{shared,<component>}`` and the
    dependencies pinned by ``runtime/<component>/requirements.lock`` (staged as the bundle's
    ``requirements.txt``; scripts/locks.py makes it for the runtime's Python), traced, in the
    VPC, with its own log group.

    The bundle is built by pip for the runtime's Python and architecture (no container), or
    in the SAM build image with Docker when pip cannot (``constructs_lib._bundling``)."""
    requirements = runtime_path(component, "requirements.lock")
    entry = stage_runtime(component, [component], {"requirements.txt": requirements})
    log_group = logs.LogGroup(scope, f"{construct_id}Logs", retention=log_retention, removal_policy=log_removal_policy)
    module = index.removesuffix(".py").replace("/", ".")
    function = lambda_.Function(
        scope,
        construct_id,
        code=bundled_code(entry, LAMBDA_RUNTIME),
        handler=f"{module}.{handler}",
        runtime=LAMBDA_RUNTIME,
        description=description,
        vpc=vpc,
        vpc_subnets=vpc_subnets,
        security_groups=list(security_groups),
        environment=dict(environment),
        timeout=timeout,
        memory_size=memory_size_mib,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
    )
    acknowledge_lambda_managed_policies(function)
    assert function.role is not None
    acknowledge(
        function.role,
        "IAM5",
        "X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions.",
        "Resource::*",
    )
    return function
