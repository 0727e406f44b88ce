"""Apply runtime/shared's SQL migrations during the deploy, before anything uses the schema."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from constructs_lib._assets import runtime_path
from constructs_lib._lambda import acknowledge_lambda_managed_policies, runtime_function
from constructs_lib._nag import acknowledge
from constructs_lib._runtime_interface import runtime_interface


def migrations_hash() -> str:
    """Hash of the migrations (runtime.shared.migrate.content_hash owns it, copied into the runtime
    interface file): a change re-runs them, and the handler applies only the hash it ships (a
    rollback's old hash is a no-op)."""
    runtime_path("shared", "migrations")
    return runtime_interface().migrations_hash


@dataclass(frozen=True)
class MigrationsProps:
    """Properties of :class:`Migrations`."""

    #: The VPC of the function (it connects to the database).
    vpc: ec2.IVpc
    #: Database credentials.
    database_secret: secretsmanager.ISecret
    #: Subnets of the function.
    #: Default: - the VPC's private subnets with egress.
    vpc_subnets: ec2.SubnetSelection | None = None
    #: Timeout of the migration function, in seconds.
    #: Default: - 300.
    timeout_seconds: int = 300
    #: Retention of the log groups.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the log groups.
    #: Default: - RETAIN.
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    def validate(self) -> None:
        if not 30 <= self.timeout_seconds <= 900:
            raise ValueError(f"timeout_seconds must be between 30 and 900, got {self.timeout_seconds}")


class Migrations(Construct):
    """A custom resource whose handler (runtime/dispatcher/migrate.py) applies the migrations.

    Its ``MigrationsHash`` property is the hash of the SQL files, so a deploy that
    changes them updates the resource and re-runs the handler. Attributes:
    ``function``, ``provider``, ``resource`` and ``security_group``; make the
    resource depend on the database instance (the platform does).
    """

    def __init__(self, scope: Construct, construct_id: str, props: MigrationsProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        runtime_path("dispatcher", "migrate.py")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="TranscodeX migrations function (no inbound)",
            allow_all_outbound=True,
        )
        self.function = runtime_function(
            self,
            "Function",
            component="dispatcher",
            index="runtime/dispatcher/migrate.py",
            handler="handler",
            description="TranscodeX: applies database migrations (CloudFormation custom resource)",
            vpc=props.vpc,
            vpc_subnets=props.vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            environment={"TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn},
            timeout=Duration.seconds(props.timeout_seconds),
            memory_size_mib=512,
            log_retention=props.log_retention,
            log_removal_policy=props.log_removal_policy,
        )
        props.database_secret.grant_read(self.function)
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=logs.LogGroup(
                self, "ProviderLogs", retention=props.log_retention, removal_policy=props.log_removal_policy
            ),
        )
        framework = self.provider.node.find_child("framework-onEvent")
        assert isinstance(framework, lambda_.Function), type(framework)
        acknowledge_lambda_managed_policies(framework, in_vpc=False)
        fn_arn = Stack.of(self).resolve(self.function.function_arn)
        acknowledge(
            framework,
            "IAM5",
            "The Provider framework may invoke any version of its own on_event function (<arn>:*), nothing else.",
            f"Resource::<{fn_arn['Fn::GetAtt'][0]}.Arn>:*",
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type="Custom::TranscodexMigrations",
            properties={"MigrationsHash": migrations_hash()},
        )

    @property
    def connections(self) -> ec2.Connections:
        return self.security_group.connections
