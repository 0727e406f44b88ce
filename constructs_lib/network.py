"""The platform's network: a new three-tier VPC, or one the caller already has."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct


@dataclass(frozen=True)
class NetworkProps:
    """Properties of :class:`Network`."""

    #: Use this VPC instead of creating one. It needs subnets of
    #: ``compute_subnet_type`` (with a route to the internet, for ECR and AWS APIs)
    #: and ``database_subnet_type``.
    #: Default: - a new VPC with public, private-with-egress and isolated subnets.
    vpc: ec2.IVpc | None = None
    #: CIDR block of the new VPC. Ignored with ``vpc``.
    #: Default: - 10.0.0.0/16.
    cidr: str = "10.0.0.0/16"
    #: Availability zones of the new VPC (RDS needs two for its subnet group).
    #: Default: - 2.
    max_azs: int = 2
    #: NAT gateways of the new VPC; one per AZ survives an AZ outage, one is cheaper.
    #: Default: - 1.
    nat_gateways: int = 1
    #: Retention of the VPC flow log of the new VPC.
    #: Default: - one month.
    flow_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    #: Removal policy of the flow log group.
    #: Default: - RETAIN.
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    #: Add an S3 gateway endpoint (free; keeps media traffic off the NAT gateway). An imported
    #: VPC often has one already, and a second for the same route tables fails the deploy.
    #: Default: - true for the new VPC, false for an imported ``vpc``.
    s3_gateway_endpoint: bool | None = None
    #: Subnets for Lambda functions and Fargate tasks.
    #: Default: - PRIVATE_WITH_EGRESS.
    compute_subnet_type: ec2.SubnetType = ec2.SubnetType.PRIVATE_WITH_EGRESS
    #: Subnets for the database.
    #: Default: - PRIVATE_ISOLATED.
    database_subnet_type: ec2.SubnetType = ec2.SubnetType.PRIVATE_ISOLATED

    def validate(self) -> None:
        if self.vpc is None:
            if not 2 <= self.max_azs <= 6:
                raise ValueError(f"max_azs must be between 2 and 6 (RDS needs two AZs), got {self.max_azs}")
            if not 1 <= self.nat_gateways <= self.max_azs:
                raise ValueError(
                    f"nat_gateways must be between 1 and max_azs ({self.max_azs}): private subnets need "
                    f"egress to pull images and reach AWS APIs; got {self.nat_gateways}"
                )


class Network(Construct):
    """A VPC with compute and database subnet selections and an S3 gateway endpoint.

    Attributes: ``vpc``, ``compute_subnets``, ``database_subnets``, ``flow_log``
    (None for an imported VPC) and ``s3_endpoint`` (None when disabled).
    """

    def __init__(self, scope: Construct, construct_id: str, props: NetworkProps | None = None) -> None:
        super().__init__(scope, construct_id)
        props = props or NetworkProps()
        props.validate()
        self.flow_log: ec2.FlowLog | None = None
        if props.vpc is not None:
            self.vpc: ec2.IVpc = props.vpc
        else:
            vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(props.cidr),
                max_azs=props.max_azs,
                nat_gateways=props.nat_gateways,
                subnet_configuration=[
                    ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                    ec2.SubnetConfiguration(
                        name="compute", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                    ),
                    ec2.SubnetConfiguration(name="database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
                ],
            )
            flow_log_group = logs.LogGroup(
                self, "FlowLogGroup", retention=props.flow_log_retention, removal_policy=props.removal_policy
            )
            self.flow_log = vpc.add_flow_log(
                "FlowLog",
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            )
            self.vpc = vpc
        self.s3_endpoint: ec2.GatewayVpcEndpoint | None = None
        if props.s3_gateway_endpoint if props.s3_gateway_endpoint is not None else props.vpc is None:
            self.s3_endpoint = ec2.GatewayVpcEndpoint(
                self, "S3Endpoint", vpc=self.vpc, service=ec2.GatewayVpcEndpointAwsService.S3
            )
        self.compute_subnets = ec2.SubnetSelection(subnet_type=props.compute_subnet_type)
        self.database_subnets = ec2.SubnetSelection(subnet_type=props.database_subnet_type)

    def retain_database_subnets(self) -> None:
        """Keep the new VPC and its database subnets when the stack is deleted, for a retained
        database whose network interfaces stay in them (no-op for an imported VPC)."""
        if not isinstance(self.vpc, ec2.Vpc):
            return
        self.vpc.apply_removal_policy(RemovalPolicy.RETAIN)
        for subnet in self.vpc.select_subnets(subnet_type=self.database_subnets.subnet_type).subnets:
            subnet.apply_removal_policy(RemovalPolicy.RETAIN)
