"""The job queue behind a small adapter: the SQS calls the dispatcher makes, and the one shape
of a received message whichever way it arrived (a Lambda event record or ReceiveMessage).

Clients come from runtime.shared.aws, so the calls are recorded for the IAM check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class QueueMessage:
    """One message taken from a queue."""

    message_id: str
    body: str
    #: ``ApproximateReceiveCount``, when the delivery carried it.
    receive_count: int | None = None
    #: What DeleteMessage needs; a Lambda event source mapping deletes by itself.
    receipt_handle: str | None = None

    @classmethod
    def from_event_record(cls, record: Mapping[str, Any]) -> QueueMessage:
        """A record of the SQS event Lambda's event source mapping delivers."""
        return cls(
            message_id=str(record.get("messageId") or ""),
            body=str(record.get("body") or ""),
            receive_count=_count((record.get("attributes") or {}).get("ApproximateReceiveCount")),
            receipt_handle=record.get("receiptHandle"),
        )

    @classmethod
    def from_received(cls, message: Mapping[str, Any]) -> QueueMessage:
        """An entry of ReceiveMessage's ``Messages``."""
        return cls(
            message_id=str(message["MessageId"]),
            body=str(message.get("Body") or ""),
            receive_count=_count((message.get("Attributes") or {}).get("ApproximateReceiveCount")),
            receipt_handle=message["ReceiptHandle"],
        )


@dataclass(frozen=True)
class SqsQueue:
    """One queue: ``sqs`` is a client from ``runtime.shared.aws.client("sqs", settings)``."""

    sqs: SQSClient
    url: str

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def receive(self, max_messages: int = 10, wait_seconds: int = 0) -> list[QueueMessage]:
        """Up to ``max_messages`` (at most 10, SQS's limit), long-polling ``wait_seconds``."""
        response = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return [QueueMessage.from_received(m) for m in response.get("Messages", [])]

    def delete(self, message: QueueMessage) -> None:
        if message.receipt_handle is None:
            raise ValueError(f"message {message.message_id} has no receipt handle to delete it by")
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)


def _count(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
