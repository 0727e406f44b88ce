"""The job queue: carries job ids from the API to the dispatcher, with a dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

#: SQS needs the visibility timeout to cover every retry of a Lambda batch.
VISIBILITY_TIMEOUT_FACTOR = 6


class _QueueSecurity(TypedDict):
    """What the queue and its dead-letter queue share."""

    encryption: sqs.QueueEncryption
    encryption_master_key: kms.IKey | None
    enforce_ssl: bool
    removal_policy: RemovalPolicy


@dataclass(frozen=True)
class JobQueueProps:
    """Properties of :class:`JobQueue`."""

    #: Timeout of the consuming Lambda, in seconds; the visibility timeout is derived from it.
    #: Default: - 60.
    dispatcher_timeout_seconds: int = 60
    #: Visibility timeout, in seconds; must be at least 6x ``dispatcher_timeout_seconds``.
    #: Default: - 6 x ``dispatcher_timeout_seconds``.
    visibility_timeout_seconds: int | None = None
    #: Deliveries before a message moves to the dead-letter queue.
    #: Default: - 5.
    dead_letter_max_receive_count: int = 5
    #: How long a message stays in the queue, in days.
    #: Default: - 4.
    retention_period_days: int = 4
    #: How long a message stays in the dead-letter queue, in days (its maximum).
    #: Default: - 14.
    dead_letter_retention_period_days: int = 14
    #: Encrypt with this KMS key.
    #: Default: - SQS-managed server-side encryption.
    encryption_key: kms.IKey | None = None
    #: Dead-lettered messages received (by the dead-letter handler) per 5 minutes at which the
    #: alarm fires.
    #: Default: - 1 (any dead letter means a job failed for an infrastructure reason).
    dead_letter_alarm_threshold: int = 1
    #: Removal policy of both queues.
    #: Default: - DESTROY (messages are transient; the database is the source of truth).
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY

    @property
    def effective_visibility_timeout_seconds(self) -> int:
        return self.visibility_timeout_seconds or VISIBILITY_TIMEOUT_FACTOR * self.dispatcher_timeout_seconds

    def validate(self) -> None:
        if not 1 <= self.dispatcher_timeout_seconds <= 900:
            raise ValueError(
                f"dispatcher_timeout_seconds must be between 1 and 900, got {self.dispatcher_timeout_seconds}"
            )
        minimum = VISIBILITY_TIMEOUT_FACTOR * self.dispatcher_timeout_seconds
        visibility = self.effective_visibility_timeout_seconds
        if not minimum <= visibility <= 43200:
            raise ValueError(
                f"visibility_timeout_seconds must be between {minimum} (6x dispatcher_timeout_seconds) "
                f"and 43200, got {visibility}"
            )
        if not 1 <= self.dead_letter_max_receive_count <= 1000:
            raise ValueError(
                f"dead_letter_max_receive_count must be between 1 and 1000, got {self.dead_letter_max_receive_count}"
            )
        for name in ("retention_period_days", "dead_letter_retention_period_days"):
            if not 1 <= getattr(self, name) <= 14:
                raise ValueError(f"{name} must be between 1 and 14, got {getattr(self, name)}")
        if self.dead_letter_alarm_threshold < 1:
            raise ValueError(f"dead_letter_alarm_threshold must be >= 1, got {self.dead_letter_alarm_threshold}")


class JobQueue(Construct):
    """An encrypted, TLS-only SQS queue with a dead-letter queue and an alarm on dead letters.

    The alarm counts messages *received* from the dead-letter queue: the dead-letter handler
    consumes them at once, so the DLQ's depth stays near 0, and SQS does not count messages
    moved there by the redrive policy in ``NumberOfMessagesSent``.

    Attributes: ``queue``, ``dead_letter_queue`` and ``dead_letter_alarm``.
    """

    def __init__(self, scope: Construct, construct_id: str, props: JobQueueProps | None = None) -> None:
        super().__init__(scope, construct_id)
        props = props or JobQueueProps()
        props.validate()
        encryption: _QueueSecurity = {
            "encryption": sqs.QueueEncryption.KMS if props.encryption_key else sqs.QueueEncryption.SQS_MANAGED,
            "encryption_master_key": props.encryption_key,
            "enforce_ssl": True,
            "removal_policy": props.removal_policy,
        }
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=Duration.days(props.dead_letter_retention_period_days),
            # The dead-letter handler consumes it too, with the dispatcher's timeout.
            visibility_timeout=Duration.seconds(props.effective_visibility_timeout_seconds),
            **encryption,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=Duration.seconds(props.effective_visibility_timeout_seconds),
            retention_period=Duration.days(props.retention_period_days),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=props.dead_letter_max_receive_count
            ),
            **encryption,
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description="TranscodeX jobs reached the dead-letter queue: they could not be dispatched.",
            metric=self.dead_letter_queue.metric_number_of_messages_received(
                period=Duration.minutes(5), statistic="Sum"
            ),
            threshold=props.dead_letter_alarm_threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def grant_send(self, grantee: iam.IGrantable) -> iam.Grant:
        """Send job messages."""
        return self.queue.grant_send_messages(grantee)
