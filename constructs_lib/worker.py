"""The worker: a Fargate task definition that runs one job per task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from constructs_lib._assets import runtime_path, stage_runtime
from constructs_lib._grants import grant_worker_data
from constructs_lib._nag import acknowledge
from runtime.shared.estimate import FARGATE_SIZES  # stdlib only, like keys and settings

#: Name of the worker container; the dispatcher overrides its environment with JOB_ID.
CONTAINER_NAME = "worker"
#: The only writable path of the worker container (its root filesystem is read-only): a bind
#: mount on the task's ephemeral storage, TMPDIR of the worker (runtime/worker/Dockerfile
#: declares the same path as a VOLUME owned by its user, which Fargate keeps for the mount).
SCRATCH_PATH = "/scratch"
SCRATCH_VOLUME = "scratch"
#: The unprivileged user of runtime/worker/Dockerfile, stated again so the task never runs as root.
WORKER_USER = "10001"


class Architecture(NamedTuple):
    """One CPU architecture as each service names it: the task, the image asset, the function."""

    ecs: ecs.CpuArchitecture
    platform: ecr_assets.Platform
    function: lambda_.Architecture


#: The architectures the worker runs on (the task and the worker function build the same asset).
ARCHITECTURES = {
    "X86_64": Architecture(ecs.CpuArchitecture.X86_64, ecr_assets.Platform.LINUX_AMD64, lambda_.Architecture.X86_64),
    "ARM64": Architecture(ecs.CpuArchitecture.ARM64, ecr_assets.Platform.LINUX_ARM64, lambda_.Architecture.ARM_64),
}


@dataclass(frozen=True)
class WorkerProps:
    """Properties of :class:`Worker`."""

    #: The VPC the tasks run in.
    vpc: ec2.IVpc
    #: Bucket the worker reads inputs from (``input/`` prefix only).
    input_bucket: s3.IBucket
    #: Bucket the worker writes outputs to (``output/`` prefix only).
    output_bucket: s3.IBucket
    #: Database credentials the worker reads.
    database_secret: secretsmanager.ISecret
    #: Task CPU units (256, 512, 1024, 2048, 4096, 8192 or 16384).
    #: Default: - 2048 (2 vCPU: ffmpeg's ladder encode is CPU bound).
    cpu: int = 2048
    #: Task memory, in MiB, within what Fargate allows for ``cpu``.
    #: Default: - 4096.
    memory_limit_mib: int = 4096
    #: Task ephemeral storage (scratch for input and outputs), in GiB, 21-200.
    #: Default: - 50.
    ephemeral_storage_gib: int = 50
    #: CPU architecture of the task and of the image built for it: "X86_64" or "ARM64".
    #: Default: - "X86_64".
    cpu_architecture: str = "X86_64"
    #: Container image.
    #: Default: - built from runtime/worker/Dockerfile (context: the runtime package's parent).
    image: ecs.ContainerImage | None = None
    #: Extra environment of the container (limits, log level).
    #: Default: - none.
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Retention of the worker log group.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the log group.
    #: Default: - RETAIN.
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    #: CloudWatch Container Insights on the cluster (the dashboard's CPU/memory widgets use it).
    #: Default: - true.
    container_insights: bool = True

    def validate(self) -> None:
        if self.cpu not in FARGATE_SIZES:
            raise ValueError(f"cpu must be one of {sorted(FARGATE_SIZES)}, got {self.cpu}")
        low, high, step = FARGATE_SIZES[self.cpu]
        if not (low <= self.memory_limit_mib <= high and self.memory_limit_mib % step == 0):
            raise ValueError(
                f"memory_limit_mib for cpu={self.cpu} must be {low}-{high} in steps of {step}, "
                f"got {self.memory_limit_mib}"
            )
        if not 21 <= self.ephemeral_storage_gib <= 200:
            raise ValueError(f"ephemeral_storage_gib must be between 21 and 200, got {self.ephemeral_storage_gib}")
        if self.cpu_architecture not in ARCHITECTURES:
            raise ValueError(f"cpu_architecture must be one of {sorted(ARCHITECTURES)}, got {self.cpu_architecture!r}")


def worker_image(cpu_architecture: str = "X86_64") -> ecs.ContainerImage:
    """The worker image built from runtime/worker/Dockerfile, from a context of only
    ``runtime/__init__.py``, ``runtime/shared`` and ``runtime/worker``."""
    runtime_path("worker", "Dockerfile")
    context = stage_runtime("worker", ["worker"])
    return ecs.ContainerImage.from_asset(
        str(context), file="runtime/worker/Dockerfile", platform=ARCHITECTURES[cpu_architecture].platform
    )


class Worker(Construct):
    """ECS cluster and Fargate task definition for the worker.

    Attributes: ``cluster``, ``task_definition``, ``container``, ``log_group``,
    ``task_role``, ``security_group`` (give it to RunTask) and ``input_bucket``. The task role may
    read ``input/*``, write ``output/*`` and read the database secret, nothing else.
    """

    def __init__(self, scope: Construct, construct_id: str, props: WorkerProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        self.input_bucket = props.input_bucket
        self.output_bucket = props.output_bucket
        #: What the dispatcher sizes and costs tasks by.
        self.cpu_architecture = props.cpu_architecture
        self.ephemeral_storage_gib = props.ephemeral_storage_gib
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=props.vpc,
            container_insights_v2=(
                ecs.ContainerInsights.ENABLED if props.container_insights else ecs.ContainerInsights.DISABLED
            ),
            enable_fargate_capacity_providers=True,
        )
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=props.log_retention, removal_policy=props.log_removal_policy
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=props.cpu,
            memory_limit_mib=props.memory_limit_mib,
            ephemeral_storage_gib=props.ephemeral_storage_gib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ARCHITECTURES[props.cpu_architecture].ecs,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_role: iam.IRole = self.task_definition.task_role
        # Untrusted media are parsed in here: no capabilities, not root, nothing writable but scratch.
        linux_parameters = ecs.LinuxParameters(self, "LinuxParameters")
        linux_parameters.drop_capabilities(ecs.Capability.ALL)
        self.task_definition.add_volume(name=SCRATCH_VOLUME)
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            container_name=CONTAINER_NAME,
            image=props.image or worker_image(props.cpu_architecture),
            essential=True,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.log_group),
            readonly_root_filesystem=True,
            user=WORKER_USER,
            linux_parameters=linux_parameters,
            environment={
                "TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn,
                "TRANSCODEX_INPUT_BUCKET": props.input_bucket.bucket_name,
                "TRANSCODEX_OUTPUT_BUCKET": props.output_bucket.bucket_name,
                "TMPDIR": SCRATCH_PATH,
                **props.environment,
            },
        )
        self.container.add_mount_points(
            ecs.MountPoint(container_path=SCRATCH_PATH, source_volume=SCRATCH_VOLUME, read_only=False)
        )
        acknowledge(
            self.task_definition,
            "ECS2",
            "The environment holds only names, ARNs and limits; the worker fetches the database "
            "credentials from Secrets Manager at start with its task role.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="TranscodeX worker tasks (no inbound; outbound to S3, ECR, the database)",
            allow_all_outbound=True,
        )
        grant_worker_data(self.task_role, props.input_bucket, props.output_bucket, props.database_secret)
        acknowledge(
            self.task_definition.obtain_execution_role(),
            "IAM5",
            "ecr:GetAuthorizationToken has no resource-level permissions; ECS calls it to pull the image.",
            "Resource::*",
        )

    def grant_run(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow RunTask of exactly this task definition in this cluster, and PassRole of exactly its roles."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecs:RunTask"],
            resource_arns=[self.task_definition.task_definition_arn],
            conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.task_role.role_arn, self.task_definition.obtain_execution_role().role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        )
        # RunTask with tags needs TagResource on the new task; StopTask ends a worker whose
        # job was cancelled while it started. Task ids are random, so: tasks of this cluster.
        # Pseudo parameters, not the stack's env: the ARN (and its nag finding id) stays the
        # same whether or not the app pins an account and region.
        tasks_arn = f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:task/{self.cluster.cluster_name}/*"
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecs:TagResource"],
            resource_arns=[tasks_arn],
            conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecs:StopTask"],
            resource_arns=[tasks_arn],
            conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
        )
        principal = grantee.grant_principal
        if isinstance(principal, Construct):
            acknowledge(
                principal,
                "IAM5",
                "Task ids are random: TagResource (only as part of RunTask) and StopTask are limited to the "
                "tasks of this one cluster.",
                f"Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<{self._cluster_logical_id()}>/*",
            )
        return grant

    def _cluster_logical_id(self) -> str:
        resolved = Stack.of(self).resolve(self.cluster.cluster_name)
        return str(resolved.get("Ref", resolved)) if isinstance(resolved, dict) else str(resolved)
