"""The worker Lambda as AWS runs it: the built worker image, started with the function's
entrypoint and command (constructs_lib/worker_function.py: awslambdaric calling the handler),
in the task's box (read-only root, no capabilities), takes its invocation from a Lambda
Runtime API and posts the answer back.

No Lambda emulator is installable here (aws-lambda-rie is on neither PyPI nor npm), so the test
serves the Runtime API's invocation routes itself (``/2018-06-01/runtime/invocation/next`` and
``…/{request id}/response|error``, as the Lambda developer guide specifies them); the job runs
against the suite's real PostgreSQL and SeaweedFS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from constructs_lib.worker_function import LAMBDA_ENTRYPOINT, LAMBDA_HANDLER
from runtime.local import images

ENGINE_MISSING = shutil.which("podman") is None and shutil.which("docker") is None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.skipif(ENGINE_MISSING, reason="needs podman (scripts/system-deps.sh installs it) or docker"),
]

PREFIX = "/2018-06-01/runtime/invocation/"


@dataclass
class RuntimeApi:
    """One invocation to hand out, and what the function answered."""

    event: dict[str, Any]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    answers: list[tuple[str, Any]] = field(default_factory=list)
    answered: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    handed_out: bool = False


def _serve(api: RuntimeApi) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != PREFIX + "next":
                self.send_error(404)
                return
            if api.handed_out:  # the function asks for its next invocation: none comes
                api.stop.wait(300)
                self.send_error(503)
                return
            api.handed_out = True
            body = json.dumps(api.event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", api.request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + 600) * 1000)))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:w")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            # Lambda always sends it; awslambdaric 3.1.1 segfaults reading an invocation without it
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.rsplit("/", 1)[-1]
            api.answers.append((self.path.removeprefix(PREFIX).removesuffix("/" + kind) + ":" + kind, body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            api.answered.set()

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def worker_image() -> str:
    return images.build_worker_image()


@pytest.fixture()
def function_env(settings: Any) -> dict[str, str]:
    """What the function's configuration gives it (constructs_lib/worker_function.py), for the
    suite's services, plus what Lambda itself sets."""
    env = {name: value for name, value in os.environ.items() if name.startswith(("AWS_",))}
    env |= {
        "TRANSCODEX_DATABASE_URL": settings.database_url,
        "TRANSCODEX_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": settings.aws_endpoint_url_s3,
        "TRANSCODEX_INPUT_BUCKET": settings.input_bucket,
        "TRANSCODEX_OUTPUT_BUCKET": settings.output_bucket,
        "TMPDIR": "/tmp",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "worker",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "4096",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/worker",
        "AWS_LAMBDA_LOG_STREAM_NAME": "test",
    }
    return env


@contextmanager
def _run_function(image: str, env: dict[str, str], api: RuntimeApi) -> Iterator[subprocess.Popen[str]]:
    server = _serve(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    eng, name = images.engine(), f"transcodex-lambda-test-{uuid.uuid4().hex[:8]}"
    env = env | {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}"}
    # Lambda's box: a read-only image with /tmp the only writable folder.
    argv = [eng, "run", "--rm", "--name", name, "--network=host", "--read-only", "--cap-drop=ALL"]
    argv += ["--tmpfs", "/tmp:rw,nosuid,nodev,U" if eng == "podman" else "/tmp:rw,nosuid,nodev,mode=1777"]
    argv += [*(["--pull=never", "--read-only-tmpfs=false"] if eng == "podman" else [])]
    argv += [arg for n in sorted(env) for arg in ("-e", n)]
    argv += ["--entrypoint", LAMBDA_ENTRYPOINT[0], image, *LAMBDA_ENTRYPOINT[1:], LAMBDA_HANDLER]
    proc = subprocess.Popen(
        argv, env={**images.engine_env(), **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield proc
    finally:
        api.stop.set()
        subprocess.run([eng, "rm", "-f", "-t", "0", name], env=images.engine_env(), capture_output=True, timeout=60)
        proc.wait(60)
        server.shutdown()
        server.server_close()
        thread.join(5)


def _invoke(image: str, env: dict[str, str], event: dict[str, Any]) -> tuple[str, Any, str]:
    """Run the function in the image for one invocation; (route:kind, decoded answer, output)."""
    api = RuntimeApi(event)
    with _run_function(image, env, api) as proc:
        finished = api.answered.wait(300)
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert finished, output[-3000:]
    [(route, body)] = api.answers
    return route, json.loads(body), output


def test_given_the_built_image_with_the_functions_entrypoint_when_invoked_then_the_job_runs_and_answers(
    worker_image: str, function_env: dict[str, str], submit: Any, job_row: Any, outputs: Any, photo: Path
) -> None:
    job_id = submit(photo, "IMAGE", [{"op": "rotate", "angle": 90}, {"op": "resize", "width": 120}])

    route, answer, output = _invoke(worker_image, function_env, {"job_id": job_id})

    assert route.endswith(":response") and answer["status"] == "SUCCEEDED", (route, answer, output[-2000:])
    row = job_row(job_id)
    assert row["status"] == "SUCCEEDED" and row["compute_seconds"] > 0
    [out] = outputs(job_id)
    assert out["width"] == 120


def test_given_the_built_image_when_a_malformed_event_is_invoked_then_answered_without_a_crash(
    worker_image: str, function_env: dict[str, str]
) -> None:
    route, answer, output = _invoke(worker_image, function_env, {"job_id": "not-a-uuid"})
    assert route.endswith(":response") and answer == {"status": "INVALID_EVENT"}, output[-2000:]
