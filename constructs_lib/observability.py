"""One dashboard and the alarms an operator of TranscodeX needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from constructs_lib._runtime_interface import runtime_interface


@dataclass(frozen=True)
class ObservabilityProps:
    """Properties of :class:`Observability`."""

    #: The job queue.
    queue: sqs.IQueue
    #: The job queue's dead-letter queue.
    dead_letter_queue: sqs.IQueue
    #: The REST API.
    rest_api: apigateway.RestApi
    #: The worker cluster.
    cluster: ecs.ICluster
    #: The worker task definition (its family scopes the CPU/memory widgets).
    task_definition: ecs.TaskDefinition
    #: Functions whose errors are alarmed on.
    functions: Sequence[lambda_.IFunction] = field(default_factory=tuple)
    #: Extra alarms whose state changes are sent to the alarm topic (e.g. the DLQ alarm): an
    #: ``Alarm`` or ``CompositeAlarm`` (``AlarmBase``), since each is given the topic as its action.
    #: Default: - none.
    extra_alarms: Sequence[cloudwatch.AlarmBase] = field(default_factory=tuple)
    #: Email address subscribed to the alarm topic.
    #: Default: - no subscription.
    alarm_email: str | None = None
    #: Age of the oldest queued message that raises an alarm, in seconds.
    #: Default: - 600.
    queue_age_alarm_seconds: int = 600
    #: API 5xx responses per 5 minutes that raise an alarm.
    #: Default: - 5.
    api_5xx_alarm_threshold: int = 5
    #: Key for the alarm topic; its policy must let cloudwatch.amazonaws.com use it.
    #: Default: - a new key with rotation.
    encryption_key: kms.IKey | None = None

    def validate(self) -> None:
        if self.queue_age_alarm_seconds < 60:
            raise ValueError(f"queue_age_alarm_seconds must be >= 60, got {self.queue_age_alarm_seconds}")
        if self.api_5xx_alarm_threshold < 1:
            raise ValueError(f"api_5xx_alarm_threshold must be >= 1, got {self.api_5xx_alarm_threshold}")
        if self.alarm_email is not None and "@" not in self.alarm_email:
            raise ValueError(f"alarm_email must be an email address, got {self.alarm_email!r}")


class Observability(Construct):
    """A dashboard (jobs by status, queue age, DLQ depth, API latency and 5xx, worker
    CPU/memory) and alarms sent to an encrypted SNS topic.

    Attributes: ``dashboard``, ``alarm_topic``, ``encryption_key`` and ``alarms``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ObservabilityProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        # CloudWatch cannot publish to a topic under the AWS managed SNS key: use a customer key.
        self.encryption_key = props.encryption_key or kms.Key(
            self,
            "AlarmKey",
            description="TranscodeX alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.encryption_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.alarm_topic = sns.Topic(
            self, "AlarmTopic", display_name="TranscodeX alarms", master_key=self.encryption_key, enforce_ssl=True
        )
        if props.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))
        five_minutes = Duration.minutes(5)
        queue_age = props.queue.metric_approximate_age_of_oldest_message(
            period=Duration.minutes(1), statistic="Maximum"
        )
        dlq_depth = props.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        )
        api_5xx = props.rest_api.metric_server_error(period=five_minutes, statistic="Sum")
        api_latency = props.rest_api.metric_latency(period=five_minutes, statistic="p90")
        insights = {"ClusterName": props.cluster.cluster_name, "TaskDefinitionFamily": props.task_definition.family}
        worker_cpu = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="CpuUtilized",
            dimensions_map=insights,
            period=five_minutes,
            statistic="Maximum",
        )
        worker_memory = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="MemoryUtilized",
            dimensions_map=insights,
            period=five_minutes,
            statistic="Maximum",
        )
        # The runtime's job metrics (embedded metric format, dimension ``Status``), one per status.
        job_metrics = runtime_interface().job_metrics
        jobs = [
            cloudwatch.Metric(
                namespace=job_metrics.namespace,
                metric_name="Jobs",
                dimensions_map={"Status": status},
                period=five_minutes,
                statistic="Sum",
                label=status,
            )
            for status in job_metrics.statuses
        ]
        self.alarms: list[cloudwatch.AlarmBase] = [
            cloudwatch.Alarm(
                self,
                "QueueAgeAlarm",
                alarm_description="TranscodeX jobs wait in the queue: the dispatcher is failing or throttled.",
                metric=queue_age,
                threshold=props.queue_age_alarm_seconds,
                evaluation_periods=5,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "Api5xxAlarm",
                alarm_description="The TranscodeX API returns server errors.",
                metric=api_5xx,
                threshold=props.api_5xx_alarm_threshold,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for index, function in enumerate(props.functions):
            self.alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"FunctionErrors{index}",
                    alarm_description=f"A TranscodeX function raises errors ({function.node.path}).",
                    metric=function.metric_errors(period=five_minutes, statistic="Sum"),
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        action = cw_actions.SnsAction(self.alarm_topic)
        for alarm in [*self.alarms, *props.extra_alarms]:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Jobs by status (per 5 min)", left=jobs, width=12, stacked=True),
            cloudwatch.GraphWidget(title="Queue: age of oldest job (s)", left=[queue_age], width=6),
            cloudwatch.GraphWidget(title="Dead-letter queue depth", left=[dlq_depth], width=6),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="API latency p90 (ms)", left=[api_latency], width=6),
            cloudwatch.GraphWidget(title="API 5xx (per 5 min)", left=[api_5xx], width=6),
            cloudwatch.GraphWidget(title="Worker CPU (units)", left=[worker_cpu], width=6),
            cloudwatch.GraphWidget(title="Worker memory (MiB)", left=[worker_memory], width=6),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=[*self.alarms, *props.extra_alarms], width=24)
        )
