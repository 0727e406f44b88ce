"""TranscodexPlatform: the whole platform from one props object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib._runtime_interface import AppSpec
from constructs_lib.api import PER_USER_LIMITS, Api, ApiProps
from constructs_lib.database import Database, DatabaseProps
from constructs_lib.dispatcher import Dispatcher, DispatcherProps
from constructs_lib.migrations import Migrations, MigrationsProps
from constructs_lib.network import Network, NetworkProps
from constructs_lib.observability import Observability, ObservabilityProps
from constructs_lib.queue import JobQueue, JobQueueProps
from constructs_lib.storage import Storage, StorageProps
from constructs_lib.worker import Worker, WorkerProps
from constructs_lib.worker_function import WorkerFunction, WorkerFunctionProps

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _LogOptions(TypedDict):
    """The log options every function-owning part takes alike."""

    log_retention: logs.RetentionDays
    log_removal_policy: RemovalPolicy


@dataclass(frozen=True)
class TranscodexPlatformProps:
    """Properties of :class:`TranscodexPlatform`; every field has a working default."""

    # --- network
    #: Deploy into this VPC (needs private-with-egress and isolated subnets).
    #: Default: - a new VPC.
    vpc: ec2.IVpc | None = None
    #: NAT gateways of the new VPC.
    #: Default: - 1.
    nat_gateways: int = 1
    #: Availability zones of the new VPC.
    #: Default: - 2.
    max_azs: int = 2
    # --- storage
    #: Encryption of the media buckets: KMS or S3_MANAGED.
    #: Default: - KMS with a new customer managed key.
    bucket_encryption: s3.BucketEncryption = s3.BucketEncryption.KMS
    #: Days after which uploaded inputs are deleted.
    #: Default: - 7.
    input_expiration_days: int = 7
    #: Days after which outputs are deleted.
    #: Default: - never.
    output_expiration_days: int | None = None
    #: Browser origins allowed to upload and download directly.
    #: Default: - any origin.
    cors_allowed_origins: Sequence[str] = ("*",)
    #: Browser origins allowed to read outputs (HLS players), if different from ``cors_allowed_origins``.
    #: Default: - the same as ``cors_allowed_origins``.
    output_cors_allowed_origins: Sequence[str] | None = None
    # --- database
    #: RDS instance class.
    #: Default: - t4g.small.
    database_instance_type: str = "t4g.small"
    #: Initial database storage, in GiB.
    #: Default: - 20.
    database_allocated_storage_gib: int = 20
    #: Standby replica in a second AZ.
    #: Default: - false.
    database_multi_az: bool = False
    #: Days of automated backups.
    #: Default: - 7.
    database_backup_retention_days: int = 7
    #: Deletion protection of the database instance.
    #: Default: - true.
    database_deletion_protection: bool = True
    # --- queue and dispatcher
    #: Deliveries of a job message before it is dead-lettered (and the job FAILED).
    #: Default: - 5.
    dead_letter_max_receive_count: int = 5
    #: Timeout of the dispatcher functions, in seconds (the queue's visibility is 6x).
    #: Default: - 60.
    dispatcher_timeout_seconds: int = 60
    #: Concurrent dispatcher invocations (bounds RunTask bursts).
    #: Default: - 10.
    dispatcher_max_concurrency: int = 10
    # --- worker
    #: Worker task CPU units.
    #: Default: - 2048.
    worker_cpu: int = 2048
    #: Worker task memory, in MiB.
    #: Default: - 4096.
    worker_memory_limit_mib: int = 4096
    #: Worker scratch storage, in GiB (21-200).
    #: Default: - 50.
    worker_ephemeral_storage_gib: int = 50
    #: Worker architecture: "X86_64" or "ARM64".
    #: Default: - "X86_64".
    worker_cpu_architecture: str = "X86_64"
    #: Capacity provider of worker tasks: "FARGATE" or "FARGATE_SPOT".
    #: Default: - the FARGATE launch type.
    worker_capacity_provider: str | None = None
    #: Worker image.
    #: Default: - built from runtime/worker/Dockerfile at deploy.
    worker_image: ecs.ContainerImage | None = None
    #: Task sizes the dispatcher chooses from by each job's estimated work, in CPU units.
    #: Default: - 1024 to 8192.
    worker_min_task_cpu: int = 1024
    worker_max_task_cpu: int = 8192
    # --- worker function (small jobs)
    #: Run small jobs (images, posters, short videos) on a worker Lambda built from the worker image.
    #: Default: - true.
    worker_function_enabled: bool = True
    #: Worker function memory, in MiB (1769 MiB per vCPU).
    #: Default: - 4096.
    worker_function_memory_mib: int = 4096
    #: Worker function /tmp, in MiB.
    #: Default: - 10240.
    worker_function_ephemeral_storage_mib: int = 10240
    #: Worker function timeout, in seconds (60-900).
    #: Default: - 900.
    worker_function_timeout_seconds: int = 900
    #: Worker function reserved concurrency (two database connections each).
    #: Default: - 5.
    worker_function_reserved_concurrency: int = 5
    #: Worker function image (must match ``worker_image`` when that is given).
    #: Default: - the worker image asset with the Lambda runtime interface client as entrypoint.
    worker_function_code: lambda_.DockerImageCode | None = None
    # --- api
    #: API stage name.
    #: Default: - "v1".
    api_stage_name: str = "v1"
    #: API steady-state rate limit, requests per second.
    #: Default: - 100.
    api_throttling_rate_limit: int = 100
    #: API burst limit, requests.
    #: Default: - 200.
    api_throttling_burst_limit: int = 200
    #: Routes of the API.
    #: Default: - read from the Chalice app.
    api_app_spec: AppSpec | None = None
    #: Origins whose pages may make cookie-authenticated state-changing API requests (CSRF).
    #: Default: - only the API's own origin.
    api_allowed_origins: tuple[str, ...] = ()
    # --- limits (runtime; unset keeps the runtime's default)
    #: Largest accepted upload, in bytes.
    #: Default: - the runtime's (2 GiB).
    max_input_bytes: int | None = None
    #: Largest image, in pixels.
    #: Default: - the runtime's (100 million).
    max_image_pixels: int | None = None
    #: Longest video, in seconds.
    #: Default: - the runtime's (3 hours).
    max_video_duration_seconds: int | None = None
    #: Largest video frame, in pixels.
    #: Default: - the runtime's (4096x2304).
    max_video_pixels: int | None = None
    #: Wall time of one worker run, in seconds.
    #: Default: - the runtime's (3600).
    worker_timeout_seconds: int | None = None
    #: Jobs of one user QUEUED, DISPATCHED or RUNNING at once (each may be a Fargate task).
    #: Default: - the runtime's (10).
    max_active_jobs_per_user: int | None = None
    #: Jobs one user may create in any rolling hour.
    #: Default: - the runtime's (100).
    max_jobs_per_hour_per_user: int | None = None
    #: Uploads of one user pending (presigned, not uploaded) at once.
    #: Default: - the runtime's (20).
    max_pending_uploads_per_user: int | None = None
    #: Input bytes one user may hold (uploads in the input lifecycle plus pending reservations).
    #: Default: - the runtime's (20 GiB).
    max_stored_bytes_per_user: int | None = None
    #: Refuse uploads that do not declare ``size_bytes`` (422 SIZE_REQUIRED) rather than give
    #: them a POST policy form (``content-length-range`` up to the input limit).
    #: Default: - false (the seed's body, which omits the size, gets the bounded form).
    require_upload_size: bool = False
    #: Runtime log level: DEBUG, INFO, WARNING or ERROR.
    #: Default: - "INFO".
    log_level: str = "INFO"
    # --- operations
    #: Removal policy of stateful resources (buckets, keys, database, log groups).
    #: Default: - RETAIN.
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    #: Retention of every log group.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Email address that receives alarms.
    #: Default: - none (subscribe to the alarm topic later).
    alarm_email: str | None = None

    def validate(self) -> None:
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {_LOG_LEVELS}, got {self.log_level!r}")
        for name in (
            "max_input_bytes",
            "max_image_pixels",
            "max_video_duration_seconds",
            "max_video_pixels",
            "worker_timeout_seconds",
            *PER_USER_LIMITS,
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.max_input_bytes is not None and self.max_input_bytes > 5 * 1024**3:
            raise ValueError(f"max_input_bytes must be <= 5 GiB (S3's single-upload limit), got {self.max_input_bytes}")

    def runtime_environment(self) -> dict[str, str]:
        """The TRANSCODEX_* limits and log level every component reads."""
        env = {"TRANSCODEX_LOG_LEVEL": self.log_level.upper()}
        for name in (
            "max_input_bytes",
            "max_image_pixels",
            "max_video_duration_seconds",
            "max_video_pixels",
            "worker_timeout_seconds",
            *PER_USER_LIMITS,
        ):
            value = getattr(self, name)
            if value is not None:
                env[f"TRANSCODEX_{name.upper()}"] = str(value)
        if self.require_upload_size:
            env["TRANSCODEX_REQUIRE_UPLOAD_SIZE"] = "1"
        return env


class TranscodexPlatform(Construct):
    """The TranscodeX media platform: network, storage, database, queue, worker,
    dispatcher, API, migrations and observability, wired together.

    Each part is an attribute (``network``, ``storage``, ``database``,
    ``job_queue``, ``worker``, ``dispatcher``, ``api``, ``migrations``,
    ``observability``); the API URL, bucket names and cluster are stack outputs.
    """

    def __init__(self, scope: Construct, construct_id: str, props: TranscodexPlatformProps | None = None) -> None:
        super().__init__(scope, construct_id)
        props = props or TranscodexPlatformProps()
        props.validate()
        env = props.runtime_environment()
        data_removal = props.removal_policy
        logs_common: _LogOptions = {"log_retention": props.log_retention, "log_removal_policy": data_removal}

        self.network = Network(
            self,
            "Network",
            NetworkProps(
                vpc=props.vpc,
                nat_gateways=props.nat_gateways,
                max_azs=props.max_azs,
                flow_log_retention=props.log_retention,
                removal_policy=data_removal,
            ),
        )
        vpc = self.network.vpc
        compute = self.network.compute_subnets
        self.storage = Storage(
            self,
            "Storage",
            StorageProps(
                encryption=props.bucket_encryption,
                input_expiration_days=props.input_expiration_days,
                output_expiration_days=props.output_expiration_days,
                cors_allowed_origins=tuple(props.cors_allowed_origins),
                output_cors_allowed_origins=(
                    tuple(props.output_cors_allowed_origins) if props.output_cors_allowed_origins else None
                ),
                removal_policy=data_removal,
            ),
        )
        self.database = Database(
            self,
            "Database",
            DatabaseProps(
                vpc=vpc,
                vpc_subnets=self.network.database_subnets,
                rotation_subnets=compute,
                instance_type=props.database_instance_type,
                allocated_storage_gib=props.database_allocated_storage_gib,
                max_allocated_storage_gib=max(100, props.database_allocated_storage_gib),
                multi_az=props.database_multi_az,
                backup_retention_days=props.database_backup_retention_days,
                deletion_protection=props.database_deletion_protection,
                removal_policy=data_removal,
            ),
        )
        secret = self.database.secret
        self.job_queue = JobQueue(
            self,
            "JobQueue",
            JobQueueProps(
                dispatcher_timeout_seconds=props.dispatcher_timeout_seconds,
                dead_letter_max_receive_count=props.dead_letter_max_receive_count,
            ),
        )
        self.worker = Worker(
            self,
            "Worker",
            WorkerProps(
                vpc=vpc,
                input_bucket=self.storage.input_bucket,
                output_bucket=self.storage.output_bucket,
                database_secret=secret,
                cpu=props.worker_cpu,
                memory_limit_mib=props.worker_memory_limit_mib,
                ephemeral_storage_gib=props.worker_ephemeral_storage_gib,
                cpu_architecture=props.worker_cpu_architecture,
                image=props.worker_image,
                environment=env,
                log_retention=props.log_retention,
                log_removal_policy=data_removal,
            ),
        )
        #: The worker Lambda, or None when ``worker_function_enabled`` is false.
        self.worker_function: WorkerFunction | None = None
        if props.worker_function_enabled:
            self.worker_function = WorkerFunction(
                self,
                "WorkerFunction",
                WorkerFunctionProps(
                    vpc=vpc,
                    vpc_subnets=compute,
                    input_bucket=self.storage.input_bucket,
                    output_bucket=self.storage.output_bucket,
                    database_secret=secret,
                    on_failure_queue=self.job_queue.dead_letter_queue,
                    memory_size_mib=props.worker_function_memory_mib,
                    ephemeral_storage_mib=props.worker_function_ephemeral_storage_mib,
                    timeout_seconds=props.worker_function_timeout_seconds,
                    reserved_concurrency=props.worker_function_reserved_concurrency,
                    architecture=props.worker_cpu_architecture,
                    code=props.worker_function_code,
                    environment=env,
                    **logs_common,
                ),
            )
        self.dispatcher = Dispatcher(
            self,
            "Dispatcher",
            DispatcherProps(
                vpc=vpc,
                vpc_subnets=compute,
                queue=self.job_queue.queue,
                dead_letter_queue=self.job_queue.dead_letter_queue,
                worker=self.worker,
                database_secret=secret,
                timeout_seconds=props.dispatcher_timeout_seconds,
                max_concurrency=props.dispatcher_max_concurrency,
                capacity_provider=props.worker_capacity_provider,
                worker_function=self.worker_function,
                min_task_cpu=props.worker_min_task_cpu,
                max_task_cpu=props.worker_max_task_cpu,
                environment=env,
                **logs_common,
            ),
        )
        self.api = Api(
            self,
            "Api",
            ApiProps(
                vpc=vpc,
                vpc_subnets=compute,
                input_bucket=self.storage.input_bucket,
                output_bucket=self.storage.output_bucket,
                queue=self.job_queue.queue,
                database_secret=secret,
                app_spec=props.api_app_spec,
                worker_function=self.worker_function,
                stage_name=props.api_stage_name,
                throttling_rate_limit=props.api_throttling_rate_limit,
                throttling_burst_limit=props.api_throttling_burst_limit,
                allowed_origins=props.api_allowed_origins,
                # The bounds POST /media/process refuses by are the dispatcher's (runtime.shared.estimate).
                environment={
                    **env,
                    "TRANSCODEX_FARGATE_MIN_CPU": str(props.worker_min_task_cpu),
                    "TRANSCODEX_FARGATE_MAX_CPU": str(props.worker_max_task_cpu),
                    "TRANSCODEX_FARGATE_STORAGE_GIB": str(props.worker_ephemeral_storage_gib),
                    "TRANSCODEX_WORKER_ARCHITECTURE": props.worker_cpu_architecture,
                },
                **logs_common,
            ),
        )
        self.migrations = Migrations(
            self,
            "Migrations",
            MigrationsProps(vpc=vpc, vpc_subnets=compute, database_secret=secret, **logs_common),
        )
        for client in (
            self.worker.security_group,
            self.dispatcher.security_group,
            self.api.security_group,
            self.migrations.security_group,
            *([self.worker_function.security_group] if self.worker_function else []),
        ):
            self.database.allow_from(client)
        # The schema exists before anything that uses it goes live, and the first rotation starts
        # only once the migrations have connected with the generated password.
        # (On the instance resource, not its construct: that subtree holds the rotation schedule.)
        self.migrations.resource.node.add_dependency(self.database.instance.node.default_child)
        self.database.rotation_schedule.node.add_dependency(self.migrations.resource)
        if data_removal == RemovalPolicy.RETAIN and props.vpc is None:
            # A retained instance keeps its network interfaces in the database subnets: the VPC
            # and those subnets cannot be deleted under it (README, "Removing the platform").
            self.network.retain_database_subnets()
        for function in (self.api.function, self.dispatcher.queue_function, self.dispatcher.sweep_function):
            function.node.add_dependency(self.migrations.resource)

        self.observability = Observability(
            self,
            "Observability",
            ObservabilityProps(
                queue=self.job_queue.queue,
                dead_letter_queue=self.job_queue.dead_letter_queue,
                rest_api=self.api.rest_api,
                cluster=self.worker.cluster,
                task_definition=self.worker.task_definition,
                functions=(
                    self.api.function,
                    self.dispatcher.queue_function,
                    self.dispatcher.dead_letter_function,
                    self.dispatcher.task_state_function,
                    self.dispatcher.sweep_function,
                    *([self.worker_function.function] if self.worker_function else []),
                ),
                extra_alarms=(self.job_queue.dead_letter_alarm,),
                alarm_email=props.alarm_email,
            ),
        )

        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="Base URL of the TranscodeX API")
        CfnOutput(self, "InputBucketName", value=self.storage.input_bucket.bucket_name)
        CfnOutput(self, "OutputBucketName", value=self.storage.output_bucket.bucket_name)
        CfnOutput(self, "ClusterName", value=self.worker.cluster.cluster_name)
        CfnOutput(
            self,
            "DatabaseSecretArn",
            value=secret.secret_arn,
            description="Secrets Manager secret with the database credentials",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.observability.alarm_topic.topic_arn)
