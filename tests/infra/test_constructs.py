"""The parts used alone, with non-default props: small stacks, no platform."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from constructs_lib import JobQueue, JobQueueProps, Network, NetworkProps, Storage, StorageProps

pytestmark = pytest.mark.xdist_group("infra")


def test_given_s3_managed_encryption_when_synth_then_buckets_use_aes256_and_no_key() -> None:
    stack = Stack(App(), "S")
    storage = Storage(stack, "Storage", StorageProps(encryption=s3.BucketEncryption.S3_MANAGED))
    template = Template.from_stack(stack)
    assert storage.encryption_key is None
    template.resource_count_is("AWS::KMS::Key", 0)
    template.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}})
                ]
            }
        },
    )


def test_given_output_cors_origins_when_synth_then_output_bucket_allows_get_head_from_them_only() -> None:
    stack = Stack(App(), "S")
    Storage(
        stack,
        "Storage",
        StorageProps(
            cors_allowed_origins=("https://upload.example",), output_cors_allowed_origins=("https://player.example",)
        ),
    )
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    rules = {name: b["Properties"]["CorsConfiguration"]["CorsRules"] for name, b in buckets.items() if "Cors" in str(b)}
    ((input_rule,),) = (r for name, r in rules.items() if "InputBucket" in name)
    ((output_rule,),) = (r for name, r in rules.items() if "OutputBucket" in name)
    assert input_rule["AllowedOrigins"] == ["https://upload.example"]
    assert (sorted(output_rule["AllowedMethods"]), output_rule["AllowedOrigins"]) == (
        ["GET", "HEAD"],
        ["https://player.example"],
    )


def test_given_storage_grants_when_synth_then_object_actions_are_prefix_scoped() -> None:
    stack = Stack(App(), "S")
    storage = Storage(stack, "Storage")
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    storage.grant_read_input(role)
    storage.grant_write_output(role)
    statements = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    (policy,) = statements.values()
    actions = {
        a
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    # ListBucket (on input/ only): a read of a missing key must answer 404, not 403.
    assert actions == {
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    }
    (listing,) = (s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["input/*"]}}
    resources = str([s["Resource"] for s in policy["Properties"]["PolicyDocument"]["Statement"]])
    assert "/input/*" in resources and "/output/*" in resources


def _imported_vpc(stack: Stack) -> ec2.IVpc:
    return ec2.Vpc.from_vpc_attributes(
        stack,
        "Existing",
        vpc_id="vpc-12345678",
        availability_zones=["us-east-1a", "us-east-1b"],
        private_subnet_ids=["subnet-1", "subnet-2"],
        private_subnet_route_table_ids=["rtb-1", "rtb-2"],
        isolated_subnet_ids=["subnet-3", "subnet-4"],
        isolated_subnet_route_table_ids=["rtb-3", "rtb-4"],
    )


def test_given_imported_vpc_when_synth_then_no_vpc_and_no_s3_endpoint_are_created() -> None:
    """An imported VPC often has its S3 gateway endpoint already; a second one fails the deploy."""
    stack = Stack(App(), "S")
    vpc = _imported_vpc(stack)
    network = Network(stack, "Network", NetworkProps(vpc=vpc))
    template = Template.from_stack(stack)
    assert network.vpc is vpc and network.flow_log is None and network.s3_endpoint is None
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 0)


def test_given_imported_vpc_and_s3_endpoint_requested_when_synth_then_the_endpoint_is_added() -> None:
    stack = Stack(App(), "S")
    Network(stack, "Network", NetworkProps(vpc=_imported_vpc(stack), s3_gateway_endpoint=True))
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcId": "vpc-12345678", "VpcEndpointType": "Gateway"})


def test_given_new_vpc_with_two_nat_gateways_when_synth_then_three_subnet_tiers_and_flow_log() -> None:
    stack = Stack(App(), "S")
    Network(stack, "Network", NetworkProps(nat_gateways=2))
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::EC2::NatGateway", 2)
    template.resource_count_is("AWS::EC2::Subnet", 6)
    template.resource_count_is("AWS::EC2::FlowLog", 1)


def test_given_receive_count_and_timeout_when_synth_then_redrive_and_visibility_follow() -> None:
    stack = Stack(App(), "S")
    JobQueue(stack, "Queue", JobQueueProps(dispatcher_timeout_seconds=30, dead_letter_max_receive_count=3))
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {"VisibilityTimeout": 180, "RedrivePolicy": Match.object_like({"maxReceiveCount": 3})},
    )
    # The dead-letter handler consumes at once: the DLQ's depth never moves, its receives do.
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Threshold": 1,
            "MetricName": "NumberOfMessagesReceived",
            "Statistic": "Sum",
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
