"""Props validation and context parsing: fast, no synthesis."""

from __future__ import annotations

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3

from constructs_lib import JobQueueProps, NetworkProps, StorageProps, TranscodexPlatformProps
from constructs_lib.api import ApiProps
from constructs_lib.dispatcher import DispatcherProps
from constructs_lib.worker import WorkerProps
from stacks.app import skip_bundling_requested
from stacks.transcodex_stack import platform_config_from_context, props_from_config

pytestmark = pytest.mark.xdist_group("infra")


def test_given_visibility_below_six_times_dispatcher_timeout_when_validate_then_error_names_both() -> None:
    props = JobQueueProps(dispatcher_timeout_seconds=60, visibility_timeout_seconds=120)
    with pytest.raises(ValueError, match=r"between 360 \(6x dispatcher_timeout_seconds\) and 43200, got 120"):
        props.validate()


def test_given_default_queue_props_when_validate_then_visibility_is_six_times_timeout() -> None:
    assert JobQueueProps(dispatcher_timeout_seconds=90).effective_visibility_timeout_seconds == 540


def test_given_zero_nat_gateways_when_validate_then_error_explains_egress() -> None:
    with pytest.raises(ValueError, match=r"nat_gateways must be between 1 and max_azs .*got 0"):
        NetworkProps(nat_gateways=0).validate()


def test_given_unsupported_bucket_encryption_when_validate_then_error_lists_allowed() -> None:
    with pytest.raises(ValueError, match=r"encryption must be one of \['KMS', 'S3_MANAGED'\]"):
        StorageProps(encryption=s3.BucketEncryption.UNENCRYPTED).validate()


def test_given_auto_delete_without_destroy_when_validate_then_error() -> None:
    with pytest.raises(ValueError, match="auto_delete_objects needs removal_policy DESTROY"):
        StorageProps(auto_delete_objects=True).validate()


def _worker_props(**kwargs: object) -> WorkerProps:
    stack = Stack(App(), "S")
    vpc = ec2.Vpc(stack, "Vpc")
    bucket = s3.Bucket(stack, "B")
    from aws_cdk import aws_secretsmanager as sm

    return WorkerProps(
        vpc=vpc, input_bucket=bucket, output_bucket=bucket, database_secret=sm.Secret(stack, "S"), **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": 300}, "cpu must be one of"),
        (
            {"cpu": 1024, "memory_limit_mib": 1000},
            "memory_limit_mib for cpu=1024 must be 2048-8192 in steps of 1024, got 1000",
        ),
        ({"ephemeral_storage_gib": 10}, "ephemeral_storage_gib must be between 21 and 200, got 10"),
        ({"cpu_architecture": "RISCV"}, "cpu_architecture must be one of"),
    ],
)
def test_given_invalid_worker_sizes_when_validate_then_error_says_what_is_allowed(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _worker_props(**kwargs).validate()


def _dispatcher_props(**kwargs: object) -> DispatcherProps:
    """Dispatcher props on the worker props' VPC and secret (queues and worker left out)."""
    worker_props = _worker_props()
    return DispatcherProps(
        vpc=worker_props.vpc,
        queue=None,
        dead_letter_queue=None,
        worker=None,  # type: ignore[arg-type]
        database_secret=worker_props.database_secret,
        **kwargs,  # type: ignore[arg-type]
    )


def test_given_unknown_capacity_provider_when_validate_then_error() -> None:
    props = _dispatcher_props(capacity_provider="EC2")
    with pytest.raises(ValueError, match="capacity_provider must be one of"):
        props.validate()


@pytest.mark.parametrize("minutes", [0, 61])
def test_given_sweep_interval_out_of_range_when_validate_then_error(minutes: int) -> None:
    props = _dispatcher_props(sweep_interval_minutes=minutes)
    with pytest.raises(ValueError, match="sweep_interval_minutes must be between 1 and 60"):
        props.validate()


def test_given_empty_output_cors_origins_when_validate_then_error() -> None:
    with pytest.raises(ValueError, match="output_cors_allowed_origins must name at least one origin"):
        StorageProps(output_cors_allowed_origins=()).validate()


def test_given_bad_log_level_when_validate_then_error() -> None:
    with pytest.raises(ValueError, match="log_level must be one of"):
        TranscodexPlatformProps(log_level="LOUD").validate()


def test_given_limits_when_runtime_environment_then_transcodex_variables() -> None:
    env = TranscodexPlatformProps(max_input_bytes=1024, worker_timeout_seconds=60).runtime_environment()
    assert env == {
        "TRANSCODEX_LOG_LEVEL": "INFO",
        "TRANSCODEX_MAX_INPUT_BYTES": "1024",
        "TRANSCODEX_WORKER_TIMEOUT_SECONDS": "60",
    }


def test_given_per_user_limits_when_runtime_environment_then_the_api_reads_them() -> None:
    from runtime.shared.settings import load_settings

    props = TranscodexPlatformProps(
        max_active_jobs_per_user=2, max_stored_bytes_per_user=10**9, require_upload_size=True
    )
    limits = load_settings(props.runtime_environment()).limits
    assert (limits.max_active_jobs_per_user, limits.max_stored_bytes_per_user) == (2, 10**9)
    assert limits.require_upload_size and limits.max_jobs_per_hour_per_user == 100
    with pytest.raises(ValueError, match="max_pending_uploads_per_user must be >= 1"):
        TranscodexPlatformProps(max_pending_uploads_per_user=0).validate()


def test_given_context_object_and_single_keys_when_parsed_then_typed_props() -> None:
    app = App(
        context={
            "transcodex": {"worker_cpu": 4096, "removal_policy": "destroy", "log_retention": 7},
            "transcodex:worker_memory_limit_mib": "8192",
            "transcodex:database_multi_az": "true",
            "transcodex:output_expiration_days": "30",
        }
    )
    stack = Stack(app, "S")
    props = props_from_config(stack, platform_config_from_context(stack))
    assert props.worker_cpu == 4096
    assert props.worker_memory_limit_mib == 8192
    assert props.database_multi_az is True
    assert props.removal_policy == RemovalPolicy.DESTROY
    assert props.log_retention == logs.RetentionDays.ONE_WEEK
    assert props.output_expiration_days == 30


def test_given_unknown_context_key_when_parsed_then_error_lists_allowed() -> None:
    stack = Stack(App(context={"transcodex": {"worker_cpus": 1}}), "S")
    with pytest.raises(ValueError, match=r"unknown TranscodeX settings \['worker_cpus'\]"):
        platform_config_from_context(stack)


def test_given_skip_bundling_values_when_read_then_only_1_skips() -> None:
    assert skip_bundling_requested({"TRANSCODEX_SKIP_BUNDLING": "1"}) is True
    assert skip_bundling_requested({}) is False
    with pytest.raises(ValueError, match="must be 1 or 0"):
        skip_bundling_requested({"TRANSCODEX_SKIP_BUNDLING": "yes"})


def _api_props(**kwargs: object) -> ApiProps:
    from aws_cdk import aws_secretsmanager as sm
    from aws_cdk import aws_sqs as sqs

    stack = Stack(App(), "S")
    bucket = s3.Bucket(stack, "B")
    return ApiProps(
        vpc=ec2.Vpc(stack, "Vpc"),
        input_bucket=bucket,
        output_bucket=bucket,
        queue=sqs.Queue(stack, "Q"),
        database_secret=sm.Secret(stack, "S"),
        **kwargs,  # type: ignore[arg-type]
    )


def test_given_allowed_origins_when_building_the_api_environment_then_the_runtime_reads_them() -> None:
    from runtime.shared.settings import load_settings

    props = _api_props(allowed_origins=("https://App.example/", "http://localhost:3000"))
    props.validate()
    env = props.origin_environment()

    assert load_settings(env).allowed_origins == ("https://app.example", "http://localhost:3000")
    assert _api_props().origin_environment() == {}


@pytest.mark.parametrize("origin", ["evil.example", "https://app.example/path", "ftp://x.example", "https://"])
def test_given_a_malformed_allowed_origin_when_validate_then_error_names_it(origin: str) -> None:
    with pytest.raises(ValueError, match="allowed_origins entries must be scheme://host"):
        _api_props(allowed_origins=(origin,)).validate()
