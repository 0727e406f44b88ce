"""Dispatcher fixtures: an ECS cluster and task definition on moto, jobs in the real database,
SQS events built from messages really sent to and received from the moto queue, and the
Lambda handlers configured from the test's settings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from runtime.dispatcher import handler
from runtime.shared import db as dbm
from runtime.shared.aws import client
from runtime.shared.messages import JobMessage
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.settings import Settings
from tests.factories import insert_job


@pytest.fixture()
def ecs_settings(settings: Settings) -> Settings:
    """The test's settings pointing at a real (moto) subnet and security group: moto's RunTask
    checks that the awsvpc subnet exists and creates an ENI in it."""
    ec2 = client("ec2", settings)
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    # moto names the task's ENI from its DNS hostname and fails without one.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(GroupName=f"worker-{uuid.uuid4().hex[:8]}", Description="w", VpcId=vpc_id)[
        "GroupId"
    ]
    return replace(settings, ecs_subnets=(subnet_id,), ecs_security_groups=(group_id,))


@pytest.fixture()
def ecs(ecs_settings: Settings) -> Any:
    """A moto ECS client with the settings' cluster and a worker task definition registered.

    moto's Fargate RunTask needs a container-level memory value (and securityGroups in the
    network configuration, which the settings carry).
    """
    settings = ecs_settings
    ecs_client = client("ecs", settings)
    ecs_client.create_cluster(clusterName=settings.ecs_cluster)
    ecs_client.register_task_definition(
        family=settings.ecs_task_definition,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="1024",
        memory="2048",
        containerDefinitions=[
            {"name": settings.ecs_container_name, "image": "worker:latest", "memory": 2048, "essential": True}
        ],
    )
    return ecs_client


def cluster_tasks(ecs_client: Any, settings: Settings) -> list[dict[str, Any]]:
    """Every task moto started in the settings' cluster, described with tags."""
    arns = ecs_client.list_tasks(cluster=settings.ecs_cluster)["taskArns"]
    if not arns:
        return []
    return ecs_client.describe_tasks(cluster=settings.ecs_cluster, tasks=arns, include=["TAGS"])["tasks"]


@pytest.fixture()
def make_job(db: dbm.Database) -> Callable[..., dict[str, Any]]:
    """Insert a user, an upload and a QUEUED job; return the job row."""

    def make() -> dict[str, Any]:
        with db.connection() as conn:
            return insert_job(conn)

    return make


def get_job(db: dbm.Database, job_id: Any) -> dict[str, Any]:
    with db.connection() as conn:
        job = jobs_repo.get(conn, str(job_id))
    assert job is not None
    return job


def body_for(job: dict[str, Any]) -> str:
    return JobMessage(job_id=str(job["id"])).to_body()


@dataclass
class Queue:
    """A real moto SQS queue, read the way the Lambda event source mapping reads it."""

    sqs: Any
    url: str

    @property
    def arn(self) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def send(self, *bodies: str) -> list[str]:
        return [self.sqs.send_message(QueueUrl=self.url, MessageBody=b)["MessageId"] for b in bodies]

    def receive(self, max_messages: int = 10, expect: int | None = None) -> list[dict[str, Any]]:
        """Receive up to ``max_messages`` (keeps asking until ``expect`` arrived or nothing is left)."""
        messages: list[dict[str, Any]] = []
        while len(messages) < max_messages:
            got = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(10, max_messages - len(messages)),
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            messages.extend(got)
            if not got or (expect is not None and len(messages) >= expect):
                break
        return messages

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The SQS event Lambda would deliver for ``messages``."""
        arn = self.arn
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def settle(self, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """Do what the event source mapping does: delete every record not reported failed,
        and make the failed ones visible again at once (instead of after the visibility timeout)."""
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture()
def queue(settings: Settings) -> Queue:
    return Queue(client("sqs", settings), settings.queue_url)


@pytest.fixture()
def dlq(settings: Settings) -> Queue:
    return Queue(client("sqs", settings), settings.dlq_url)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a deployed dispatcher Lambda would see for ``settings``."""
    return {
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "TRANSCODEX_DATABASE_URL": settings.database_url or "",
        "TRANSCODEX_ECS_CLUSTER": settings.ecs_cluster,
        "TRANSCODEX_ECS_TASK_DEFINITION": settings.ecs_task_definition,
        "TRANSCODEX_ECS_SUBNETS": ",".join(settings.ecs_subnets),
        "TRANSCODEX_ECS_SECURITY_GROUPS": ",".join(settings.ecs_security_groups),
        "TRANSCODEX_ECS_CONTAINER_NAME": settings.ecs_container_name,
    }


@pytest.fixture()
def lambda_env(ecs_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Configure the Lambda handlers from the test's settings; ``override(**env)`` changes variables."""

    def override(**env: str) -> None:
        handler.reset()
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    handler.reset()
    for key, value in settings_env(ecs_settings).items():
        monkeypatch.setenv(key, value)
    try:
        yield override
    finally:
        handler.reset()


def stopped_event(task: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """An EventBridge "ECS Task State Change" event for ``task`` (as moto describes it) having stopped."""
    body = {
        "taskArn": task["taskArn"],
        "clusterArn": task.get("clusterArn"),
        "taskDefinitionArn": task.get("taskDefinitionArn"),
        "group": task.get("group"),
        "startedBy": task.get("startedBy"),
        "launchType": task.get("launchType") or "FARGATE",
        "overrides": task.get("overrides") or {},
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "containers": [
            {"name": c["name"], "taskArn": task["taskArn"], "lastStatus": "STOPPED"} for c in task.get("containers", [])
        ],
        "version": 3,
    }
    body.update(detail)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [task["taskArn"]],
        "detail": json.loads(json.dumps(body, default=str)),
    }
