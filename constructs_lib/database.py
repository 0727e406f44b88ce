"""PostgreSQL 16 on RDS: the single source of truth for users, uploads and jobs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Resource
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IConstruct

from constructs_lib._nag import acknowledge


@dataclass(frozen=True)
class DatabaseProps:
    """Properties of :class:`Database`."""

    #: The VPC of the instance.
    vpc: ec2.IVpc
    #: Subnets of the instance.
    #: Default: - the VPC's isolated subnets.
    vpc_subnets: ec2.SubnetSelection | None = None
    #: Subnets of the secret-rotation Lambda (it must reach the Secrets Manager API).
    #: Default: - the VPC's private subnets with egress.
    rotation_subnets: ec2.SubnetSelection | None = None
    #: PostgreSQL 16 minor version; minor upgrades are then applied automatically.
    #: Default: - 16.13.
    engine_version: rds.PostgresEngineVersion = rds.PostgresEngineVersion.VER_16_13
    #: Instance class, e.g. "t4g.micro" or "m7g.large".
    #: Default: - t4g.small.
    instance_type: str = "t4g.small"
    #: Initial storage, in GiB.
    #: Default: - 20.
    allocated_storage_gib: int = 20
    #: Storage autoscaling ceiling, in GiB.
    #: Default: - 100.
    max_allocated_storage_gib: int = 100
    #: Standby replica in a second AZ.
    #: Default: - false (single AZ; backups still allow point-in-time restore).
    multi_az: bool = False
    #: Days of automated backups (1-35).
    #: Default: - 7.
    backup_retention_days: int = 7
    #: Refuse DeleteDBInstance until this is switched off.
    #: Default: - true.
    deletion_protection: bool = True
    #: What happens to the instance when it leaves the stack: RETAIN, SNAPSHOT or DESTROY.
    #: Default: - RETAIN.
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    #: Days between automatic rotations of the generated master password.
    #: Default: - 30.
    rotation_days: int = 30
    #: Name of the database created in the instance.
    #: Default: - "transcodex".
    database_name: str = "transcodex"
    #: Key for storage, Performance Insights and the credentials secret.
    #: Default: - the AWS managed keys of RDS and Secrets Manager.
    encryption_key: kms.IKey | None = None

    def validate(self) -> None:
        if not 1 <= self.backup_retention_days <= 35:
            raise ValueError(f"backup_retention_days must be between 1 and 35, got {self.backup_retention_days}")
        if self.allocated_storage_gib < 20:
            raise ValueError(f"allocated_storage_gib must be >= 20 (gp3 minimum), got {self.allocated_storage_gib}")
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError(
                f"max_allocated_storage_gib ({self.max_allocated_storage_gib}) must be >= "
                f"allocated_storage_gib ({self.allocated_storage_gib})"
            )
        if not 1 <= self.rotation_days <= 365:
            raise ValueError(f"rotation_days must be between 1 and 365, got {self.rotation_days}")
        if self.removal_policy not in (RemovalPolicy.RETAIN, RemovalPolicy.SNAPSHOT, RemovalPolicy.DESTROY):
            raise ValueError(f"removal_policy must be RETAIN, SNAPSHOT or DESTROY, got {self.removal_policy}")
        if self.engine_version.postgres_major_version != "16":
            raise ValueError(
                f"engine_version must be a PostgreSQL 16 version, got {self.engine_version.postgres_full_version}"
            )
        if not self.database_name.isidentifier():
            raise ValueError(f"database_name must be a plain identifier, got {self.database_name!r}")


class Database(Construct):
    """An encrypted, private PostgreSQL 16 instance with rotated, generated credentials.

    Attributes: ``instance``, ``secret`` (JSON with host, port, username,
    password, dbname), ``rotation`` and ``rotation_schedule`` (order the schedule after whatever
    must connect with the first password, e.g. the migrations: it rotates at creation).
    Unless the removal policy is DESTROY, the secret is retained with the instance, and with
    RETAIN its subnet group and security group too. Use :meth:`allow_from` to open the port
    to a client and :meth:`grant_secret_read` to let it read the credentials.
    """

    def __init__(self, scope: Construct, construct_id: str, props: DatabaseProps) -> None:
        super().__init__(scope, construct_id)
        props.validate()
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=rds.DatabaseInstanceEngine.postgres(version=props.engine_version),
            instance_type=ec2.InstanceType(props.instance_type),
            vpc=props.vpc,
            vpc_subnets=props.vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            publicly_accessible=False,
            credentials=rds.Credentials.from_generated_secret("transcodex", encryption_key=props.encryption_key),
            database_name=props.database_name,
            storage_encrypted=True,
            storage_encryption_key=props.encryption_key,
            storage_type=rds.StorageType.GP3,
            allocated_storage=props.allocated_storage_gib,
            max_allocated_storage=props.max_allocated_storage_gib,
            multi_az=props.multi_az,
            backup_retention=Duration.days(props.backup_retention_days),
            copy_tags_to_snapshot=True,
            deletion_protection=props.deletion_protection,
            removal_policy=props.removal_policy,
            iam_authentication=True,
            auto_minor_version_upgrade=True,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
            enable_performance_insights=True,
            performance_insight_encryption_key=props.encryption_key,
            parameters={"rds.force_ssl": "1"},
        )
        assert self.instance.secret is not None
        self.secret: secretsmanager.ISecret = self.instance.secret
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(props.rotation_days),
            vpc_subnets=props.rotation_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        # The schedule itself lives under the secret attachment, not under the rotation construct.
        self.rotation_schedule: IConstruct = self.secret.node.find_child("RotationSchedule")
        if props.removal_policy != RemovalPolicy.DESTROY:
            self._retain_dependencies(props.removal_policy)
        acknowledge(
            self.instance,
            "RDS11",
            "A non-default port is obscurity, not a control: the instance is in isolated subnets and its "
            "security group admits only the platform's own security groups.",
        )
        if not props.multi_az:
            acknowledge(self.instance, "RDS3", "multi_az=False was chosen in the props (single-AZ to save cost).")
        if not props.deletion_protection:
            acknowledge(self.instance, "RDS10", "deletion_protection=False was chosen in the props.")

    def _retain_dependencies(self, policy: RemovalPolicy) -> None:
        """A kept instance still needs what it was built with: its credentials (also for a
        snapshot, which keeps the password), and while it lives (RETAIN) its subnet group and
        security group, which CloudFormation cannot delete while the instance uses them."""
        keep = [self.instance.node.try_find_child("Secret")]
        if policy == RemovalPolicy.RETAIN:
            keep += [
                self.instance.node.try_find_child("SubnetGroup"),
                self.instance.node.try_find_child("SecurityGroup"),
            ]
        for construct in keep:
            if construct is not None:
                assert isinstance(construct, Resource), construct.node.path
                construct.apply_removal_policy(RemovalPolicy.RETAIN)

    @property
    def connections(self) -> ec2.Connections:
        return self.instance.connections

    def allow_from(self, other: ec2.IConnectable, description: str = "TranscodeX client") -> None:
        """Open the database port to ``other``'s security groups."""
        self.instance.connections.allow_default_port_from(other, description)

    def grant_secret_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the credentials (GetSecretValue, and Decrypt with a customer key)."""
        return self.secret.grant_read(grantee)
