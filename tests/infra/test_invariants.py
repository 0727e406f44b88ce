"""Security and wiring invariants of the synthesized platform."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth

pytestmark = pytest.mark.xdist_group("infra")

#: Actions that have no resource-level permissions and so legitimately take "*".
_STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}


def _statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for name, policy in synth.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            result.append((name, statement))
    return result


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_of_role(synth: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def test_given_default_props_when_synth_then_media_buckets_are_kms_encrypted(synth: Synth) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    media = {k: v for k, v in buckets.items() if "InputBucket" in k or "OutputBucket" in k}
    assert len(media) == 2
    for bucket in media.values():
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert rule["BucketKeyEnabled"] is True


def test_given_default_props_when_synth_then_every_bucket_is_private_encrypted_and_tls_only(synth: Synth) -> None:
    policies = {
        json.dumps(p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources("AWS::S3::BucketPolicy").values()
    }
    for name, bucket in synth.resources("AWS::S3::Bucket").items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert "BucketEncryption" in props, name
        statements = policies[json.dumps({"Ref": name})]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in statements
        ), name


def test_given_default_props_when_synth_then_media_buckets_have_lifecycle_cors_logs(synth: Synth) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    (input_bucket,) = (v["Properties"] for k, v in buckets.items() if "InputBucket" in k)
    (output_bucket,) = (v["Properties"] for k, v in buckets.items() if "OutputBucket" in k)
    (input_rule,) = input_bucket["LifecycleConfiguration"]["Rules"]
    assert input_rule["ExpirationInDays"] == 7
    assert input_rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert {"PUT", "POST"} <= set(input_bucket["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"])
    (output_cors,) = output_bucket["CorsConfiguration"]["CorsRules"]
    assert sorted(output_cors["AllowedMethods"]) == ["GET", "HEAD"]  # browser HLS players, presigned URLs
    assert output_cors["AllowedOrigins"] == ["*"]
    assert {"Content-Length", "Content-Range"} <= set(output_cors["ExposedHeaders"])
    assert output_bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    for props in (input_bucket, output_bucket):
        assert "DestinationBucketName" in props["LoggingConfiguration"]


def test_given_default_props_when_synth_then_no_wildcard_action_and_star_resource_only_where_unavoidable(
    synth: Synth,
) -> None:
    for name, statement in _statements(synth):
        for action in _as_list(statement["Action"]):
            service_action = action.split(":", 1)[-1]
            assert "*" not in service_action, f"{name}: {action}"
        if "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= _STAR_RESOURCE_ACTIONS, f"{name}: {statement}"


def test_given_default_props_when_synth_then_queues_are_encrypted_and_dlq_wired(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    assert len(queues) == 2
    for queue in queues.values():
        assert queue["Properties"].get("SqsManagedSseEnabled") or queue["Properties"].get("KmsMasterKeyId")
    (_main_id, main), (dlq_id, _dlq) = sorted(queues.items(), key=lambda kv: "DeadLetter" in kv[0])
    redrive = main["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    functions = synth.resources("AWS::Lambda::Function")
    (queue_function,) = (v for k, v in functions.items() if "QueueFunction" in k)
    assert main["Properties"]["VisibilityTimeout"] >= 6 * queue_function["Properties"]["Timeout"]


def test_given_default_props_when_synth_then_sqs_sources_report_batch_item_failures(synth: Synth) -> None:
    mappings = synth.resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 2  # the job queue and its dead-letter queue
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_given_default_props_when_synth_then_database_is_private_encrypted_and_isolated(synth: Synth) -> None:
    _, instance = synth.one("AWS::RDS::DBInstance")
    props = instance["Properties"]
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert props["EngineVersion"].startswith("16")
    assert props["DeletionProtection"] is True
    assert instance["DeletionPolicy"] == "Retain"
    _, subnet_group = synth.one("AWS::RDS::DBSubnetGroup")
    for ref in subnet_group["Properties"]["SubnetIds"]:
        assert "databaseSubnet" in ref["Ref"], ref
    _, rotation = synth.one("AWS::SecretsManager::RotationSchedule")
    assert rotation["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"


def test_given_default_props_when_synth_then_task_role_reads_input_writes_output_and_reads_db_secret_only(
    synth: Synth,
) -> None:
    _, task_def = synth.one("AWS::ECS::TaskDefinition")
    role_id = task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    by_action = {}
    listings = []
    for statement in _policy_of_role(synth, role_id):
        for action in _as_list(statement["Action"]):
            by_action[action] = json.dumps(statement["Resource"])
            if action == "s3:ListBucket":
                listings.append((json.dumps(statement["Resource"]), statement["Condition"]))
    assert set(by_action) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",  # input: a missing input is INPUT_MISSING, not AccessDenied; output: pruning
        "s3:DeleteObject",  # a re-run prunes the outputs it no longer produces
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    assert "InputBucket" in by_action["s3:GetObject"] and "/input/*" in by_action["s3:GetObject"]
    assert "OutputBucket" in by_action["s3:PutObject"] and "/output/*" in by_action["s3:PutObject"]
    assert "OutputBucket" in by_action["s3:DeleteObject"] and "/output/*" in by_action["s3:DeleteObject"]
    assert sorted((("InputBucket" in r), c["StringLike"]["s3:prefix"]) for r, c in listings) == [
        (False, ["output/*"]),
        (True, ["input/*"]),
    ]
    assert "DatabaseInstanceSecret" in by_action["secretsmanager:GetSecretValue"]
    (container,) = task_def["Properties"]["ContainerDefinitions"]
    assert container["Name"] == "worker"


def test_given_default_props_when_synth_then_dispatcher_runs_exactly_the_worker_task_and_passes_its_roles(
    synth: Synth,
) -> None:
    task_def_id, task_def = synth.one("AWS::ECS::TaskDefinition")
    run = [s for _, s in _statements(synth) if "ecs:RunTask" in _as_list(s["Action"])]
    assert len(run) == 1
    assert run[0]["Resource"] == {"Ref": task_def_id}
    passes = [s for _, s in _statements(synth) if "iam:PassRole" in _as_list(s["Action"])]
    assert len(passes) == 1
    assert sorted(r["Fn::GetAtt"][0] for r in passes[0]["Resource"]) == sorted(
        [
            task_def["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0],
            task_def["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0],
        ]
    )
    tags = [s for _, s in _statements(synth) if "ecs:TagResource" in _as_list(s["Action"])]
    assert len(tags) == 1
    assert tags[0]["Condition"] == {"StringEquals": {"ecs:CreateAction": "RunTask"}}
    stops = [s for _, s in _statements(synth) if "ecs:StopTask" in _as_list(s["Action"])]
    assert len(stops) == 1 and "ecs:cluster" in stops[0]["Condition"]["ArnEquals"]
    for statement in (*tags, *stops):
        assert ":task/" in str(statement["Resource"]) and statement["Resource"] != "*"


def test_given_default_props_when_synth_then_task_stopped_rule_targets_this_cluster(synth: Synth) -> None:
    cluster_id, cluster = synth.one("AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"]["ClusterSettings"]
    (rule,) = (v for k, v in synth.resources("AWS::Events::Rule").items() if "TaskStoppedRule" in k)
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    assert pattern["detail"] == {"clusterArn": [{"Fn::GetAtt": [cluster_id, "Arn"]}], "lastStatus": ["STOPPED"]}


def test_given_chalice_routes_when_synth_then_each_route_is_a_native_proxy_method(synth: Synth) -> None:
    from constructs_lib.api import load_app_spec

    spec = load_app_spec()
    methods = synth.resources("AWS::ApiGateway::Method")
    non_options = [m for m in methods.values() if m["Properties"]["HttpMethod"] != "OPTIONS"]
    assert len(non_options) == sum(len(r.methods) for r in spec.routes)
    for method in non_options:
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
        assert "RequestValidatorId" in method["Properties"]
    for resource in synth.resources("AWS::ApiGateway::Resource").values():
        assert "+" not in resource["Properties"]["PathPart"]
    _, stage = synth.one("AWS::ApiGateway::Stage")
    assert stage["Properties"]["TracingEnabled"] is True
    assert "AccessLogSetting" in stage["Properties"]
    assert stage["Properties"]["MethodSettings"][0]["ThrottlingRateLimit"] == 100


def test_given_default_props_when_synth_then_functions_run_in_vpc_with_traces(synth: Synth) -> None:
    ours = {k: v for k, v in synth.resources("AWS::Lambda::Function").items() if "framework" not in k}
    assert len(ours) == 7  # api, 3 dispatcher handlers, the sweeper, migrations, the worker function
    for name, function in ours.items():
        assert function["Properties"]["VpcConfig"]["SubnetIds"], name
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        if function["Properties"].get("PackageType") == "Image":  # the worker image, awslambdaric its entrypoint
            assert function["Properties"]["ImageConfig"]["EntryPoint"] == ["python", "-m", "awslambdaric"], name
        else:
            assert function["Properties"]["Runtime"].startswith("python3."), name


def test_given_default_props_when_synth_then_migrations_rerun_on_content_hash(synth: Synth) -> None:
    from constructs_lib.migrations import migrations_hash

    _, resource = synth.one("Custom::TranscodexMigrations")
    assert resource["Properties"]["MigrationsHash"] == migrations_hash()


def test_given_skipped_bundling_when_synth_then_template_refuses_deployment(synth: Synth) -> None:
    assert "BundlingSkipped" in synth.template["Rules"]


def test_given_default_props_when_synth_then_outputs_name_api_buckets_and_cluster(synth: Synth) -> None:
    outputs = " ".join(synth.template["Outputs"])
    for name in ("ApiUrl", "InputBucketName", "OutputBucketName", "ClusterName"):
        assert name in outputs


def _function_id(synth: Synth, fragment: str) -> str:
    (found,) = (k for k in synth.resources("AWS::Lambda::Function") if fragment in k)
    return found


def test_given_default_props_when_synth_then_a_schedule_runs_the_sweeper_every_five_minutes(synth: Synth) -> None:
    sweeper = _function_id(synth, "SweepFunction")
    (rule,) = (v for k, v in synth.resources("AWS::Events::Rule").items() if "SweepSchedule" in k)
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["Properties"]["State"] == "ENABLED"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [sweeper, "Arn"]}
    permissions = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [sweeper, "Arn"]}
    ]
    assert [(p["Action"], p["Principal"]) for p in permissions] == [("lambda:InvokeFunction", "events.amazonaws.com")]
    function = synth.template["Resources"][sweeper]["Properties"]
    assert function["Handler"] == "runtime.dispatcher.handler.handle_sweep"
    env = function["Environment"]["Variables"]
    assert {"TRANSCODEX_DATABASE_SECRET_ARN", "TRANSCODEX_QUEUE_URL", "TRANSCODEX_INPUT_BUCKET"} <= set(env)
    assert not any(name.startswith("TRANSCODEX_ECS_") for name in env)


def test_given_default_props_when_synth_then_the_sweeper_may_only_send_jobs_and_head_and_delete_media(
    synth: Synth,
) -> None:
    sweeper = synth.template["Resources"][_function_id(synth, "SweepFunction")]
    role_id = sweeper["Properties"]["Role"]["Fn::GetAtt"][0]
    by_action: dict[str, list[str]] = {}
    for statement in _policy_of_role(synth, role_id):
        for action in _as_list(statement["Action"]):
            by_action.setdefault(action, []).append(json.dumps(statement["Resource"]))
    assert set(by_action) == {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "s3:GetObject",
        "s3:ListBucket",  # an abandoned upload's missing object must read as 404 (EXPIRED), not 403
        "s3:DeleteObject",  # oversized stale uploads; a deleted account's media in both buckets
        "kms:Decrypt",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    (queue_id,) = (k for k in synth.resources("AWS::SQS::Queue") if "DeadLetter" not in k)
    assert by_action["sqs:SendMessage"] == [json.dumps({"Fn::GetAtt": [queue_id, "Arn"]})]
    (s3_resource,) = by_action["s3:GetObject"]
    assert "InputBucket" in s3_resource and s3_resource.endswith('"/input/*"]]}')
    deletable = sorted(by_action["s3:DeleteObject"])
    assert len(deletable) == 2 and deletable[0].endswith('"/input/*"]]}') and deletable[1].endswith('"/output/*"]]}')
    assert not any("ecs:" in action or action == "iam:PassRole" for action in by_action)


def test_given_default_props_when_synth_then_gateway_errors_use_the_api_error_shape(synth: Synth) -> None:
    from runtime.api.chalicelib.errors import GATEWAY_NOT_FOUND

    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"}
    not_found = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert not_found["StatusCode"] == "404"
    assert not_found["ResponseTemplates"] == {"application/json": GATEWAY_NOT_FOUND["template"]}
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        props = responses[response_type]
        assert "StatusCode" not in props  # the gateway's own status is kept
        template = props["ResponseTemplates"]["application/json"]
        assert template.startswith('{"error": {"code": ') and '"details": {}' in template
    for props in responses.values():
        assert props["ResponseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"


def test_given_default_props_when_synth_then_the_retained_database_keeps_what_it_needs(synth: Synth) -> None:
    """cdk destroy leaves a deletion-protected instance: its secret, subnet group, security group,
    and the VPC and subnets its network interfaces stay in must stay too (or DELETE_FAILED)."""
    resources = synth.template["Resources"]
    instance_id, instance = synth.one("AWS::RDS::DBInstance")
    subnet_group_id, subnet_group = synth.one("AWS::RDS::DBSubnetGroup")
    (secret_id,) = (k for k in synth.resources("AWS::SecretsManager::Secret") if "DatabaseInstanceSecret" in k)
    (sg_ref,) = instance["Properties"]["VPCSecurityGroups"]
    vpc_id, _ = synth.one("AWS::EC2::VPC")
    kept = [instance_id, subnet_group_id, secret_id, sg_ref["Fn::GetAtt"][0], vpc_id]
    kept += [ref["Ref"] for ref in subnet_group["Properties"]["SubnetIds"]]
    for logical_id in kept:
        assert resources[logical_id].get("DeletionPolicy") == "Retain", logical_id
        assert resources[logical_id].get("UpdateReplacePolicy") == "Retain", logical_id


def test_given_default_props_when_synth_then_rotation_starts_after_the_migrations(synth: Synth) -> None:
    rotation_id, rotation = synth.one("AWS::SecretsManager::RotationSchedule")
    migrations_id, _ = synth.one("Custom::TranscodexMigrations")
    assert migrations_id in rotation.get("DependsOn", []), rotation_id


def test_given_default_props_when_synth_then_the_claim_timeout_is_between_timeout_and_visibility(
    synth: Synth,
) -> None:
    from runtime.dispatcher.service import CLAIM_TIMEOUT_ENV

    (queue,) = (v for k, v in synth.resources("AWS::SQS::Queue").items() if "DeadLetter" not in k)
    visibility = queue["Properties"]["VisibilityTimeout"]
    function = synth.template["Resources"][_function_id(synth, "QueueFunction")]["Properties"]
    claim = int(function["Environment"]["Variables"][CLAIM_TIMEOUT_ENV])
    assert function["Timeout"] < claim < visibility


def test_given_default_props_when_synth_then_the_worker_runs_unprivileged_read_only_with_one_scratch_mount(
    synth: Synth,
) -> None:
    from constructs_lib.worker import SCRATCH_PATH, SCRATCH_VOLUME

    _, task_def = synth.one("AWS::ECS::TaskDefinition")
    (container,) = task_def["Properties"]["ContainerDefinitions"]
    assert container["ReadonlyRootFilesystem"] is True
    assert container["User"] not in ("", "0", "root") and not container["User"].startswith(("0:", "root:"))
    assert container["LinuxParameters"]["Capabilities"] == {"Drop": ["ALL"]}
    assert container.get("Privileged") in (None, False)
    assert container["MountPoints"] == [
        {"ContainerPath": SCRATCH_PATH, "ReadOnly": False, "SourceVolume": SCRATCH_VOLUME}
    ]
    (volume,) = task_def["Properties"]["Volumes"]
    assert volume == {"Name": SCRATCH_VOLUME}  # a bind mount on the task's ephemeral storage, no host path
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert environment["TMPDIR"] == SCRATCH_PATH


def test_given_the_worker_dockerfile_when_read_then_its_user_and_scratch_are_the_task_definitions() -> None:
    import re
    from pathlib import Path

    from constructs_lib.worker import SCRATCH_PATH, WORKER_USER

    text = (Path(__file__).resolve().parents[2] / "runtime" / "worker" / "Dockerfile").read_text()
    assert re.findall(r"^USER (\S+)", text, re.M)[-1] == WORKER_USER
    assert re.search(rf"^VOLUME \[\"{SCRATCH_PATH}\"\]", text, re.M)
    assert re.search(rf"\bTMPDIR={SCRATCH_PATH}\b", text)
    assert re.search(rf"chown worker {SCRATCH_PATH}\b", text)
