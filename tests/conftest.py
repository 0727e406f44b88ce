"""Shared fixtures: a throwaway PostgreSQL, SeaweedFS for S3 (a real S3 server: signatures,
signed headers, POST policies, objects on disk), a moto server for SQS/ECS/Secrets Manager,
and an environment that can never reach AWS (dummy credentials, a region, no metadata probes)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.shared.settings import AWS_CALL_LOG_ENV
from scripts.jsii_node import use_pinned_node

#: Every test is exactly one of unit, integration, infra, e2e (by folder, or its own marker).
pytest_plugins = ["tests.layers"]

# Before anything imports boto3: no real credentials, no metadata probes, one region.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}.items():
    os.environ[_key] = _value
# Every synth's jsii kernel (in this process and in subprocesses) runs on package.json's Node 24.
use_pinned_node()
# No session token: SeaweedFS would take the key for an STS session it never issued.
for _key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_key, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

# Record every AWS call the runtime makes (runtime.shared.aws) for the IAM conformance check
# (tests/conformance). Set here, in the first process, so xdist's workers and every subprocess
# (workers, the local platform) inherit the same directory; `make test` chooses it explicitly.
os.environ.setdefault(
    AWS_CALL_LOG_ENV,
    str(Path(tempfile.gettempdir()) / f"transcodex-aws-calls-{os.getuid()}" / uuid.uuid4().hex[:12]),
)


def pytest_report_header(config: pytest.Config) -> str:
    where = os.environ[AWS_CALL_LOG_ENV]
    return f"AWS calls recorded in {where} (check: make conformance-check AWS_CALL_LOG={where})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The IAM conformance check reads what the rest of the suite recorded, so it runs only when
    asked for by name (``-m conformance``, a second invocation after the suite: ``make test``)."""
    if "conformance" in (config.getoption("markexpr") or "").replace("not conformance", ""):
        return
    kept = [item for item in items if item.get_closest_marker("conformance") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


TABLES = ("job_outputs", "jobs", "uploads", "api_keys", "sessions", "users", "login_failures", "media_deletions")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """One PostgreSQL server per test process (per xdist worker)."""
    from runtime.local.postgres import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="transcodex-pg-"))
    server = PostgresServer(data_dir=root / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server: object) -> str:
    """A migrated database shared by the session; tables are emptied per test by ``db``."""
    from runtime.shared.migrate import apply_migrations

    url = postgres_server.create_database("transcodex_test")  # type: ignore[attr-defined]
    apply_migrations(url)
    return url


@pytest.fixture()
def db(database_url: str) -> Iterator[object]:
    """A Database on the migrated schema, emptied after the test."""
    import psycopg

    from runtime.shared.db import Database

    database = Database(database_url)
    try:
        yield database
    finally:
        database.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on a free loopback port: S3, SQS, ECS, Secrets Manager…"""
    from moto.server import ThreadedMotoServer

    from runtime.local.postgres import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[object]:
    """One SeaweedFS S3 server per test process; its admin identity is the tests' dummy key."""
    from runtime.local.seaweed import SeaweedServer

    root = Path(tempfile.mkdtemp(prefix="transcodex-s3-"))
    server = SeaweedServer(data_dir=root, admin_key="testing", admin_secret="testing")
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout_s=2)  # throwaway data: no need to wait out its slow SIGTERM


@pytest.fixture(scope="session")
def s3_endpoint(seaweed: object) -> str:
    return seaweed.endpoint  # type: ignore[attr-defined]


@pytest.fixture()
def settings(database_url: str, moto_endpoint: str, s3_endpoint: str, db: object) -> Iterator[object]:
    """Settings for one test: fresh buckets (SeaweedFS) and queues (moto, DLQ wired), the migrated DB.
    The buckets are deleted afterwards, so the session's server holds only the volumes in use."""
    import uuid

    from runtime.local.seaweed import delete_buckets, provision_buckets, provision_queues
    from runtime.shared.aws import client
    from runtime.shared.settings import load_settings

    suffix = uuid.uuid4().hex[:10]
    env = {
        "AWS_REGION": "us-east-1",
        "TRANSCODEX_AWS_ENDPOINT_URL": moto_endpoint,
        "TRANSCODEX_AWS_ENDPOINT_URL_S3": s3_endpoint,
        "TRANSCODEX_DATABASE_URL": database_url,
        "TRANSCODEX_INPUT_BUCKET": f"input-{suffix}",
        "TRANSCODEX_OUTPUT_BUCKET": f"output-{suffix}",
        "TRANSCODEX_JWT_SECRET": "test-secret-" + "x" * 40,
        "TRANSCODEX_ECS_CLUSTER": f"cluster-{suffix}",
        "TRANSCODEX_ECS_TASK_DEFINITION": f"worker-{suffix}",
        "TRANSCODEX_ECS_SUBNETS": "subnet-12345678",
        "TRANSCODEX_ECS_SECURITY_GROUPS": "sg-12345678",
    }
    base = load_settings(env)
    s3 = client("s3", base)
    buckets = [env["TRANSCODEX_INPUT_BUCKET"], env["TRANSCODEX_OUTPUT_BUCKET"]]
    provision_buckets(s3, buckets, cors=None)
    queue_url, dlq_url = provision_queues(client("sqs", base), f"jobs-{suffix}", f"dlq-{suffix}", max_receive_count=3)
    env["TRANSCODEX_QUEUE_URL"] = queue_url
    env["TRANSCODEX_DLQ_URL"] = dlq_url
    yield load_settings(env, ["database", "storage", "queue", "auth", "ecs"])
    delete_buckets(s3, buckets)
