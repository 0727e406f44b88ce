"""The Lambda bundles `cdk deploy` uploads, built by a synth WITHOUT TRANSCODEX_SKIP_BUNDLING.

Every function's asset must hold its handler module and the wheels of its requirements,
built for the runtime's Python (cp314 extension modules, not the host's cp311), within
Lambda's limits: 250 MB unzipped, 50 MB zipped (direct upload).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from constructs_lib._lambda import LAMBDA_RUNTIME
from stacks.app import create_app

# One xdist worker runs every test that drives podman (these and tests/e2e's image test): two
# podman processes building and running at once on one storage contend for its locks.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

UNZIPPED_LIMIT_MB = 250
ZIPPED_LIMIT_MB = 50


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("bundled")
    app, stack = create_app(skip_bundling=False, outdir=str(outdir), context={"aws:cdk:enable-asset-metadata": True})
    assembly = app.synth()
    template = json.loads(Path(assembly.directory, stack.template_file).read_text())
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function" or resource["Properties"].get("Runtime") != LAMBDA_RUNTIME.name:
            continue  # the CDK's own provider framework functions are not ours
        asset = Path(assembly.directory, resource["Metadata"]["aws:asset:path"])
        found.append({"id": logical_id, "handler": resource["Properties"]["Handler"], "dir": asset})
    return found


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _zipped_mb(folder: Path) -> float:
    with tempfile.TemporaryFile() as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder))
        return fh.tell() / 1e6


def _requirement_names(folder: Path) -> set[str]:
    names = set()
    for line in (folder / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("-", "_"))
    return names


def _installed(folder: Path) -> set[str]:
    return {p.name.split("-", 1)[0].lower().replace("-", "_") for p in folder.glob("*.dist-info") if p.is_dir()}


def test_given_a_bundled_synth_when_its_functions_are_read_then_every_one_of_ours_has_a_bundle(
    bundles: list[dict[str, Any]],
) -> None:
    handlers = {b["handler"] for b in bundles}
    assert {
        "runtime.api.app.app",
        "runtime.dispatcher.handler.handle_sqs",
        "runtime.dispatcher.handler.handle_dlq",
        "runtime.dispatcher.handler.handle_task_state_change",
        "runtime.dispatcher.handler.handle_sweep",
        "runtime.dispatcher.migrate.handler",
    } <= handlers
    assert all(b["dir"].is_dir() for b in bundles)


def test_given_each_bundle_when_inspected_then_handler_and_dependencies_for_the_runtime_are_inside(
    bundles: list[dict[str, Any]],
) -> None:
    tag = "cpython-" + LAMBDA_RUNTIME.name.removeprefix("python").replace(".", "")
    for bundle in bundles:
        folder: Path = bundle["dir"]
        module, _attr = bundle["handler"].rsplit(".", 1)
        assert (folder / (module.replace(".", "/") + ".py")).is_file(), bundle
        assert (folder / "runtime" / "shared" / "__init__.py").is_file(), bundle
        missing = _requirement_names(folder) - _installed(folder)
        assert not missing, f"{bundle['id']}: requirements not installed: {missing}"
        extensions = [p.name for p in folder.rglob("*.so") if "cpython-" in p.name]
        assert extensions and all(tag in name for name in extensions), (bundle["id"], extensions[:5])


def test_given_each_bundle_when_measured_then_within_lambda_size_limits(bundles: list[dict[str, Any]]) -> None:
    seen: dict[Path, tuple[float, float]] = {}
    for bundle in bundles:
        folder: Path = bundle["dir"]
        if folder not in seen:
            seen[folder] = (_size_mb(folder), _zipped_mb(folder))
        unzipped, zipped = seen[folder]
        print(f"{bundle['id']}: {unzipped:.1f} MB unzipped, {zipped:.1f} MB zipped ({folder.name[:18]})")
        assert unzipped < UNZIPPED_LIMIT_MB and zipped < ZIPPED_LIMIT_MB, bundle["id"]


# --- the bundles under the Lambda runtime's Python ------------------------------------------

#: A Lambda context object, shared by the probes below.
LAMBDA_CONTEXT = """
class Context:
    aws_request_id = "req-1"
    function_name = "api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    def get_remaining_time_in_millis(self):
        return 30000
"""

#: Run inside the Lambda-Python stand-in: import each handler from /var/task, answer a health
#: request shaped like API Gateway's REST proxy event through the API's handler.
PROBE = (
    LAMBDA_CONTEXT
    + r"""
import importlib, json, sys
handlers = json.loads(sys.argv[1])
result = {"python": sys.version.split()[0], "handlers": {}}
for spec in handlers:
    module, attr = spec.rsplit(".", 1)
    result["handlers"][spec] = callable(getattr(importlib.import_module(module), attr))
if "runtime.api.app.app" in handlers:
    from runtime.api.app import app
    event = {"resource": "/health", "path": "/health", "httpMethod": "GET",
             "headers": {"Host": "api.example"}, "multiValueHeaders": {"Host": ["api.example"]},
             "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
             "requestContext": {"resourcePath": "/health", "httpMethod": "GET", "stage": "v1",
                                "requestId": "req-1", "identity": {"sourceIp": "127.0.0.1"}}}
    result["health"] = app(event, Context())
print(json.dumps(result))
"""
)


@pytest.fixture(scope="module")
def lambda_python() -> str:
    from runtime.local import images

    if shutil.which("podman") is None and shutil.which("docker") is None:
        pytest.skip("needs podman (scripts/system-deps.sh installs it) or docker")
    return images.build_lambda_python_image(LAMBDA_RUNTIME.name.removeprefix("python"))


def _as_lambda_unpacks_it(folder: Path, into: Path) -> Path:
    """The bundle zipped and unzipped, as Lambda does (readable by the sandbox user, not 0700)."""
    with tempfile.TemporaryFile() as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder))
        with zipfile.ZipFile(fh) as archive:
            archive.extractall(into)
    for path in [into, *into.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return into


def test_given_each_bundle_when_run_under_the_runtimes_python_then_every_handler_imports_and_the_api_answers(
    bundles: list[dict[str, Any]], lambda_python: str, tmp_path: Path
) -> None:
    from runtime.local import images

    by_dir: dict[Path, list[str]] = {}
    for bundle in bundles:
        by_dir.setdefault(bundle["dir"], []).append(bundle["handler"])
    for index, (folder, handlers) in enumerate(sorted(by_dir.items())):
        task = _as_lambda_unpacks_it(folder, tmp_path / f"task{index}")
        proc = subprocess.run(
            [images.engine(), "run", "--rm", "--pull=never", "--network=none",
             "-v", f"{task}:/var/task:ro,z",  # PYTHONPATH /var/task:/var/runtime is the image's, as on Lambda
             "-e", "AWS_REGION=us-east-1", "-e", "AWS_DEFAULT_REGION=us-east-1",
             "-e", "AWS_EC2_METADATA_DISABLED=true", "-e", "AWS_ACCESS_KEY_ID=test", "-e", "AWS_SECRET_ACCESS_KEY=test",
             lambda_python, "-c", PROBE, json.dumps(handlers)],
            capture_output=True, text=True, env=images.engine_env(), timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{folder.name[:18]} under Python {result['python']}: {sorted(result['handlers'])}")
        assert result["python"].startswith(LAMBDA_RUNTIME.name.removeprefix("python") + ".")
        assert result["handlers"] == dict.fromkeys(handlers, True)
        if "health" in result:
            assert result["health"]["statusCode"] == 200
            assert json.loads(result["health"]["body"]) == {"status": "ok"}


MIGRATE_PROBE = r"""
import json, sys
from runtime.dispatcher.migrate import handler
from runtime.shared.migrate import content_hash
shipped = content_hash()  # the hash the template carries: only it applies (a rollback's old one is a no-op)
base = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Transcodex/1",
        "RequestId": "req-1", "LogicalResourceId": "Migrations", "ResourceType": "Custom::Migrations",
        "ResourceProperties": {"ServiceToken": "x", "MigrationsHash": shipped}}
answers = [handler({**base, "RequestType": "Create"}, None),
           handler({**base, "RequestType": "Update", "PhysicalResourceId": "transcodex-migrations",
                    "OldResourceProperties": {"MigrationsHash": "h0"}}, None),
           handler({**base, "RequestType": "Delete", "PhysicalResourceId": "transcodex-migrations"}, None)]
print(json.dumps(answers))
"""


def test_given_the_migrations_bundle_when_cfn_events_arrive_under_the_runtimes_python_then_schema_applied(
    bundles: list[dict[str, Any]], lambda_python: str, postgres_server: Any, tmp_path: Path
) -> None:
    import psycopg

    from runtime.local import images

    url = postgres_server.create_database(f"bundle_{tmp_path.name[-8:].replace('-', '_').lower()}")
    folder = next(b["dir"] for b in bundles if b["handler"] == "runtime.dispatcher.migrate.handler")
    task = _as_lambda_unpacks_it(folder, tmp_path / "task")
    proc = subprocess.run(
        [images.engine(), "run", "--rm", "--pull=never", "--network=host",  # the test PostgreSQL on 127.0.0.1
         "-v", f"{task}:/var/task:ro,z", "-e", f"TRANSCODEX_DATABASE_URL={url}",
         "-e", "AWS_REGION=us-east-1", "-e", "AWS_EC2_METADATA_DISABLED=true",
         lambda_python, "-c", MIGRATE_PROBE],
        capture_output=True, text=True, env=images.engine_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    create, update, delete = json.loads(proc.stdout.strip().splitlines()[-1])

    assert create["PhysicalResourceId"] == update["PhysicalResourceId"] == delete["PhysicalResourceId"]
    assert create["Data"]["Applied"] and update["Data"]["Applied"] == ""  # Update finds nothing pending
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"jobs", "uploads", "users"} <= tables  # Delete kept the schema


DISPATCHER_PROBE = r"""
import json, sys
from runtime.dispatcher import handler
job_id = sys.argv[1]
class Context:
    def get_remaining_time_in_millis(self):
        return 60000
def record(message_id, body):
    return {"messageId": message_id, "receiptHandle": "rh-" + message_id, "body": body,
            "attributes": {"ApproximateReceiveCount": "5", "SentTimestamp": "1700000000000"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:transcodex-jobs-dlq", "awsRegion": "us-east-1"}
body = json.dumps({"version": 1, "job_id": job_id})
out = {"dlq": handler.handle_dlq({"Records": [record("m1", body)]}, Context())}
running = {"version": "0", "id": "e1", "detail-type": "ECS Task State Change", "source": "aws.ecs",
           "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
           "resources": ["arn:aws:ecs:us-east-1:123456789012:task/c/abc"],
           "detail": {"lastStatus": "RUNNING", "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/abc",
                      "containers": [{"name": "worker", "exitCode": None}],
                      "overrides": {"containerOverrides": [{"name": "worker",
                                     "environment": [{"name": "JOB_ID", "value": job_id}]}]}}}
out["task_running"] = handler.handle_task_state_change(running, Context())
handler.reset()
print(json.dumps(out))
"""


def test_given_the_dispatcher_bundle_when_aws_shaped_events_arrive_under_the_runtimes_python_then_jobs_settle(
    bundles: list[dict[str, Any]], lambda_python: str, database_url: str, db: Any, tmp_path: Path
) -> None:
    import psycopg
    from psycopg.rows import dict_row

    from runtime.local import images
    from tests.factories import insert_job

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        job_id = str(insert_job(conn)["id"])
    folder = next(b["dir"] for b in bundles if b["handler"] == "runtime.dispatcher.handler.handle_dlq")
    task = _as_lambda_unpacks_it(folder, tmp_path / "task")
    proc = subprocess.run(
        [images.engine(), "run", "--rm", "--pull=never", "--network=host",  # the test PostgreSQL on 127.0.0.1
         "-v", f"{task}:/var/task:ro,z", "-e", f"TRANSCODEX_DATABASE_URL={database_url}",
         "-e", "AWS_REGION=us-east-1", "-e", "AWS_EC2_METADATA_DISABLED=true",
         lambda_python, "-c", DISPATCHER_PROBE, job_id],
        capture_output=True, text=True, env=images.engine_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["dlq"] == {"batchItemFailures": []}
    assert out["task_running"]["failed"] is False  # only STOPPED tasks settle a job
    with psycopg.connect(database_url) as conn:
        status, code = conn.execute("SELECT status, error_code FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert (status, code) == ("FAILED", "DISPATCH_FAILED")


#: The seed's whole flow through the API bundle's handler, each request an API Gateway REST proxy
#: event (multi-value headers; the login body base64-encoded, as binary media types deliver it);
#: the upload's PUT goes to the presigned URL over HTTP, as a browser's would.
API_FLOW_PROBE = (
    LAMBDA_CONTEXT
    + r"""
import base64, json, sys, urllib.request, uuid
from runtime.api.app import app
image = base64.b64decode(sys.argv[1])
def call(method, resource, path, body=None, token=None, b64=False, params=None):
    headers = {"Host": "api.example", "Content-Type": "application/json", "User-Agent": "probe"}
    if token:
        headers["Authorization"] = "Bearer " + token
    raw = None if body is None else json.dumps(body)
    if raw is not None and b64:
        raw = base64.b64encode(raw.encode()).decode()
    event = {"resource": resource, "path": path, "httpMethod": method, "headers": headers,
             "multiValueHeaders": {k: [v] for k, v in headers.items()},
             "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": params, "stageVariables": None, "body": raw, "isBase64Encoded": b64,
             "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "v1",
                                "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"}}}
    answer = app(event, Context())
    text = answer["body"]
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return answer["statusCode"], (json.loads(text) if text else None)
out = {}
email, password = f"probe-{uuid.uuid4().hex[:8]}@example.com", "pw-probe-secret"
out["signup"], _ = call("POST", "/users", "/users", {"name": "Probe", "username": "probe_" + uuid.uuid4().hex[:6],
                                                      "email": email, "password": password})
out["login"], session = call("POST", "/sessions", "/sessions", {"email": email, "password": password}, b64=True)
token = session["access_token"]
out["upload"], upload = call("POST", "/media/upload", "/media/upload",
                             {"file_name": "photo.png", "file_type": "IMAGE", "mime_type": "image/png"}, token)
put = urllib.request.Request(upload["presigned_url"], data=image, method="PUT", headers=upload["headers"])
with urllib.request.urlopen(put, timeout=30) as answer:
    out["put"] = answer.status
out["process"], job = call("POST", "/media/process", "/media/process",
                           {"job_type": "IMAGE", "upload_id": upload["upload_id"],
                            "operations": {"ROTATE": "90"}}, token)
job_id = job.get("job_id") or job.get("id")
out["status"], status = call("GET", "/media/status/{job_id}", "/media/status/" + job_id, token=token,
                             params={"job_id": job_id})
out["job_status"] = status["status"]
out["download"], _ = call("GET", "/media/download/{job_id}", "/media/download/" + job_id, token=token,
                          params={"job_id": job_id})
out["job_id"] = job_id
print(json.dumps(out))
"""
)


def test_given_the_api_bundle_when_the_seed_flow_arrives_as_gateway_events_under_the_runtimes_python_then_it_works(
    bundles: list[dict[str, Any]], lambda_python: str, settings: Any, tmp_path: Path
) -> None:
    import base64

    import pyvips

    from runtime.local import images
    from runtime.shared.aws import client

    png = pyvips.Image.black(32, 16).write_to_buffer(".png")
    folder = next(b["dir"] for b in bundles if b["handler"] == "runtime.api.app.app")
    task = _as_lambda_unpacks_it(folder, tmp_path / "task")
    env = {
        "TRANSCODEX_DATABASE_URL": settings.database_url,
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
        "TRANSCODEX_QUEUE_URL": settings.queue_url,
        "TRANSCODEX_JWT_SECRET": "bundle-secret-" + "x" * 40,
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    flags = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    proc = subprocess.run(
        [images.engine(), "run", "--rm", "--pull=never", "--network=host",  # PostgreSQL, SeaweedFS, moto on 127.0.0.1
         "-v", f"{task}:/var/task:ro,z", *flags,
         lambda_python, "-c", API_FLOW_PROBE, base64.b64encode(png).decode()],
        capture_output=True, text=True, env=images.engine_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    codes = {k: out[k] for k in ("signup", "login", "upload", "put", "process", "status", "download")}
    assert codes == {
        "signup": 201,
        "login": 201,
        "upload": 201,
        "put": 200,
        "process": 201,
        "status": 200,
        "download": 409,
    }, out  # no worker runs here: the download says the job is not finished
    assert out["job_status"] == "QUEUED"
    sqs = client("sqs", settings)
    messages = sqs.receive_message(QueueUrl=settings.queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(m["Body"])["job_id"] for m in messages] == [out["job_id"]]
