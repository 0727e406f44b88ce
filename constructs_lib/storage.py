"""Input and output buckets for media, with the access-log bucket they report to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from constructs_lib._grants import INPUT_PREFIX as INPUT_PREFIX
from constructs_lib._grants import OUTPUT_PREFIX as OUTPUT_PREFIX
from constructs_lib._grants import grant_object_read, grant_object_write

_ALLOWED_ENCRYPTION = (s3.BucketEncryption.KMS, s3.BucketEncryption.S3_MANAGED)


class _BucketBase(TypedDict):
    """What every bucket of the platform shares."""

    block_public_access: s3.BlockPublicAccess
    enforce_ssl: bool
    minimum_tls_version: float
    object_ownership: s3.ObjectOwnership
    removal_policy: RemovalPolicy
    auto_delete_objects: bool


class _MediaEncryption(TypedDict):
    """The encryption of the input and output buckets."""

    encryption: s3.BucketEncryption
    encryption_key: kms.IKey | None
    bucket_key_enabled: bool


@dataclass(frozen=True)
class StorageProps:
    """Properties of :class:`Storage`."""

    #: Server-side encryption of the media buckets: KMS or S3_MANAGED.
    #: Default: - KMS, with a customer managed key (rotation on) unless ``encryption_key`` is given.
    encryption: s3.BucketEncryption = s3.BucketEncryption.KMS
    #: The KMS key for KMS encryption.
    #: Default: - a new key with yearly rotation.
    encryption_key: kms.IKey | None = None
    #: Days after which uploaded inputs are deleted (they are only needed until processed).
    #: Default: - 7.
    input_expiration_days: int = 7
    #: Days after which outputs are deleted.
    #: Default: - outputs never expire.
    output_expiration_days: int | None = None
    #: Days after which a replaced or deleted output version is removed.
    #: Default: - 30.
    output_noncurrent_version_expiration_days: int = 30
    #: Days after which incomplete multipart uploads are aborted (both buckets).
    #: Default: - 1.
    abort_incomplete_multipart_upload_days: int = 1
    #: Origins allowed to upload to the input bucket from a browser (PUT/POST to presigned URLs).
    #: Default: - any origin ("*"); the presigned URL is the authorization.
    cors_allowed_origins: Sequence[str] = ("*",)
    #: Origins allowed to read the output bucket from a browser (GET/HEAD): web HLS players fetch
    #: the presigned playlist and segment URLs cross-origin.
    #: Default: - the same as ``cors_allowed_origins`` (any origin, "*"); the presigned URL is the authorization.
    output_cors_allowed_origins: Sequence[str] | None = None
    #: Days server access logs are kept.
    #: Default: - 90.
    access_logs_expiration_days: int = 90
    #: Removal policy of the buckets (and the key created here).
    #: Default: - RETAIN.
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    #: Empty the buckets on stack deletion; only allowed with removal policy DESTROY.
    #: Default: - false.
    auto_delete_objects: bool = False

    def validate(self) -> None:
        if self.encryption not in _ALLOWED_ENCRYPTION:
            raise ValueError(
                f"encryption must be one of {[e.name for e in _ALLOWED_ENCRYPTION]}, got {self.encryption}"
            )
        if self.encryption_key is not None and self.encryption != s3.BucketEncryption.KMS:
            raise ValueError(f"encryption_key needs encryption=KMS, got {self.encryption.name}")
        for name in (
            "input_expiration_days",
            "abort_incomplete_multipart_upload_days",
            "output_noncurrent_version_expiration_days",
            "access_logs_expiration_days",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.output_expiration_days is not None and self.output_expiration_days < 1:
            raise ValueError(f"output_expiration_days must be >= 1 or None, got {self.output_expiration_days}")
        if not self.cors_allowed_origins:
            raise ValueError("cors_allowed_origins must name at least one origin (browsers upload directly)")
        if self.output_cors_allowed_origins is not None and not self.output_cors_allowed_origins:
            raise ValueError(
                "output_cors_allowed_origins must name at least one origin (browser players read outputs) or be None"
            )
        if self.auto_delete_objects and self.removal_policy != RemovalPolicy.DESTROY:
            raise ValueError(f"auto_delete_objects needs removal_policy DESTROY, got {self.removal_policy}")


class Storage(Construct):
    """Media buckets: private, TLS-only, encrypted, lifecycle-managed, access-logged.

    Attributes: ``input_bucket``, ``output_bucket`` (versioned), ``access_logs_bucket``
    and ``encryption_key`` (None with S3-managed encryption). Grants are scoped to
    the ``input/`` and ``output/`` prefixes.
    """

    def __init__(self, scope: Construct, construct_id: str, props: StorageProps | None = None) -> None:
        super().__init__(scope, construct_id)
        # ACLs are disabled (BUCKET_OWNER_ENFORCED): log delivery must be granted by bucket policy,
        # whatever the consuming app's feature flags say.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        props = props or StorageProps()
        props.validate()
        self.props = props
        self.encryption_key: kms.IKey | None = None
        if props.encryption == s3.BucketEncryption.KMS:
            self.encryption_key = props.encryption_key or kms.Key(
                self,
                "Key",
                description="TranscodeX media buckets",
                enable_key_rotation=True,
                removal_policy=props.removal_policy,
            )
        common: _BucketBase = {
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "minimum_tls_version": 1.2,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            "removal_policy": props.removal_policy,
            "auto_delete_objects": props.auto_delete_objects,
        }
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            # S3 server access logging delivers only to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(props.access_logs_expiration_days))
            ],
            **common,
        )
        encryption: _MediaEncryption = {
            "encryption": props.encryption,
            "encryption_key": self.encryption_key,
            "bucket_key_enabled": props.encryption == s3.BucketEncryption.KMS,
        }
        abort = Duration.days(props.abort_incomplete_multipart_upload_days)
        self.input_bucket = s3.Bucket(
            self,
            "InputBucket",
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="input-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-inputs",
                    expiration=Duration.days(props.input_expiration_days),
                    abort_incomplete_multipart_upload_after=abort,
                )
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.POST],
                    allowed_origins=list(props.cors_allowed_origins),
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
            **encryption,
            **common,
        )
        self.output_bucket = s3.Bucket(
            self,
            "OutputBucket",
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="output-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-outputs",
                    expiration=Duration.days(props.output_expiration_days) if props.output_expiration_days else None,
                    noncurrent_version_expiration=Duration.days(props.output_noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=abort,
                )
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=list(props.output_cors_allowed_origins or props.cors_allowed_origins),
                    # Players send Range for byte-range segments and read the lengths back.
                    allowed_headers=["*"],
                    exposed_headers=["Content-Length", "Content-Range", "Accept-Ranges", "ETag"],
                    max_age=3000,
                )
            ],
            **encryption,
            **common,
        )

    def grant_read_input(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read uploaded media (GetObject, HeadObject) under ``input/``."""
        return grant_object_read(self.input_bucket, grantee, INPUT_PREFIX)

    def grant_put_input(self, grantee: iam.IGrantable) -> iam.Grant:
        """Write uploads under ``input/`` (needed to sign presigned PUT/POST URLs)."""
        return grant_object_write(self.input_bucket, grantee, INPUT_PREFIX)

    def grant_read_output(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read produced media under ``output/`` (needed to sign presigned GET URLs)."""
        return grant_object_read(self.output_bucket, grantee, OUTPUT_PREFIX)

    def grant_write_output(self, grantee: iam.IGrantable) -> iam.Grant:
        """Write produced media under ``output/``."""
        return grant_object_write(self.output_bucket, grantee, OUTPUT_PREFIX)
