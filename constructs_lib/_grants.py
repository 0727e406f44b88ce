"""Object-level S3 grants scoped to one key prefix.

``Bucket.grant_read``/``grant_put`` add wildcard actions (``s3:GetObject*``,
``s3:List*``, ``s3:Abort*``, ``kms:ReEncrypt*``) and bucket-level listing; the
platform needs exactly GetObject or PutObject on one prefix and the matching KMS
operations, so these grants name them.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import IConstruct

from constructs_lib._nag import acknowledge

# The key layout (``input/{user}/{upload}/{name}``, ``output/{user}/{job}/...``) has one owner,
# runtime.shared.keys, which imports the standard library only: synthesis loads nothing more.
from runtime.shared.keys import INPUT_PREFIX as INPUT_PREFIX
from runtime.shared.keys import OUTPUT_PREFIX as OUTPUT_PREFIX


def grant_list_prefix(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
    """ListBucket limited to keys under ``prefix`` (``s3:prefix``). Without it S3 answers a HEAD
    or GET of a missing key with 403 instead of 404, and ListObjectsV2 is refused."""
    return iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["s3:ListBucket"],
        resource_arns=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
    )


def grant_object_read(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
    """GetObject (and HeadObject, which it covers) under ``prefix``, listing of ``prefix`` so a
    missing key reads as 404; Decrypt with the bucket key."""
    grant = iam.Grant.add_to_principal(
        grantee=grantee, actions=["s3:GetObject"], resource_arns=[bucket.arn_for_objects(f"{prefix}*")]
    )
    grant_list_prefix(bucket, grantee, prefix)
    if bucket.encryption_key is not None:
        bucket.encryption_key.grant(grantee, "kms:Decrypt")
    return grant


def grant_object_write(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
    """PutObject and AbortMultipartUpload under ``prefix``; the KMS operations SSE-KMS uploads need."""
    grant = iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["s3:PutObject", "s3:AbortMultipartUpload"],
        resource_arns=[bucket.arn_for_objects(f"{prefix}*")],
    )
    if bucket.encryption_key is not None:
        # Multipart uploads under SSE-KMS decrypt the data key for every part.
        bucket.encryption_key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
    return grant


def grant_object_delete(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str) -> iam.Grant:
    """DeleteObject under ``prefix`` (DeleteObjects checks it per key)."""
    return iam.Grant.add_to_principal(
        grantee=grantee, actions=["s3:DeleteObject"], resource_arns=[bucket.arn_for_objects(f"{prefix}*")]
    )


def acknowledge_prefix_grants(
    role: IConstruct, input_bucket: s3.IBucket | None, output_bucket: s3.IBucket | None = None
) -> None:
    """Acknowledge the one wildcard these grants keep: the object keys under a prefix
    (``input/`` of ``input_bucket``, ``output/`` of ``output_bucket``; None skips one)."""
    findings = []
    for bucket, prefix in ((input_bucket, INPUT_PREFIX), (output_bucket, OUTPUT_PREFIX)):
        if bucket is None:
            continue
        arn = Stack.of(role).resolve(bucket.bucket_arn)
        if isinstance(arn, dict) and "Fn::GetAtt" in arn:
            findings.append(f"Resource::<{arn['Fn::GetAtt'][0]}.Arn>/{prefix}*")
        elif isinstance(arn, str):
            findings.append(f"Resource::{arn}/{prefix}*")
    acknowledge(
        role,
        "IAM5",
        "Object keys are created per user, upload and job at run time; the grant is limited to one key "
        "prefix of one bucket and to GetObject/PutObject/DeleteObject.",
        *findings,
    )


def grant_worker_data(
    role: iam.IRole, input_bucket: s3.IBucket, output_bucket: s3.IBucket, database_secret: secretsmanager.ISecret
) -> None:
    """What a worker (task or function) may touch: read ``input/*``, write ``output/*``, list and
    delete it (a re-run prunes the outputs it no longer produces), read the database secret."""
    grant_object_read(input_bucket, role, INPUT_PREFIX)
    grant_object_write(output_bucket, role, OUTPUT_PREFIX)
    grant_list_prefix(output_bucket, role, OUTPUT_PREFIX)
    grant_object_delete(output_bucket, role, OUTPUT_PREFIX)
    database_secret.grant_read(role)
    acknowledge_prefix_grants(role, input_bucket, output_bucket)
