"""AWS quotas checked against a synthesized template, before CloudFormation or Lambda refuse it.

One implementation for ``make synth`` (``python -m stacks.quotas``, prints each figure against its
limit) and for tests/infra/test_quotas.py (asserts every figure is within its limit). Tokens
(``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``) are replaced by values of realistic,
worst-case length, so sizes are those AWS will measure after deployment, not of the template text.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: CloudFormation: template body uploaded through S3 (cdk deploy uploads it), resources,
#: parameters, outputs.
TEMPLATE_BODY_BYTES = 1_000_000
TEMPLATE_RESOURCES = 500
TEMPLATE_PARAMETERS = 200
TEMPLATE_OUTPUTS = 200
#: Lambda: resource-based policy per function, environment variables per function, unzipped
#: deployment package (all layers included).
LAMBDA_POLICY_BYTES = 20 * 1024
LAMBDA_ENVIRONMENT_BYTES = 4 * 1024
LAMBDA_UNZIPPED_PACKAGE_BYTES = 250 * 1024 * 1024
#: SQS event sources: the queue's visibility timeout must cover every retry of a batch.
VISIBILITY_TIMEOUT_FACTOR = 6
#: Fargate task sizes: CPU units -> the allowed memory values (MiB).
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}

#: RDS for PostgreSQL: max_connections = LEAST(DBInstanceClassMemory / 9531392, 5000). For
#: db.t4g.small (2 GiB; DBInstanceClassMemory is what is left after the OS and RDS processes,
#: about 1.8 GiB) that is ~200; 2 GiB / 9531392 = 225 is the ceiling. 3 are reserved for
#: superusers (rdsadmin); we keep 10 more for the rotation function and an operator's psql.
DB_MEMORY_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64}
#: Share of the instance memory RDS reports as DBInstanceClassMemory (an estimate: ~10% goes
#: to the OS and RDS's own processes).
DB_INSTANCE_CLASS_MEMORY_SHARE = 0.9
DB_RESERVED_CONNECTIONS = 13
#: Pool sizes (max_size) per process, as the runtime opens them (runtime/dispatcher/handler.py,
#: runtime/worker/__main__.py); the API's comes from its environment.
DISPATCHER_POOL_SIZE = 2
SWEEPER_POOL_SIZE = 1
WORKER_POOL_SIZE = 2

#: Worst-case lengths of what tokens become once deployed.
_REGION = "ap-southeast-7"  # among the longest commercial region names
_ACCOUNT = "123456789012"
_PARTITION = "aws"
_NAME = "N" * 64  # Lambda function names, bucket/queue names: CloudFormation-generated, <= 64 here

#: The largest configuration the props allow: every optional feature on, counts at their maximum.
LARGEST_CONFIG: dict[str, Any] = {
    "max_azs": 6,
    "nat_gateways": 6,
    "bucket_encryption": "KMS",
    "input_expiration_days": 30,
    "output_expiration_days": 365,
    "cors_allowed_origins": [f"https://app{i}.an-example-customer-domain.example.com" for i in range(20)],
    "output_cors_allowed_origins": [f"https://player{i}.an-example-customer-domain.example.com" for i in range(20)],
    "database_multi_az": True,
    "database_instance_type": "m7g.2xlarge",
    "dispatcher_timeout_seconds": 900,
    "dispatcher_max_concurrency": 1000,
    "worker_cpu": 16384,
    "worker_memory_limit_mib": 122880,
    "worker_ephemeral_storage_gib": 200,
    "worker_capacity_provider": "FARGATE_SPOT",
    "max_input_bytes": 5 * 1024**3,
    "max_image_pixels": 1_000_000_000,
    "max_video_duration_seconds": 86_400,
    "max_video_pixels": 7680 * 4320,
    "worker_timeout_seconds": 86_400,
    "log_level": "DEBUG",
    "alarm_email": "media-platform-operations-oncall@an-example-customer-domain.example.com",
}


#: Context of the largest configuration: an environment with six AZs (an environment-agnostic
#: stack gets two, whatever ``max_azs`` says).
LARGEST_CONTEXT: dict[str, Any] = {
    "transcodex:account": _ACCOUNT,
    "transcodex:region": "us-east-1",
    f"availability-zones:account={_ACCOUNT}:region=us-east-1": [f"us-east-1{z}" for z in "abcdef"],
}


@dataclass(frozen=True)
class Figure:
    """One measured quantity against its AWS limit."""

    name: str
    value: int
    limit: int
    unit: str = ""
    #: "<=" (value must not exceed limit) or ">=" (value must reach limit).
    relation: str = "<="

    @property
    def ok(self) -> bool:
        return self.value <= self.limit if self.relation == "<=" else self.value >= self.limit

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.name}: {self.value:,} {self.relation} {self.limit:,} {self.unit}".rstrip()


# --- token resolution -----------------------------------------------------------------------


def _fake_id(logical_id: str, type_: str) -> str:
    if type_ == "AWS::ApiGateway::RestApi":
        return "a1b2c3d4e5"
    if type_ == "AWS::EC2::Subnet":
        return "subnet-0123456789abcdef0"
    if type_ == "AWS::EC2::SecurityGroup":
        return "sg-0123456789abcdef0"
    if type_ == "AWS::SQS::Queue":
        return f"https://sqs.{_REGION}.amazonaws.com/{_ACCOUNT}/{'Q' * 80}"
    if type_ == "AWS::SecretsManager::Secret":
        return f"arn:{_PARTITION}:secretsmanager:{_REGION}:{_ACCOUNT}:secret:{'S' * 64}-AbCdEf"
    if type_ in ("AWS::ECS::TaskDefinition",):
        return f"arn:{_PARTITION}:ecs:{_REGION}:{_ACCOUNT}:task-definition/{'T' * 64}:12345"
    return _NAME


def _fake_attribute(logical_id: str, type_: str, attribute: str) -> str:
    service = type_.split("::")[1].lower() if "::" in type_ else "service"
    if type_ == "AWS::Lambda::Function" and attribute == "Arn":
        return f"arn:{_PARTITION}:lambda:{_REGION}:{_ACCOUNT}:function:{_NAME}"
    if type_ == "AWS::SQS::Queue" and attribute == "Arn":
        return f"arn:{_PARTITION}:sqs:{_REGION}:{_ACCOUNT}:{'Q' * 80}"
    if attribute.endswith("Arn"):
        return f"arn:{_PARTITION}:{service}:{_REGION}:{_ACCOUNT}:{_NAME}/{_NAME}"
    if attribute.endswith("RootResourceId"):
        return "abcdef1234"
    return _NAME


def resolve(value: Any, resources: Mapping[str, Any]) -> Any:
    """Replace intrinsic functions by worst-case-length strings."""
    if isinstance(value, list):
        return [resolve(v, resources) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            pseudo = {
                "AWS::Region": _REGION,
                "AWS::AccountId": _ACCOUNT,
                "AWS::Partition": _PARTITION,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": "N" * 32,
            }
            if arg in pseudo:
                return pseudo[arg]
            return _fake_id(arg, resources.get(arg, {}).get("Type", ""))
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return _fake_attribute(logical_id, resources.get(logical_id, {}).get("Type", ""), attribute)
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(resolve(p, resources)) for p in resolve_list(parts, resources))
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{[^}]+\}", _NAME, text)
        if key == "Fn::Select":
            index, items = arg
            items = resolve_list(items, resources)
            return resolve(items[int(index)] if int(index) < len(items) else _NAME, resources)
        if key in ("Fn::ImportValue", "Fn::FindInMap", "Fn::GetAZs", "Fn::Split", "Fn::If"):
            return _NAME
    return {k: resolve(v, resources) for k, v in value.items()}


def resolve_list(value: Any, resources: Mapping[str, Any]) -> list[Any]:
    resolved = resolve(value, resources)
    return resolved if isinstance(resolved, list) else [resolved] * 6


# --- the figures -----------------------------------------------------------------------------


def _of_type(template: Mapping[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == type_}


def _function_key(function_name: Any) -> str | None:
    """The logical id of the function a Permission/EventSourceMapping names, if it is in the template."""
    if isinstance(function_name, dict):
        if "Fn::GetAtt" in function_name:
            return str(function_name["Fn::GetAtt"][0])
        if "Ref" in function_name:
            return str(function_name["Ref"])
    return None


def permission_statement(logical_id: str, props: Mapping[str, Any], resources: Mapping[str, Any]) -> dict[str, Any]:
    """The statement Lambda adds to the function's policy for one AWS::Lambda::Permission."""
    principal = resolve(props["Principal"], resources)
    statement: dict[str, Any] = {
        # CloudFormation names the statement after the physical id: stack name, logical id, suffix.
        "Sid": f"{'N' * 32}-{logical_id}-ABCDEFGHIJKL"[:100],
        "Effect": "Allow",
        "Principal": {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal},
        "Action": props["Action"],
        "Resource": f"arn:{_PARTITION}:lambda:{_REGION}:{_ACCOUNT}:function:{_NAME}",
    }
    condition: dict[str, Any] = {}
    if "SourceArn" in props:
        condition["ArnLike"] = {"AWS:SourceArn": resolve(props["SourceArn"], resources)}
    if "SourceAccount" in props:
        condition["StringEquals"] = {"AWS:SourceAccount": resolve(props["SourceAccount"], resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def function_policy_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    """Bytes of each function's resource-based policy, as the permissions in the template add up."""
    resources = template.get("Resources", {})
    statements: dict[str, list[dict[str, Any]]] = {k: [] for k in _of_type(template, "AWS::Lambda::Function")}
    for logical_id, permission in _of_type(template, "AWS::Lambda::Permission").items():
        key = _function_key(permission["Properties"]["FunctionName"])
        if key in statements:
            statements[key].append(permission_statement(logical_id, permission["Properties"], resources))
    return {
        key: len(json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": found}, separators=(",", ":")))
        for key, found in statements.items()
    }


def function_environment_sizes(template: Mapping[str, Any]) -> dict[str, int]:
    """Bytes of each function's environment variables (keys and resolved values, as JSON)."""
    resources = template.get("Resources", {})
    sizes = {}
    for key, function in _of_type(template, "AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        sizes[key] = len(json.dumps(resolve(variables, resources), separators=(",", ":")))
    return sizes


def directory_bytes(path: Path) -> int:
    """Unzipped size of a Lambda package directory (compare with LAMBDA_UNZIPPED_PACKAGE_BYTES)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def function_package_sizes(template: Mapping[str, Any], outdir: Path) -> dict[str, int]:
    """Unzipped bytes of each function's asset in ``outdir`` (functions with inline code are skipped)."""
    sizes = {}
    for key, function in _of_type(template, "AWS::Lambda::Function").items():
        asset_path = function.get("Metadata", {}).get("aws:asset:path")
        if asset_path and (outdir / asset_path).is_dir():
            sizes[key] = directory_bytes(outdir / asset_path)
    return sizes


def visibility_margins(template: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """For each SQS event source: (queue visibility timeout, 6 x its function's timeout)."""
    resources = template.get("Resources", {})
    result = {}
    for key, mapping in _of_type(template, "AWS::Lambda::EventSourceMapping").items():
        source = mapping["Properties"].get("EventSourceArn", {})
        queue_id = source.get("Fn::GetAtt", [None])[0] if isinstance(source, dict) else None
        function_id = _function_key(mapping["Properties"]["FunctionName"])
        if queue_id not in resources or function_id not in resources:
            continue
        visibility = int(resources[queue_id]["Properties"].get("VisibilityTimeout", 30))
        timeout = int(resources[function_id]["Properties"].get("Timeout", 3))
        result[key] = (visibility, VISIBILITY_TIMEOUT_FACTOR * timeout)
    return result


def fargate_sizes(template: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(cpu, memory) of each Fargate task definition."""
    result = {}
    for key, task in _of_type(template, "AWS::ECS::TaskDefinition").items():
        props = task["Properties"]
        if "FARGATE" in props.get("RequiresCompatibilities", []):
            result[key] = (int(props["Cpu"]), int(props["Memory"]))
    return result


def lambda_database_connections(template: Mapping[str, Any]) -> dict[str, int]:
    """Worst-case connections each function can hold at once: its concurrency bound (SQS
    event source maximum concurrency, else reserved concurrency) x its pool size. A function
    with no bound counts as 1000 (the default account concurrency), i.e. fails the budget."""
    from constructs_lib._runtime_interface import runtime_interface

    pool_size_env = runtime_interface().api_pool_size_env
    bounds: dict[str, int] = {}
    for mapping in _of_type(template, "AWS::Lambda::EventSourceMapping").values():
        key = _function_key(mapping["Properties"]["FunctionName"])
        limit = mapping["Properties"].get("ScalingConfig", {}).get("MaximumConcurrency")
        if key is not None and limit is not None:
            bounds[key] = int(limit)
    result = {}
    for key, function in _of_type(template, "AWS::Lambda::Function").items():
        props = function["Properties"]
        variables = props.get("Environment", {}).get("Variables", {})
        if "TRANSCODEX_DATABASE_SECRET_ARN" not in variables:
            continue
        handler = str(props.get("Handler", ""))
        if pool_size_env in variables:
            pool = int(variables[pool_size_env])
        elif handler.endswith(("handle_sweep", "migrate.handler")):
            pool = SWEEPER_POOL_SIZE
        else:
            pool = DISPATCHER_POOL_SIZE
        if handler.endswith(("handle_sweep", "migrate.handler")):
            concurrency = 1  # one scheduled run at a time (timeout < interval); one deploy at a time
        else:
            concurrency = bounds.get(key) or int(props.get("ReservedConcurrentExecutions") or 1000)
        result[key] = concurrency * pool
    return result


def max_connections(instance_class: str) -> int:
    """RDS for PostgreSQL's default: LEAST(DBInstanceClassMemory / 9531392, 5000)."""
    size = instance_class.removeprefix("db.").split(".")[-1]
    memory = DB_MEMORY_GIB[size] * 1024**3 * DB_INSTANCE_CLASS_MEMORY_SHARE
    return min(int(memory // 9531392), 5000)


def connection_budget(template: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """(instance class, Lambda worst case, connections available to the platform, worker tasks
    that still fit at WORKER_POOL_SIZE each)."""
    ((_, instance),) = _of_type(template, "AWS::RDS::DBInstance").items()
    instance_class = str(instance["Properties"]["DBInstanceClass"])
    lambda_side = sum(lambda_database_connections(template).values())
    available = max_connections(instance_class) - DB_RESERVED_CONNECTIONS
    return instance_class, lambda_side, available, max(0, (available - lambda_side) // WORKER_POOL_SIZE)


def figures(template: Mapping[str, Any], template_bytes: int, outdir: Path | None = None) -> list[Figure]:
    """Every quota figure of one template (package sizes only when ``outdir`` holds bundled assets)."""
    result = [
        Figure("template body", template_bytes, TEMPLATE_BODY_BYTES, "bytes"),
        Figure("resources", len(template.get("Resources", {})), TEMPLATE_RESOURCES),
        Figure("parameters", len(template.get("Parameters", {})), TEMPLATE_PARAMETERS),
        Figure("outputs", len(template.get("Outputs", {})), TEMPLATE_OUTPUTS),
    ]
    for key, size in sorted(function_policy_sizes(template).items()):
        result.append(Figure(f"resource-based policy of {key}", size, LAMBDA_POLICY_BYTES, "bytes"))
    for key, size in sorted(function_environment_sizes(template).items()):
        result.append(Figure(f"environment of {key}", size, LAMBDA_ENVIRONMENT_BYTES, "bytes"))
    if outdir is not None:
        for key, size in sorted(function_package_sizes(template, outdir).items()):
            result.append(Figure(f"unzipped package of {key}", size, LAMBDA_UNZIPPED_PACKAGE_BYTES, "bytes"))
    for key, (visibility, needed) in sorted(visibility_margins(template).items()):
        result.append(Figure(f"visibility timeout for {key}", visibility, needed, "s (6x timeout)", ">="))
    if _of_type(template, "AWS::RDS::DBInstance"):
        instance_class, lambda_side, available, workers = connection_budget(template)
        result.append(
            Figure(
                f"database connections of the functions on {instance_class} (room for {workers} worker tasks)",
                lambda_side,
                available,
            )
        )
    for key, (cpu, memory) in sorted(fargate_sizes(template).items()):
        allowed = FARGATE_MEMORY_BY_CPU.get(cpu, ())
        result.append(Figure(f"Fargate cpu {cpu} / memory {memory} valid ({key})", int(memory in allowed), 1, "", ">="))
    return result


def synthesize_figures(
    config: Mapping[str, Any] | None, context: Mapping[str, Any] | None = None, skip_bundling: bool = True
) -> list[Figure]:
    """Synthesize the app (with ``config`` as the ``transcodex`` context) and measure it."""
    from stacks import apply_policy_checks, create_app

    with tempfile.TemporaryDirectory(prefix="transcodex-quotas-") as outdir:
        context = {**(context or {}), **({"transcodex": dict(config)} if config else {})}
        app, stack = create_app(skip_bundling=skip_bundling, outdir=outdir, context=context)
        apply_policy_checks(app)
        assembly = app.synth()
        artifact = assembly.get_stack_by_name(stack.stack_name)
        body = Path(outdir, artifact.template_file).stat().st_size
        return figures(artifact.template, body, None if skip_bundling else Path(outdir))


def report(name: str, found: Iterable[Figure]) -> tuple[str, bool]:
    found = list(found)
    lines = [f"== {name}", *(f"  {figure}" for figure in found)]
    return "\n".join(lines), all(f.ok for f in found)


def main() -> int:
    ok = True
    for name, config, context in (
        ("default props", None, None),
        ("largest configuration", LARGEST_CONFIG, LARGEST_CONTEXT),
    ):
        text, passed = report(name, synthesize_figures(config, context))
        print(text)
        ok = ok and passed
    print("package sizes: skipped (bundling skipped; see stacks.quotas.function_package_sizes)")
    print(
        f"database connections: max_connections = LEAST(DBInstanceClassMemory/9531392, 5000), "
        f"{DB_RESERVED_CONNECTIONS} kept back (superusers, rotation, an operator); db.t4g.small: "
        f"{max_connections('db.t4g.small')}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
