"""IAM conformance: what the recorded AWS calls need, and whether the template grants it.

The template's identity policies are resolved to concrete ARNs (fake account/region, one fake
name per logical resource) and evaluated with moto's IAM evaluator
(``moto.iam.access_control.IAMPolicy``). moto ignores ``Condition`` blocks, so conditions are
checked separately by template tests (tests/conformance/test_template.py). Key policies, bucket
policies and SCPs are not evaluated: CDK's default key policy delegates to IAM.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult

ACCOUNT = "123456789012"
REGION = "us-east-1"
_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "Transcodex",
    "AWS::NoValue": None,
}


class Resolver:
    """Concrete values for a template's intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, …)."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = template["Resources"]

    def ref(self, lid: str) -> Any:
        if lid in _PSEUDO:
            return _PSEUDO[lid]
        res = self.resources[lid]
        kind = res["Type"]
        if kind == "AWS::S3::Bucket":
            return f"bucket-{lid.lower()}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{lid}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{lid}-AbCdEf"
        if kind == "AWS::SecretsManager::SecretTargetAttachment":
            return self.resolve(res["Properties"]["SecretId"])
        if kind == "AWS::ECS::TaskDefinition":
            return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{lid}:1"
        return lid

    def get_att(self, lid: str, attr: str) -> Any:
        kind = self.resources[lid]["Type"]
        if kind == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{self.ref(lid)}"
        if kind == "AWS::SQS::Queue":
            return {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{lid}", "QueueName": lid, "QueueUrl": self.ref(lid)}[attr]
        if kind == "AWS::KMS::Key" and attr == "Arn":
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{lid}"
        if kind == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:aws:iam::{ACCOUNT}:role/{lid}"
        if kind == "AWS::ECS::Cluster" and attr == "Arn":
            return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{lid}"
        if kind == "AWS::ECS::TaskDefinition":
            return self.ref(lid)
        return f"{lid}.{attr}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(lid, attr)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(part)) for part in arg[1])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(arg[0])]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if key == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

                def sub(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name in names:
                        return str(names[name])
                    if "." in name:
                        lid, attr = name.split(".", 1)
                        return str(self.get_att(lid, attr))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
        return {k: self.resolve(v) for k, v in value.items()}


def role_policy(template: dict[str, Any], role_lid: str) -> dict[str, Any]:
    """Every identity-policy statement attached to ``role_lid``, resolved, as one document."""
    resolver = Resolver(template)
    statements: list[Any] = []
    role = template["Resources"][role_lid]
    for inline in role["Properties"].get("Policies", []):
        statements += _as_list(inline["PolicyDocument"]["Statement"])
    for res in template["Resources"].values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role_lid} in res[
            "Properties"
        ].get("Roles", []):
            statements += _as_list(res["Properties"]["PolicyDocument"]["Statement"])
    return {"Version": "2012-10-17", "Statement": resolver.resolve(statements)}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- the deployed topology ---------------------------------------------------------------------


@dataclass
class Topology:
    """The synthesized template and the logical ids the runtime's names map to."""

    template: dict[str, Any]
    roles: dict[str, str]  # component -> role logical id
    input_bucket: str
    output_bucket: str
    job_queue: str
    dead_letter_queue: str
    database_secret: str
    jwt_secret: str
    task_definition: str
    cluster: str
    #: The worker Lambda (None when the platform has none).
    worker_function: str | None = None
    #: Further roles a component's calls must be granted by: the worker's code also runs as
    #: the worker function (component -> role logical ids).
    also_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    resolver: Resolver = field(init=False)

    def __post_init__(self) -> None:
        self.resolver = Resolver(self.template)

    def policy(self, component: str) -> dict[str, Any]:
        return role_policy(self.template, self.roles[component])

    def bucket_key(self, bucket_lid: str) -> str | None:
        """The KMS key ARN a bucket encrypts with by default (None: S3-managed keys)."""
        rules = self.template["Resources"][bucket_lid]["Properties"].get("BucketEncryption", {})
        for rule in rules.get("ServerSideEncryptionConfiguration", []):
            key = rule.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
            if key is not None:
                return str(self.resolver.resolve(key))
        return None

    def secret_key(self, secret_lid: str) -> str | None:
        res = self.template["Resources"][secret_lid]
        if res["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
            return self.secret_key(res["Properties"]["SecretId"]["Ref"])
        key = res["Properties"].get("KmsKeyId")
        return None if key is None else str(self.resolver.resolve(key))


def synth_topology() -> Topology:
    """Synthesize the default stack (bundling skipped, as tests/infra do) and name its parts."""
    from stacks import create_app

    outdir = tempfile.mkdtemp(prefix="transcodex-conformance-")
    app, stack = create_app(skip_bundling=True, outdir=outdir)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    p = stack.platform

    def lid(construct: Any) -> str:
        child = getattr(construct, "node", construct).default_child or construct
        return str(stack.resolve(stack.get_logical_id(child)))

    return Topology(
        template=template,
        roles={
            "api": lid(p.api.function.role),
            "dispatcher": lid(p.dispatcher.queue_function.role),
            "dead-letter": lid(p.dispatcher.dead_letter_function.role),
            "task-state": lid(p.dispatcher.task_state_function.role),
            "sweeper": lid(p.dispatcher.sweep_function.role),
            "migrations": lid(p.migrations.function.role),
            "worker": lid(p.worker.task_role),
        },
        input_bucket=lid(p.storage.input_bucket),
        output_bucket=lid(p.storage.output_bucket),
        job_queue=lid(p.job_queue.queue),
        dead_letter_queue=lid(p.job_queue.dead_letter_queue),
        database_secret=str(stack.resolve(p.database.secret.secret_arn)["Ref"]),
        jwt_secret=lid(p.api.jwt_secret),
        task_definition=lid(p.worker.task_definition),
        cluster=lid(p.worker.cluster),
        worker_function=lid(p.worker_function.function) if p.worker_function else None,
        also_roles={"worker": (lid(p.worker_function.function.role),)} if p.worker_function else {},
    )


# --- what a call needs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    why: str


@dataclass(frozen=True)
class Call:
    component: str
    service: str
    operation: str
    params: dict[str, Any]
    site: str
    presigned: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Call:
        return cls(
            component=record["component"],
            service=record["service"],
            operation=record["operation"],
            params=record.get("params", {}),
            site=record.get("site", "?"),
            presigned=record.get("presigned"),
        )


class Unmapped(Exception):
    """A recorded name that matches no template resource (the mapping needs a rule)."""


_S3_ACTION = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
    "CopyObject": "s3:PutObject",
}
_S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject"}
#: Every runtime read tells a missing key from an error (worker input, API HEAD and playlists,
#: sweeper): S3 answers 404 instead of 403 only with s3:ListBucket.
_S3_MUST_SEE_404 = {"HeadObject", "GetObject"}
_SQS_ACTION = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "GetQueueUrl": "sqs:GetQueueUrl",
}


def needs(call: Call, topo: Topology) -> list[Need]:
    """The IAM actions and resource ARNs ``call`` needs, implied ones included."""
    r = topo.resolver
    if call.service == "s3":
        bucket_lid = _bucket(call.params.get("Bucket", ""), topo)
        bucket_arn = r.get_att(bucket_lid, "Arn")
        out: list[Need] = []
        keys = call.params.get("Keys") or ([call.params["Key"]] if "Key" in call.params else [])
        if call.operation == "ListObjectsV2" or call.operation == "ListObjects":
            out.append(Need("s3:ListBucket", bucket_arn, f"list prefix {call.params.get('Prefix', '')!r}"))
        elif call.operation == "DeleteObjects":
            out += [Need("s3:DeleteObject", f"{bucket_arn}/{k}", "DeleteObjects") for k in keys]
        elif call.operation in _S3_ACTION:
            out += [Need(_S3_ACTION[call.operation], f"{bucket_arn}/{k}", call.operation) for k in keys]
        else:
            raise Unmapped(f"no IAM mapping for s3:{call.operation} ({call.site})")
        if call.operation in _S3_MUST_SEE_404 and not call.presigned:
            out.append(Need("s3:ListBucket", bucket_arn, f"{call.operation} must see 404 for a missing key"))
        key = topo.bucket_key(bucket_lid)
        if key and call.operation in _S3_WRITES:
            out.append(Need("kms:GenerateDataKey", key, f"SSE-KMS write ({call.operation})"))
        if key and call.operation in ("GetObject", "HeadObject", "UploadPart", "CompleteMultipartUpload"):
            # Multipart parts are encrypted under the upload's data key, which must be decrypted.
            out.append(Need("kms:Decrypt", key, f"SSE-KMS read ({call.operation})"))
        return out
    if call.service == "sqs":
        if call.operation not in _SQS_ACTION:
            raise Unmapped(f"no IAM mapping for sqs:{call.operation} ({call.site})")
        queue = _queue(call.params.get("QueueUrl", ""), topo)
        return [Need(_SQS_ACTION[call.operation], r.get_att(queue, "Arn"), call.operation)]
    if call.service == "ecs":
        task_def = r.ref(topo.task_definition)
        if call.operation == "RunTask":
            props = topo.template["Resources"][topo.task_definition]["Properties"]
            out = [Need("ecs:RunTask", task_def, "RunTask")]
            for role_prop in ("TaskRoleArn", "ExecutionRoleArn"):
                out.append(Need("iam:PassRole", str(r.resolve(props[role_prop])), f"RunTask passes the {role_prop}"))
            if call.params.get("tags"):
                out.append(Need("ecs:TagResource", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{topo.cluster}/t", "tags"))
            return out
        if call.operation == "StopTask":
            return [Need("ecs:StopTask", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{topo.cluster}/t", "StopTask")]
        if call.operation == "DescribeTasks":
            return [Need("ecs:DescribeTasks", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{topo.cluster}/t", "DescribeTasks")]
        raise Unmapped(f"no IAM mapping for ecs:{call.operation} ({call.site})")
    if call.service == "lambda" and call.operation in ("Invoke", "InvokeAsync"):
        if topo.worker_function is None:
            raise Unmapped(f"lambda:{call.operation} but the platform has no worker function ({call.site})")
        return [Need("lambda:InvokeFunction", r.get_att(topo.worker_function, "Arn"), call.operation)]
    if call.service == "secretsmanager" and call.operation == "GetSecretValue":
        secret = topo.jwt_secret if "jwt" in call.params.get("SecretId", "").lower() else topo.database_secret
        return secret_needs(secret, topo, "GetSecretValue")
    raise Unmapped(f"no IAM mapping for {call.service}:{call.operation} ({call.site})")


def secret_needs(secret_lid: str, topo: Topology, why: str) -> list[Need]:
    out = [Need("secretsmanager:GetSecretValue", str(topo.resolver.ref(secret_lid)), why)]
    key = topo.secret_key(secret_lid)
    if key:
        out.append(Need("kms:Decrypt", key, f"{why} of a secret encrypted with a customer key"))
    return out


def _bucket(name: str, topo: Topology) -> str:
    # Names the tests (input-<id>, output-<id>) and the local platform (transcodex-input) use;
    # tests/api/test_wiring.py points the input bucket at a missing one to make S3 fail.
    if "input" in name or name == "no-such-bucket-anywhere":
        return topo.input_bucket
    if "output" in name:
        return topo.output_bucket
    raise Unmapped(f"bucket {name!r} is neither the input nor the output bucket")


def _queue(url: str, topo: Topology) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if "dlq" in name:
        return topo.dead_letter_queue
    if "jobs" in name:
        return topo.job_queue
    raise Unmapped(f"queue {url!r} is neither the job queue nor its dead-letter queue")


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    component: str
    action: str
    resource: str
    why: str
    site: str

    def __str__(self) -> str:
        return f"{self.component}: {self.action} on {self.resource} ({self.why}) at {self.site}"


def violations(calls: Iterable[Call], topo: Topology) -> list[Violation]:
    """Every (component, action, resource) a call needs that the component's role does not grant,
    one per distinct action and call site."""
    policies: dict[str, IAMPolicy] = {}
    found: dict[tuple[str, str, str], Violation] = {}

    def policy_of(role_lid: str) -> IAMPolicy:
        if role_lid not in policies:
            policies[role_lid] = IAMPolicy(json.dumps(role_policy(topo.template, role_lid)))
        return policies[role_lid]

    for call in calls:
        if call.component not in topo.roles:
            continue
        roles = (topo.roles[call.component], *topo.also_roles.get(call.component, ()))
        for need in needs(call, topo):
            refusing = [
                role_lid
                for role_lid in roles
                if policy_of(role_lid).is_action_permitted(need.action, need.resource) != PermissionResult.PERMITTED
            ]
            if refusing:
                why = need.why if refusing == [roles[0]] else f"{need.why}; refused by {', '.join(refusing)}"
                found.setdefault(
                    (call.component, need.action, call.site),
                    Violation(call.component, need.action, need.resource, why, call.site),
                )
    return sorted(found.values(), key=str)


def read_calls(directory: Path) -> Iterator[Call]:
    """The calls recorded under ``directory`` by components (the test harness's are skipped)."""
    for path in sorted(directory.glob("calls-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("component"):
                    yield Call.from_record(record)
