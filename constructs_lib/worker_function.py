"""The worker Lambda: the worker image run by the Lambda runtime interface client, for jobs
small enough to finish within a Lambda's limits (runtime.shared.estimate decides which)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib._assets import runtime_path, stage_runtime
from constructs_lib._grants import grant_worker_data
from constructs_lib._lambda import acknowledge_lambda_managed_policies
from constructs_lib._nag import acknowledge
from constructs_lib.worker import ARCHITECTURES

#: The image's entrypoint and command on Lambda: awslambdaric calls the handler (the same
#: runner as the container's ``python -m runtime.worker``).
LAMBDA_ENTRYPOINT = ("python", "-m", "awslambdaric")
LAMBDA_HANDLER = "runtime.worker.lambda_handler.handler"
#: Seconds of the function timeout kept for the worker to record TIMEOUT and clean up itself.
TIMEOUT_RESERVE_SECONDS = 30


@dataclass(frozen=True)
class WorkerFunctionProps:
    """Properties of :class:`WorkerFunction`."""

    #: The VPC of the function (it reaches the database).
    vpc: ec2.IVpc
    #: Bucket the worker reads inputs from (``input/`` prefix only).
    input_bucket: s3.IBucket
    #: Bucket the worker writes outputs to (``output/`` prefix only).
    output_bucket: s3.IBucket
    #: Database credentials the worker reads.
    database_secret: secretsmanager.ISecret
    #: Where a failed or expired invocation goes (the job queue's dead-letter queue: its
    #: handler fails the job).
    on_failure_queue: sqs.IQueue
    #: Subnets of the function.
    #: Default: - the VPC's private subnets with egress.
    vpc_subnets: ec2.SubnetSelection | None = None
    #: Memory in MiB, 128-10240 (1769 MiB is one vCPU; ffmpeg and libvips use them all).
    #: Default: - 4096.
    memory_size_mib: int = 4096
    #: /tmp size in MiB, 512-10240: the job's scratch (input and outputs).
    #: Default: - 10240.
    ephemeral_storage_mib: int = 10240
    #: Timeout in seconds, 60-900; the worker gets this less 30 s for its own deadline.
    #: Default: - 900.
    timeout_seconds: int = 900
    #: Reserved concurrency (also its maximum): bounds database connections (two per
    #: environment; stacks/quotas.py counts them against the instance's) and the account
    #: concurrency it can take; 1-1000. Raise it with the database instance class.
    #: Default: - 5.
    reserved_concurrency: int = 5
    #: "X86_64" or "ARM64": must be the worker image's (the same image asset).
    #: Default: - "X86_64".
    architecture: str = "X86_64"
    #: Seconds an invocation may wait (throttled) before it expires to the on-failure queue; 60-21600.
    #: Default: - 3600.
    max_event_age_seconds: int = 3600
    #: The image.
    #: Default: - built from runtime/worker/Dockerfile, the worker task's asset.
    code: lambda_.DockerImageCode | None = None
    #: Extra environment (limits, log level).
    #: Default: - none.
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Retention of the function's log group.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the log group.
    #: Default: - RETAIN.
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    def validate(self) -> None:
        if not 128 <= self.memory_size_mib <= 10240:
            raise ValueError(f"memory_size_mib must be between 128 and 10240, got {self.memory_size_mib}")
        if not 512 <= self.ephemeral_storage_mib <= 10240:
            raise ValueError(f"ephemeral_storage_mib must be between 512 and 10240, got {self.ephemeral_storage_mib}")
        if not 60 <= self.timeout_seconds <= 900:
            raise ValueError(f"timeout_seconds must be between 60 and 900, got {self.timeout_seconds}")
        if not 1 <= self.reserved_concurrency <= 1000:
            raise ValueError(f"reserved_concurrency must be between 1 and 1000, got {self.reserved_concurrency}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {self.architecture!r}")
        if not 60 <= self.max_event_age_seconds <= 21600:
            raise ValueError(f"max_event_age_seconds must be between 60 and 21600, got {self.max_event_age_seconds}")

    @property
    def worker_timeout_seconds(self) -> int:
        return self.timeout_seconds - TIMEOUT_RESERVE_SECONDS

    def runtime_environment(self, function_name: str) -> dict[str, str]:
        """What the dispatcher needs to route to this function (runtime.shared.settings.Runners)."""
        return {
            "TRANSCODEX_WORKER_FUNCTION": function_name,
            "TRANSCODEX_WORKER_FUNCTION_MEMORY_MIB": str(self.memory_size_mib),
            "TRANSCODEX_WORKER_FUNCTION_TIMEOUT_SECONDS": str(self.worker_timeout_seconds),
            "TRANSCODEX_WORKER_FUNCTION_STORAGE_MIB": str(self.ephemeral_storage_mib),
        }


def worker_function_code(architecture: str = "X86_64") -> lambda_.DockerImageCode:
    """The worker image (the same asset as the task's: same context, Dockerfile and platform)
    with awslambdaric as its entrypoint."""
    runtime_path("worker", "Dockerfile")
    context = stage_runtime("worker", ["worker"])
    return lambda_.DockerImageCode.from_image_asset(
        str(context),
        file="runtime/worker/Dockerfile",
        platform=ARCHITECTURES[architecture].platform,
        entrypoint=list(LAMBDA_ENTRYPOINT),
        cmd=[LAMBDA_HANDLER],
    )


class WorkerFunction(Construct):
    """A container-image Lambda running one job per asynchronous invocation.

    Attributes: ``function``, ``security_group``, ``log_group``. Its role may read ``input/*``,
    write, list and delete ``output/*``, read the database secret and send failed invocations
    to ``on_failure_queue`` (the invoke configuration: no retries, ``max_event_age_seconds``).
    """

    def __init__(self, scope: Construct, construct_id: str, props: WorkerFunctionProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        self.props = props
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="TranscodeX worker function (no inbound; outbound to S3 and the database)",
            allow_all_outbound=True,
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=props.log_retention, removal_policy=props.log_removal_policy
        )
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=props.code or worker_function_code(props.architecture),
            description="TranscodeX: runs one small job (images, posters, short videos) per invocation",
            architecture=ARCHITECTURES[props.architecture].function,
            memory_size=props.memory_size_mib,
            ephemeral_storage_size=Size.mebibytes(props.ephemeral_storage_mib),
            timeout=Duration.seconds(props.timeout_seconds),
            reserved_concurrent_executions=props.reserved_concurrency,
            vpc=props.vpc,
            vpc_subnets=props.vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={
                **props.environment,
                "TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn,
                "TRANSCODEX_INPUT_BUCKET": props.input_bucket.bucket_name,
                "TRANSCODEX_OUTPUT_BUCKET": props.output_bucket.bucket_name,
                # The worker's deadline, before the function's: it records TIMEOUT itself.
                "TRANSCODEX_WORKER_TIMEOUT_SECONDS": str(props.worker_timeout_seconds),
                # Lambda's only writable path (the image's TMPDIR is the task's /scratch).
                "TMPDIR": "/tmp",
            },
            # Asynchronous invocations: no retry (a second run of a failed job would only fail
            # again and double its cost; the user resubmits), an age after which a throttled
            # invocation expires, and the dead-letter queue for both, so the job is failed.
            retry_attempts=0,
            max_event_age=Duration.seconds(props.max_event_age_seconds),
            on_failure=destinations.SqsDestination(props.on_failure_queue),
        )
        role = self.function.role
        assert role is not None
        grant_worker_data(role, props.input_bucket, props.output_bucket, props.database_secret)
        acknowledge_lambda_managed_policies(self.function)
        acknowledge(
            role,
            "IAM5",
            "X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions.",
            "Resource::*",
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow invoking exactly this function (its unqualified ARN and its versions)."""
        grant = self.function.grant_invoke(grantee)
        principal = grantee.grant_principal
        if isinstance(principal, Construct):
            logical_id = self.function.stack.get_logical_id(self.function.node.default_child)  # type: ignore[arg-type]
            acknowledge(
                principal,
                "IAM5",
                "lambda:InvokeFunction of this one function, unqualified or any of its versions.",
                f"Resource::<{self.function.stack.resolve(logical_id)}.Arn>:*",
            )
        return grant

    def runtime_environment(self) -> dict[str, str]:
        """The dispatcher's TRANSCODEX_WORKER_FUNCTION* variables for this function."""
        return self.props.runtime_environment(self.function.function_name)
