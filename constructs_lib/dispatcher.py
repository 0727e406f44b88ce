"""The dispatcher: SQS-triggered Lambdas that start one Fargate task per job and settle failures,
and a scheduled sweeper that settles what no event will (stale jobs and uploads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib._grants import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    acknowledge_prefix_grants,
    grant_list_prefix,
    grant_object_delete,
    grant_object_read,
)
from constructs_lib._lambda import runtime_function
from constructs_lib._runtime_interface import runtime_interface
from constructs_lib.queue import VISIBILITY_TIMEOUT_FACTOR
from constructs_lib.worker import Worker
from constructs_lib.worker_function import WorkerFunction

_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
_FARGATE_CPUS = (256, 512, 1024, 2048, 4096, 8192, 16384)
#: The default claim timeout, in dispatcher timeouts.
CLAIM_TIMEOUT_FACTOR = 2


@dataclass(frozen=True)
class DispatcherProps:
    """Properties of :class:`Dispatcher`."""

    #: The VPC of the functions (they reach the database and the ECS API).
    vpc: ec2.IVpc
    #: The job queue (needs a visibility timeout of at least 6x ``timeout_seconds``).
    queue: sqs.IQueue
    #: The job queue's dead-letter queue; its messages mark their jobs FAILED.
    dead_letter_queue: sqs.IQueue
    #: The worker whose task definition the dispatcher runs.
    worker: Worker
    #: Database credentials.
    database_secret: secretsmanager.ISecret
    #: Subnets of the functions and of the worker tasks they start.
    #: Default: - the VPC's private subnets with egress.
    vpc_subnets: ec2.SubnetSelection | None = None
    #: Timeout of each function, in seconds.
    #: Default: - 60.
    timeout_seconds: int = 60
    #: Age after which another delivery may take over a job claimed but not started
    #: (``TRANSCODEX_DISPATCH_CLAIM_TIMEOUT_SECONDS``); above ``timeout_seconds`` (a live
    #: invocation keeps its claim) and below the queue's visibility timeout (6x the timeout),
    #: so a redelivery after a crashed invocation can reclaim the job before it dead-letters.
    #: Default: - 2x ``timeout_seconds``.
    claim_timeout_seconds: int | None = None
    #: Memory of each function, in MiB.
    #: Default: - 512.
    memory_size_mib: int = 512
    #: Messages per invocation of the queue consumer.
    #: Default: - 10.
    batch_size: int = 10
    #: Upper bound of concurrent queue consumers (limits RunTask bursts); 2-1000.
    #: Default: - 10.
    max_concurrency: int = 10
    #: Upper bound of concurrent dead-letter handlers (each holds database connections); 2-1000.
    #: Default: - 2.
    dead_letter_max_concurrency: int = 2
    #: Reserved (and maximum) concurrency of the task-state handler, which EventBridge would
    #: otherwise scale without bound (each holds database connections); 1-1000.
    #: Default: - 5.
    task_state_reserved_concurrency: int = 5
    #: Capacity provider of worker tasks: "FARGATE" or "FARGATE_SPOT".
    #: Default: - the FARGATE launch type.
    capacity_provider: str | None = None
    #: The worker Lambda small jobs are routed to (runtime.shared.estimate decides which).
    #: Default: - none: every job runs as a Fargate task.
    worker_function: WorkerFunction | None = None
    #: Task sizes the dispatcher may give a job, in Fargate CPU units (memory: 2 GiB per vCPU).
    #: Default: - 1024 to 8192.
    min_task_cpu: int = 1024
    max_task_cpu: int = 8192
    #: Bucket of uploads; the sweeper HEADs ``input/`` objects of stale PENDING uploads, deletes
    #: oversized ones and a deleted account's.
    #: Default: - the worker's input bucket.
    input_bucket: s3.IBucket | None = None
    #: Bucket of outputs; the sweeper deletes a deleted account's ``output/{user}/`` objects.
    #: Default: - the worker's output bucket.
    output_bucket: s3.IBucket | None = None
    #: Minutes between two runs of the sweeper (re-sends stale QUEUED jobs, fails lost workers'
    #: jobs with TIMEOUT, settles stale PENDING uploads); 1-60.
    #: Default: - 5.
    sweep_interval_minutes: int = 5
    #: Extra environment of the functions (limits, log level, TRANSCODEX_SWEEP_* thresholds).
    #: Default: - none.
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Retention of the function log groups.
    #: Default: - one month.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the function log groups.
    #: Default: - RETAIN.
    log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    @property
    def effective_claim_timeout_seconds(self) -> int:
        return self.claim_timeout_seconds or CLAIM_TIMEOUT_FACTOR * self.timeout_seconds

    def validate(self) -> None:
        if not 1 <= self.timeout_seconds <= 900:
            raise ValueError(f"timeout_seconds must be between 1 and 900, got {self.timeout_seconds}")
        claim = self.effective_claim_timeout_seconds
        if not self.timeout_seconds < claim < VISIBILITY_TIMEOUT_FACTOR * self.timeout_seconds:
            raise ValueError(
                f"claim_timeout_seconds must be above timeout_seconds ({self.timeout_seconds}) and below the "
                f"queue's visibility timeout ({VISIBILITY_TIMEOUT_FACTOR}x), got {claim}"
            )
        if not 128 <= self.memory_size_mib <= 10240:
            raise ValueError(f"memory_size_mib must be between 128 and 10240, got {self.memory_size_mib}")
        if not 1 <= self.batch_size <= 10:
            raise ValueError(f"batch_size must be between 1 and 10 (no batching window), got {self.batch_size}")
        if not 2 <= self.max_concurrency <= 1000:
            raise ValueError(f"max_concurrency must be between 2 and 1000, got {self.max_concurrency}")
        if not 2 <= self.dead_letter_max_concurrency <= 1000:
            raise ValueError(
                f"dead_letter_max_concurrency must be between 2 and 1000, got {self.dead_letter_max_concurrency}"
            )
        if not 1 <= self.task_state_reserved_concurrency <= 1000:
            raise ValueError(
                "task_state_reserved_concurrency must be between 1 and 1000, "
                f"got {self.task_state_reserved_concurrency}"
            )
        if not 1 <= self.sweep_interval_minutes <= 60:
            raise ValueError(f"sweep_interval_minutes must be between 1 and 60, got {self.sweep_interval_minutes}")
        if self.min_task_cpu not in _FARGATE_CPUS or self.max_task_cpu not in _FARGATE_CPUS:
            raise ValueError(f"min_task_cpu and max_task_cpu must be among {_FARGATE_CPUS}")
        if self.min_task_cpu > self.max_task_cpu:
            raise ValueError(f"min_task_cpu ({self.min_task_cpu}) must not exceed max_task_cpu ({self.max_task_cpu})")
        if self.capacity_provider is not None and self.capacity_provider not in _CAPACITY_PROVIDERS:
            raise ValueError(
                f"capacity_provider must be one of {_CAPACITY_PROVIDERS} or None, got {self.capacity_provider!r}"
            )


class Dispatcher(Construct):
    """Four functions over one bundle of runtime/dispatcher:

    ``queue_function`` consumes the job queue (partial batch failures) and runs the
    worker task; ``dead_letter_function`` marks dead-lettered jobs FAILED;
    ``task_state_function`` marks a job FAILED when its task stops early (the
    ``task_stopped_rule`` matches STOPPED tasks of the worker cluster);
    ``sweep_function`` runs on ``sweep_rule``'s schedule and settles stuck jobs and
    stale uploads (it may send to the job queue and HEAD ``input/`` objects only).
    ``security_group`` is shared by the four functions.
    """

    def __init__(self, scope: Construct, construct_id: str, props: DispatcherProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        worker = props.worker
        subnets = props.vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        task_subnet_ids = props.vpc.select_subnets(
            subnet_type=subnets.subnet_type,
            subnet_group_name=subnets.subnet_group_name,
            subnets=subnets.subnets,
            availability_zones=subnets.availability_zones,
            one_per_az=subnets.one_per_az,
        ).subnet_ids
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="TranscodeX dispatcher functions (no inbound)",
            allow_all_outbound=True,
        )
        environment = {
            "TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn,
            "TRANSCODEX_QUEUE_URL": props.queue.queue_url,
            "TRANSCODEX_ECS_CLUSTER": worker.cluster.cluster_arn,
            "TRANSCODEX_ECS_TASK_DEFINITION": worker.task_definition.task_definition_arn,
            "TRANSCODEX_ECS_CONTAINER_NAME": worker.container.container_name,
            "TRANSCODEX_ECS_SUBNETS": ",".join(task_subnet_ids),
            "TRANSCODEX_ECS_SECURITY_GROUPS": worker.security_group.security_group_id,
            runtime_interface().claim_timeout_env: str(props.effective_claim_timeout_seconds),
            **({"TRANSCODEX_ECS_CAPACITY_PROVIDER": props.capacity_provider} if props.capacity_provider else {}),
            "TRANSCODEX_FARGATE_MIN_CPU": str(props.min_task_cpu),
            "TRANSCODEX_FARGATE_MAX_CPU": str(props.max_task_cpu),
            "TRANSCODEX_FARGATE_STORAGE_GIB": str(worker.ephemeral_storage_gib),
            "TRANSCODEX_WORKER_ARCHITECTURE": worker.cpu_architecture,
            **(props.worker_function.runtime_environment() if props.worker_function else {}),
            **props.environment,
        }

        def dispatcher_function(
            construct_id: str, handler: str, description: str, env: Mapping[str, str] | None = None
        ) -> lambda_.Function:
            return runtime_function(
                self,
                construct_id,
                component="dispatcher",
                index="runtime/dispatcher/handler.py",
                handler=handler,
                description=description,
                vpc=props.vpc,
                vpc_subnets=subnets,
                security_groups=[self.security_group],
                environment=environment if env is None else env,
                timeout=Duration.seconds(props.timeout_seconds),
                memory_size_mib=props.memory_size_mib,
                log_retention=props.log_retention,
                log_removal_policy=props.log_removal_policy,
            )

        self.queue_function: lambda_.Function = dispatcher_function(
            "QueueFunction",
            "handle_sqs",
            "TranscodeX: claims queued jobs and starts their worker tasks",
        )
        self.dead_letter_function: lambda_.Function = dispatcher_function(
            "DeadLetterFunction",
            "handle_dlq",
            "TranscodeX: marks jobs whose messages were dead-lettered as FAILED",
        )
        self.task_state_function: lambda_.Function = dispatcher_function(
            "TaskStateFunction",
            "handle_task_state_change",
            "TranscodeX: marks jobs FAILED when their worker task stopped early",
        )
        self.queue_function.add_event_source(
            sources.SqsEventSource(
                props.queue,
                batch_size=props.batch_size,
                report_batch_item_failures=True,
                max_concurrency=props.max_concurrency,
            )
        )
        self.dead_letter_function.add_event_source(
            sources.SqsEventSource(
                props.dead_letter_queue,
                batch_size=props.batch_size,
                report_batch_item_failures=True,
                max_concurrency=props.dead_letter_max_concurrency,
            )
        )
        task_state_cfn = self.task_state_function.node.default_child
        assert isinstance(task_state_cfn, lambda_.CfnFunction)
        task_state_cfn.reserved_concurrent_executions = props.task_state_reserved_concurrency
        self.task_stopped_rule = events.Rule(
            self,
            "TaskStoppedRule",
            description="TranscodeX worker tasks that stopped",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={"clusterArn": [worker.cluster.cluster_arn], "lastStatus": ["STOPPED"]},
            ),
            targets=[targets.LambdaFunction(self.task_state_function, retry_attempts=4)],
        )
        input_bucket = props.input_bucket or worker.input_bucket
        output_bucket = props.output_bucket or worker.output_bucket
        self.sweep_function: lambda_.Function = dispatcher_function(
            "SweepFunction",
            "handle_sweep",
            "TranscodeX: re-queues stale jobs, fails jobs of lost workers, settles stale uploads",
            # Database, queue and buckets only: the sweeper never starts or stops tasks.
            env={
                "TRANSCODEX_DATABASE_SECRET_ARN": props.database_secret.secret_arn,
                "TRANSCODEX_QUEUE_URL": props.queue.queue_url,
                "TRANSCODEX_INPUT_BUCKET": input_bucket.bucket_name,
                "TRANSCODEX_OUTPUT_BUCKET": output_bucket.bucket_name,
                **props.environment,
            },
        )
        self.sweep_rule = events.Rule(
            self,
            "SweepSchedule",
            description="TranscodeX sweeper: settles stuck jobs and stale uploads",
            schedule=events.Schedule.rate(Duration.minutes(props.sweep_interval_minutes)),
            # No retries: the next scheduled run sweeps again.
            targets=[targets.LambdaFunction(self.sweep_function, retry_attempts=0)],
        )
        props.queue.grant_send_messages(self.sweep_function)
        grant_object_read(input_bucket, self.sweep_function, INPUT_PREFIX)
        # Oversized stale uploads, and a deleted account's media in both buckets.
        grant_object_delete(input_bucket, self.sweep_function, INPUT_PREFIX)
        grant_list_prefix(output_bucket, self.sweep_function, OUTPUT_PREFIX)
        grant_object_delete(output_bucket, self.sweep_function, OUTPUT_PREFIX)
        assert self.sweep_function.role is not None
        acknowledge_prefix_grants(self.sweep_function.role, input_bucket, output_bucket)
        worker.grant_run(self.queue_function)
        if props.worker_function is not None:
            props.worker_function.grant_invoke(self.queue_function)
        for function in (
            self.queue_function,
            self.dead_letter_function,
            self.task_state_function,
            self.sweep_function,
        ):
            props.database_secret.grant_read(function)

    @property
    def connections(self) -> ec2.Connections:
        return self.security_group.connections
