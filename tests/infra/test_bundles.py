"""The Lambda bundles `cdk deploy` uploads, built by a synth WITHOUT TRANSCODEX_SKIP_BUNDLING.

Every function's asset must hold its handler module and the wheels of its requirements,
built for the runtime's Python (cp314 extension modules, not the host's cp311), within
Lambda's limits: 250 MB unzipped, 50 MB zipped (direct upload).
"""

from __future__ import annotations

import ast
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from constructs_lib._lambda import LAMBDA_RUNTIME
from runtime.local import images
from stacks.app import create_app
from tests.dispatcher import conftest as dispatcher_fixtures
from tests.import_graph import imported_names, module_names

# One xdist worker runs every test that drives podman (these and tests/e2e's image test): two
# podman processes building and running at once on one storage contend for its locks.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

UNZIPPED_LIMIT_MB = 250
ZIPPED_LIMIT_MB = 50

# The dispatcher tests' moto ECS cluster, job factory, queue and handler environment.
ecs = dispatcher_fixtures.ecs
ecs_settings = dispatcher_fixtures.ecs_settings
lambda_env = dispatcher_fixtures.lambda_env
make_job = dispatcher_fixtures.make_job
queue = dispatcher_fixtures.queue


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every Lambda function of a bundled synth: logical id, runtime, handler and asset folder."""
    outdir = tmp_path_factory.mktemp("bundled")
    app, stack = create_app(skip_bundling=False, outdir=str(outdir), context={"aws:cdk:enable-asset-metadata": True})
    assembly = app.synth()
    template = json.loads(Path(assembly.directory, stack.template_file).read_text())
    return [
        {
            "id": logical_id,
            "runtime": resource["Properties"].get("Runtime"),
            "handler": resource["Properties"].get("Handler"),
            "dir": Path(assembly.directory, resource["Metadata"]["aws:asset:path"]),
        }
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    ]


@pytest.fixture(scope="module")
def bundles(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our functions (the CDK's own provider framework functions are not ours)."""
    return [f for f in functions if f["runtime"] == LAMBDA_RUNTIME.name]


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


#: What only the local platform runs, none of which may ship to Lambda: its own package, chalice's
#: local server (which the local HTTP wrapper leans on), and starting processes on the machine
#: (the local launcher's workers).
LOCAL_ONLY = ("runtime.local", "chalice.local", "subprocess")


def _local_only(name: str) -> str | None:
    """The LOCAL_ONLY entry ``name`` is or is inside, if any."""
    return next((prefix for prefix in LOCAL_ONLY if name == prefix or name.startswith(prefix + ".")), None)


def test_given_each_bundle_when_its_runtime_modules_are_read_then_none_is_local_only(
    bundles: list[dict[str, Any]],
) -> None:
    for folder in sorted({b["dir"] for b in bundles}):
        modules = module_names(folder / "runtime")
        offenders = sorted(
            {
                f"{name} imports {_local_only(target)}"
                for name, path in modules.items()
                for target in imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py")
                if _local_only(target)
            }
        )

        assert "runtime.shared.db" in modules and len(modules) > 10, folder  # the scan saw the bundle
        assert [name for name in modules if _local_only(name)] == [], folder
        assert offenders == [], f"{folder.name}: local-only code in a Lambda bundle: {offenders}"


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


#: Run inside the Lambda-Python stand-in as Lambda runs a handler: ``argv[1]`` is a JSON list of
#: ``[handler, event]``; each answer is ``{"Payload": result}``, or, when the handler raises,
#: ``{"FunctionError": "Unhandled", "Payload": {errorMessage, errorType, stackTrace}}`` as Invoke returns.
INVOKE = (
    LAMBDA_CONTEXT
    + r"""
import importlib, json, sys, traceback
answers = []
for spec, event in json.loads(sys.argv[1]):
    module, attr = spec.rsplit(".", 1)
    try:
        answers.append({"Payload": getattr(importlib.import_module(module), attr)(event, Context())})
    except Exception as error:
        answers.append({"FunctionError": "Unhandled", "Payload": {
            "errorMessage": str(error), "errorType": type(error).__name__,
            "stackTrace": traceback.format_tb(error.__traceback__)}})
print(json.dumps(answers, default=str))
"""
)
#: What every invocation sees, as in a function's execution environment (dummy keys: the moto
#: and SeaweedFS endpoints take any).
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def _bundle_of(bundles: list[dict[str, Any]], handler: str, into: Path) -> Path:
    """The bundle that holds ``handler``, unpacked as Lambda unpacks it."""
    return _as_lambda_unpacks_it(next(b["dir"] for b in bundles if b["handler"] == handler), into)


def _invoke_argv(task: Path, image: str, env: dict[str, str]) -> list[str]:
    """``run`` of the runtime's Python on an unpacked bundle: host networking (PostgreSQL, moto
    and SeaweedFS listen on 127.0.0.1); the calls come as the last argument (see INVOKE)."""
    flags = [arg for name, value in {**LAMBDA_ENV, **env}.items() for arg in ("-e", f"{name}={value}")]
    return [images.engine(), "run", "--rm", "--pull=never", "--network=host",
            "-v", f"{task}:/var/task:ro,z", *flags, image, "-c", INVOKE]  # fmt: skip


def _invoke(task: Path, image: str, env: dict[str, str], *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [*_invoke_argv(task, image, env), json.dumps(calls)],
        capture_output=True, text=True, env=images.engine_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sqs_record(message_id: str, body: str, queue_arn: str, receive_count: int = 1) -> dict[str, Any]:
    return {"messageId": message_id, "receiptHandle": "rh-" + message_id, "body": body,
            "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1700000000000",
                           "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": "us-east-1"}  # fmt: skip


def test_given_the_dispatcher_bundle_when_an_sqs_batch_arrives_under_the_runtimes_python_then_bad_records_fail_alone(
    bundles: list[dict[str, Any]], lambda_python: str, ecs: Any, ecs_settings: Any, db: Any, make_job: Any,
    queue: Any, tmp_path: Path,
) -> None:  # fmt: skip
    from runtime.shared.status import JobStatus
    from tests.dispatcher.conftest import body_for, cluster_tasks, get_job, settings_env

    job = make_job()
    [bad_id] = queue.send("{not json")
    queue.send(body_for(job))
    event = queue.event(queue.receive(expect=2))  # the batch Lambda's event source mapping delivers
    task = _bundle_of(bundles, "runtime.dispatcher.handler.handle_sqs", tmp_path / "task")

    [answer] = _invoke(task, lambda_python, settings_env(ecs_settings),
                       ("runtime.dispatcher.handler.handle_sqs", event))  # fmt: skip

    assert answer == {"Payload": {"batchItemFailures": [{"itemIdentifier": bad_id}]}}
    [run] = cluster_tasks(ecs, ecs_settings)  # moto's ECS: RunTask made by the bundle's boto3 call
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["task_arn"], stored["dispatch_count"]) == (JobStatus.DISPATCHED, run["taskArn"], 1)
    [override] = run["overrides"]["containerOverrides"]
    assert {"name": "JOB_ID", "value": str(job["id"])} in override["environment"]


def test_given_a_running_job_when_its_task_stopped_event_arrives_under_the_runtimes_python_then_it_fails_with_reason(
    bundles: list[dict[str, Any]], lambda_python: str, lambda_env: Any, ecs: Any, ecs_settings: Any, db: Any,
    make_job: Any, queue: Any, tmp_path: Path,
) -> None:  # fmt: skip
    from runtime.dispatcher import handler
    from runtime.shared.repo import jobs as jobs_repo
    from runtime.shared.status import ErrorCode, JobStatus
    from tests.dispatcher.conftest import body_for, cluster_tasks, get_job, settings_env, stopped_event

    job = make_job()
    queue.send(body_for(job))
    assert handler.handle_sqs(queue.event(queue.receive(expect=1)), None) == {"batchItemFailures": []}
    [run] = cluster_tasks(ecs, ecs_settings)
    with db.connection() as conn:
        assert jobs_repo.transition(conn, str(job["id"]), JobStatus.RUNNING) is not None
    event = stopped_event(
        run, stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited",
        containers=[{"name": "worker", "lastStatus": "STOPPED", "exitCode": 2}],
    )  # fmt: skip
    task = _bundle_of(bundles, "runtime.dispatcher.handler.handle_task_state_change", tmp_path / "task")

    [answer] = _invoke(task, lambda_python, settings_env(ecs_settings),
                       ("runtime.dispatcher.handler.handle_task_state_change", event))  # fmt: skip

    assert answer == {"Payload": {"failed": True, "job_id": str(job["id"])}}
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.TASK_STOPPED)
    assert "exited with code 2" in stored["error_message"]


def test_given_dead_letters_and_a_running_task_when_they_arrive_under_the_runtimes_python_then_only_stops_settle(
    bundles: list[dict[str, Any]], lambda_python: str, database_url: str, db: Any, make_job: Any, tmp_path: Path
) -> None:
    from tests.dispatcher.conftest import body_for, get_job

    job = make_job()
    dlq_arn = "arn:aws:sqs:us-east-1:123456789012:transcodex-jobs-dlq"
    dead = {"Records": [_sqs_record("m1", body_for(job), dlq_arn, receive_count=5)]}
    running = {"version": "0", "id": "e1", "detail-type": "ECS Task State Change", "source": "aws.ecs",
               "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
               "resources": ["arn:aws:ecs:us-east-1:123456789012:task/c/abc"],
               "detail": {"lastStatus": "RUNNING", "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/abc",
                          "containers": [{"name": "worker", "exitCode": None}],
                          "overrides": {"containerOverrides": [{"name": "worker",
                                         "environment": [{"name": "JOB_ID", "value": str(job["id"])}]}]}}}  # fmt: skip
    task = _bundle_of(bundles, "runtime.dispatcher.handler.handle_dlq", tmp_path / "task")

    dlq, task_running = _invoke(
        task, lambda_python, {"TRANSCODEX_DATABASE_URL": database_url},
        ("runtime.dispatcher.handler.handle_dlq", dead),
        ("runtime.dispatcher.handler.handle_task_state_change", running),
    )  # fmt: skip

    assert dlq == {"Payload": {"batchItemFailures": []}}
    assert task_running["Payload"]["failed"] is False  # only STOPPED tasks settle a job
    stored = get_job(db, job["id"])
    assert (stored["status"], stored["error_code"]) == ("FAILED", "DISPATCH_FAILED")


def test_given_stale_rows_when_the_scheduled_event_arrives_under_the_runtimes_python_then_the_sweeper_settles_them(
    bundles: list[dict[str, Any]], lambda_python: str, settings: Any, db: Any, tmp_path: Path
) -> None:
    from runtime.shared.aws import client
    from runtime.shared.repo import jobs as jobs_repo
    from runtime.shared.repo import uploads as uploads_repo
    from runtime.shared.status import ErrorCode, JobStatus
    from tests.dispatcher.conftest import get_job
    from tests.factories import insert_job, insert_upload, insert_user

    with db.connection() as conn:
        user_id = insert_user(conn)
        arrived, abandoned = insert_upload(conn, user_id), insert_upload(conn, user_id)
        lost = insert_job(conn, user_id=user_id)
        jobs_repo.transition(conn, str(lost["id"]), JobStatus.RUNNING)
        # a day old: past the URL lifetime and grace, past the worker's wall time and grace
        conn.execute("UPDATE uploads SET created_at = now() - interval '1 day' WHERE id = ANY(%s)",
                     ([arrived["id"], abandoned["id"]],))  # fmt: skip
        conn.execute("UPDATE jobs SET started_at = now() - interval '1 day' WHERE id = %s", (lost["id"],))
    client("s3", settings).put_object(Bucket=settings.input_bucket, Key=arrived["object_key"], Body=b"x" * 321)
    scheduled = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": "123456789012", "time": "2026-01-01T00:00:00Z",
                 "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/transcodex-sweep"],
                 "detail": {}}  # fmt: skip
    env = {
        "TRANSCODEX_DATABASE_URL": settings.database_url,
        "TRANSCODEX_QUEUE_URL": settings.queue_url,
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3,
    }
    task = _bundle_of(bundles, "runtime.dispatcher.handler.handle_sweep", tmp_path / "task")

    [answer] = _invoke(task, lambda_python, env, ("runtime.dispatcher.handler.handle_sweep", scheduled))

    assert answer == {"Payload": {"requeued": 0, "timed_out": 1, "uploads_completed": 1, "uploads_expired": 1,
                                  "oversized_deleted": 0, "media_objects_deleted": 0,
                                  "media_deletions_finished": 0, "errors": 0}}  # fmt: skip
    stored = get_job(db, lost["id"])
    assert (stored["status"], stored["error_code"]) == (JobStatus.FAILED, ErrorCode.TIMEOUT)
    with db.connection() as conn:
        settled = {u["id"]: uploads_repo.get(conn, str(u["id"])) for u in (arrived, abandoned)}
    assert (settled[arrived["id"]]["status"], settled[arrived["id"]]["size_bytes"]) == ("UPLOADED", 321)
    assert settled[abandoned["id"]]["status"] == "EXPIRED"


# --- the CDK's Docker bundling (the fallback when pip cannot bundle locally) --------------------

#: A stack with one function of the dispatcher component, synthesized in a process of its own:
#: the jsii kernel reads CDK_DOCKER from the environment it starts with.
DOCKER_SYNTH = r"""
import sys
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_ec2 as ec2, aws_logs as logs
from constructs_lib._lambda import runtime_function
app = App(outdir=sys.argv[1], context={"aws:cdk:enable-asset-metadata": True})
stack = Stack(app, "DockerBundled")
isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
    ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
runtime_function(stack, "Dispatcher", component="dispatcher", index="runtime/dispatcher/handler.py",
                 handler="handle_sqs", description="docker-bundled", vpc=vpc, vpc_subnets=isolated,
                 security_groups=[], environment={}, timeout=Duration.seconds(60), memory_size_mib=256,
                 log_retention=logs.RetentionDays.ONE_DAY)
app.synth()
"""


def test_given_docker_bundling_through_podman_when_synthesized_then_the_dispatcher_bundle_works_under_the_runtime(
    lambda_python: str, tmp_path: Path
) -> None:
    """TRANSCODEX_BUNDLING=docker: the CDK runs DOCKER_COMMAND in the build image (here the SAM
    image's stand-in, through CDK_DOCKER=podman) instead of pip on the host."""
    import time

    version = LAMBDA_RUNTIME.name.removeprefix("python")
    build_image = images.build_lambda_python_image(version, target="build")
    env = {**images.engine_env(), "CDK_DOCKER": images.engine(), "TRANSCODEX_BUNDLING": "docker",
           "TRANSCODEX_BUNDLING_IMAGE": build_image, "PYTHONPATH": str(images.ROOT)}  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", DOCKER_SYNTH, str(tmp_path / "out")],
        cwd=images.ROOT, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[bundling]" not in proc.stderr  # pip on the host never ran
    template = json.loads((tmp_path / "out" / "DockerBundled.template.json").read_text())
    [function] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    folder = tmp_path / "out" / function["Metadata"]["aws:asset:path"]
    print(f"Docker bundling via {images.engine()} in {build_image}: {took:.0f}s, {_size_mb(folder):.1f} MB")

    assert (folder / "runtime" / "dispatcher" / "handler.py").is_file()
    assert not _requirement_names(folder) - _installed(folder)
    tag = "cpython-" + version.replace(".", "")
    extensions = [p.name for p in folder.rglob("*.so") if "cpython-" in p.name]
    assert extensions and all(tag in name for name in extensions), extensions[:5]
    task = _as_lambda_unpacks_it(folder, tmp_path / "task")
    run = subprocess.run(
        [images.engine(), "run", "--rm", "--pull=never", "--network=none", "-v", f"{task}:/var/task:ro,z",
         *(arg for name, value in LAMBDA_ENV.items() for arg in ("-e", f"{name}={value}")),
         lambda_python, "-c", PROBE, json.dumps([function["Properties"]["Handler"]])],
        capture_output=True, text=True, env=images.engine_env(), timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    handlers = json.loads(run.stdout.strip().splitlines()[-1])["handlers"]
    assert handlers == {"runtime.dispatcher.handler.handle_sqs": True}


# --- migrations: CloudFormation, the CDK's provider framework, the bundle ----------------------

#: Stand-ins the CDK's provider framework (framework.js, from the synthesized assembly) is run
#: with under Node: the Lambda service's Invoke runs the migrations bundle under the runtime's
#: Python (INVOKE); CloudFormation's response URL, an https address on port 443, is sent to the
#: test's HTTP server instead (the framework's PUT is otherwise unchanged).
FAKE_LAMBDA_CLIENT = r"""
const { spawnSync } = require("child_process");
class Lambda {
  async invoke(request) {
    const argv = JSON.parse(process.env.TEST_INVOKE_ARGV);
    const calls = JSON.stringify([[process.env.TEST_HANDLER, JSON.parse(request.Payload)]]);
    const proc = spawnSync(argv[0], [...argv.slice(1), calls], { encoding: "utf8", maxBuffer: 1 << 26 });
    if (proc.status !== 0) throw new Error(`invoke failed: ${proc.stderr}`);
    const [answer] = JSON.parse(proc.stdout.trim().split("\n").pop());
    const payload = Buffer.from(JSON.stringify(answer.Payload));
    return { StatusCode: 200, FunctionError: answer.FunctionError, Payload: payload };
  }
}
module.exports = { Lambda, waitUntilFunctionActiveV2: async () => ({}) };
"""
FAKE_SFN_CLIENT = 'module.exports = { SFN: class { async startExecution() { throw new Error("no waiter"); } } };\n'
REDIRECT_RESPONSE = r"""
const http = require("http"), https = require("https");
https.request = (options, callback) =>
  http.request({ ...options, hostname: "127.0.0.1", port: Number(process.env.TEST_RESPONSE_PORT) }, callback);
"""
RUN_FRAMEWORK = (
    "require(process.argv[1]).onEvent(JSON.parse(process.argv[2]))"
    ".then(() => process.exit(0), (e) => { console.error(e); process.exit(1); })"
)


class _Responses(http.server.BaseHTTPRequestHandler):
    """CloudFormation's side of the response URL: records every PUT."""

    received: list[dict[str, Any]]

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def cfn_responses() -> Any:
    """An HTTP server on 127.0.0.1 standing in for the response URL; yields (port, received)."""
    received: list[dict[str, Any]] = []
    handler = type("Responses", (_Responses,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def test_given_the_migrations_bundle_when_cloudformation_sends_create_update_delete_then_the_responses_say_so(
    functions: list[dict[str, Any]], bundles: list[dict[str, Any]], lambda_python: str, postgres_server: Any,
    cfn_responses: tuple[int, list[dict[str, Any]]], tmp_path: Path,
) -> None:  # fmt: skip
    import psycopg

    from runtime.shared.migrate import content_hash, discover
    from scripts.jsii_node import PINNED_NODE

    node = str(PINNED_NODE) if PINNED_NODE.is_file() else shutil.which("node")
    if node is None:
        pytest.skip("needs node (the CDK's provider framework is Node.js)")
    port, received = cfn_responses
    framework = next(f["dir"] for f in functions if f["handler"] == "framework.onEvent")
    stubs = tmp_path / "node_path" / "@aws-sdk"
    for name, text in (("client-lambda", FAKE_LAMBDA_CLIENT), ("client-sfn", FAKE_SFN_CLIENT)):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "index.js").write_text(text)
    (tmp_path / "redirect.js").write_text(REDIRECT_RESPONSE)
    task = _bundle_of(bundles, "runtime.dispatcher.migrate.handler", tmp_path / "task")
    good_db = postgres_server.create_database(f"cfn_{tmp_path.name[-8:].replace('-', '_').lower()}")
    stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/Transcodex/6f1c2b70-0000-11f0-a000-0a1b2c3d4e5f"
    properties = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
                  "MigrationsHash": content_hash()}  # fmt: skip

    def cloudformation(request_type: str, url: str, **extra: Any) -> dict[str, Any]:
        """Send one request through the framework; return the response CloudFormation got."""
        request_id = f"{request_type.lower()}-{len(received)}"
        event = {"RequestType": request_type, "ServiceToken": properties["ServiceToken"],
                 "ResponseURL": f"https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/"
                                f"{request_id}?X-Amz-Signature=abc",
                 "StackId": stack, "RequestId": request_id, "LogicalResourceId": "MigrationsResource",
                 "ResourceType": "Custom::TranscodexMigrations", "ResourceProperties": properties, **extra}  # fmt: skip
        env = {
            **images.engine_env(),
            "NODE_PATH": str(tmp_path / "node_path"),
            "USER_ON_EVENT_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:migrations",
            "TEST_HANDLER": "runtime.dispatcher.migrate.handler",
            "TEST_INVOKE_ARGV": json.dumps(_invoke_argv(task, lambda_python, {"TRANSCODEX_DATABASE_URL": url})),
            "TEST_RESPONSE_PORT": str(port),
        }
        before = len(received)
        proc = subprocess.run(
            [node, "-r", str(tmp_path / "redirect.js"), "-e", RUN_FRAMEWORK, str(framework / "framework.js"),
             json.dumps(event)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        [response] = received[before:]
        assert response["path"] == f"/{request_id}?X-Amz-Signature=abc"
        return response["body"]

    created = cloudformation("Create", good_db)
    updated = cloudformation("Update", good_db, PhysicalResourceId=created["PhysicalResourceId"],
                             OldResourceProperties={**properties, "MigrationsHash": "0" * 64})  # fmt: skip
    deleted = cloudformation("Delete", good_db, PhysicalResourceId=created["PhysicalResourceId"])
    failed = cloudformation("Create", "postgresql://transcodex:x@127.0.0.1:1/transcodex?connect_timeout=5")

    common = {"StackId": stack, "LogicalResourceId": "MigrationsResource"}
    assert created == {**common, "Status": "SUCCESS", "Reason": "SUCCESS", "RequestId": "create-0",
                       "PhysicalResourceId": "transcodex-migrations",
                       "Data": {"Applied": ",".join(m.version for m in discover())}}  # fmt: skip
    assert updated == {**common, "Status": "SUCCESS", "Reason": "SUCCESS", "RequestId": "update-1",
                       "PhysicalResourceId": "transcodex-migrations", "Data": {"Applied": ""}}  # fmt: skip
    assert deleted == {**common, "Status": "SUCCESS", "Reason": "SUCCESS", "RequestId": "delete-2",
                       "PhysicalResourceId": "transcodex-migrations"}  # fmt: skip
    assert failed["Status"] == "FAILED" and failed["RequestId"] == "create-3"
    assert failed["PhysicalResourceId"] == "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
    assert "127.0.0.1" in failed["Reason"] and "port 1 failed" in failed["Reason"], failed["Reason"]
    with psycopg.connect(good_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"jobs", "uploads", "users"} <= tables  # Delete kept the schema


#: The seed's whole flow through the API bundle's handler, each request an API Gateway REST proxy
#: event (multi-value headers; the login body base64-encoded, as binary media types deliver it);
#: the upload declares its size, so its PUT (signed Content-Length) goes to the presigned URL
#: over HTTP, as a browser's would.
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
                             {"file_name": "photo.png", "file_type": "IMAGE", "mime_type": "image/png",
                              "size_bytes": len(image)}, token)
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
