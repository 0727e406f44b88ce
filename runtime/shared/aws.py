"""Small boto3 adapters: every AWS client is made here, so the endpoint overrides (SeaweedFS
for S3 and moto for the rest, in tests and in the local platform) and the region apply
everywhere, and nothing else in the runtime imports boto3 configuration details.

This is also the one place that can see every AWS call, so it records them when
``TRANSCODEX_AWS_CALL_LOG`` names a directory (the tests set it): one JSON line per call
(presigned URLs included, as the operation they sign) naming the component making it, so the
IAM conformance check (tests/conformance) can evaluate each call against that component's
role in the synthesized template. Each entry point declares its component with
:func:`acting_as`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache, partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from runtime.shared.settings import Settings, aws_call_log_dir

if TYPE_CHECKING:
    from botocore.model import OperationModel
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4")

#: The deployed identities: each runs with its own IAM role (see constructs_lib).
COMPONENTS = ("api", "dispatcher", "dead-letter", "task-state", "sweeper", "migrations", "worker")

_component: contextvars.ContextVar[str | None] = contextvars.ContextVar("transcodex_component", default=None)


@overload
def client(service: Literal["s3"], settings: Settings) -> S3Client: ...
@overload
def client(service: Literal["sqs"], settings: Settings) -> SQSClient: ...
@overload
def client(service: Literal["ecs"], settings: Settings) -> ECSClient: ...
@overload
def client(service: Literal["lambda"], settings: Settings) -> LambdaClient: ...
@overload
def client(service: Literal["secretsmanager"], settings: Settings) -> SecretsManagerClient: ...


def client(service: str, settings: Settings) -> BaseClient:
    """A boto3 client for ``service`` honouring the endpoint override and region (typed per
    service: the runtime's services only, so a call to another is a type error)."""
    endpoint = settings.aws_endpoint_url_s3 if service == "s3" and settings.aws_endpoint_url_s3 else None
    return _client(
        service, settings.aws_region, endpoint or settings.aws_endpoint_url, _component.get(), aws_call_log_dir()
    )


#: An S3 server on an IP address (SeaweedFS on 127.0.0.1) takes path-style URLs only.
_PATH_STYLE = _CONFIG.merge(Config(s3={"addressing_style": "path"}))


@lru_cache(maxsize=64)
def _client(
    service: str, region: str, endpoint_url: str | None, component: str | None, call_log: str | None
) -> BaseClient:
    config = _PATH_STYLE if service == "s3" and endpoint_url else _CONFIG
    # boto3-stubs types client() per literal service name; this factory serves them all
    session = boto3.session.Session()
    made: BaseClient = session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]
    if call_log:
        _record_calls(made, service, component, Path(call_log))
    return made


def secret_string(arn: str, settings: Settings) -> str:
    """The SecretString of a Secrets Manager secret."""
    return client("secretsmanager", settings).get_secret_value(SecretId=arn)["SecretString"]


def secret_json(arn: str, settings: Settings) -> dict[str, Any]:
    value = json.loads(secret_string(arn, settings))
    if not isinstance(value, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return value


# --- the component making a call ---------------------------------------------------------------


@contextmanager
def acting_as(component: str) -> Iterator[None]:
    """Declare that the code inside runs as ``component`` (one of COMPONENTS): an entry point's
    AWS calls are recorded under its name. Usable as a decorator; nests (the innermost wins)."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; allowed: {list(COMPONENTS)}")
    token = _component.set(component)
    try:
        yield
    finally:
        _component.reset(token)


def current_component() -> str | None:
    return _component.get()


# --- recording (TRANSCODEX_AWS_CALL_LOG) --------------------------------------------------------

#: Parameters that name what a call acts on (the rest, bodies included, is never recorded).
_KEY_PARAMS = (
    "Bucket",
    "Key",
    "Prefix",
    "CopySource",
    "QueueUrl",
    "cluster",
    "taskDefinition",
    "task",
    "SecretId",
    "KeyId",
)
_LIBRARY_PARTS = ("/botocore/", "/boto3/", "/s3transfer/", "/concurrent/futures/", "/threading.py")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_write_lock = threading.Lock()


def _record_calls(made: BaseClient, service: str, bound_component: str | None, directory: Path) -> None:
    """Hook ``made`` so every call (and presigned URL) appends a line to ``directory``.

    The component is the one declared where the call runs; calls from threads the code did not
    start itself (s3transfer's pool) carry the component the client was created under.
    Recording never breaks a call: where the directory cannot be made (a worker container,
    which sees none of the host's folders), nothing is recorded."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logging.getLogger("transcodex.aws").warning(
            "AWS call recording is off: cannot write its directory",
            extra={"directory": str(directory), "error": str(err)},
        )
        return
    made.meta.events.register(
        "provide-client-params", partial(_on_call, service=service, bound=bound_component, directory=directory)
    )
    if service == "s3":
        # S3's own method, not BaseClient's: wrapped through getattr/setattr, its result passed on
        sign_post: Callable[..., Any] = getattr(made, "generate_presigned_post")  # noqa: B009

        def generate_presigned_post(Bucket: str, Key: str, *args: Any, **kwargs: Any) -> Any:
            _write(directory, service, bound_component, "PutObject", {"Bucket": Bucket, "Key": Key}, presigned="post")
            return sign_post(Bucket, Key, *args, **kwargs)

        setattr(made, "generate_presigned_post", generate_presigned_post)  # noqa: B010


def _on_call(
    params: dict[str, Any],
    model: OperationModel,
    context: dict[str, Any],
    service: str,
    bound: str | None,
    directory: Path,
    **_: Any,
) -> None:
    presigned = bool(context.get("is_presign_request"))
    if presigned and model.name == "CreateBucket":
        return  # generate_presigned_post signs with CreateBucket's model; recorded as PutObject above
    _write(directory, service, bound, model.name, params, presigned="url" if presigned else None)


def _write(
    directory: Path,
    service: str,
    bound: str | None,
    operation: str,
    params: dict[str, Any],
    presigned: str | None = None,
) -> None:
    record: dict[str, Any] = {
        "component": _component.get() or bound,
        "service": service,
        "operation": operation,
        "params": {k: params[k] for k in _KEY_PARAMS if isinstance(params.get(k), str)},
        "site": _call_site(),
    }
    objects = (params.get("Delete") or {}).get("Objects") if operation == "DeleteObjects" else None
    if objects:
        record["params"]["Keys"] = [str(o.get("Key")) for o in objects[:20]]
        record["params"]["KeyCount"] = len(objects)
    if operation == "RunTask":
        record["params"]["tags"] = bool(params.get("tags"))
    if presigned:
        record["presigned"] = presigned
    line = json.dumps(record, sort_keys=True) + "\n"
    with _write_lock, suppress(OSError), open(directory / f"calls-{os.getpid()}.jsonl", "a") as out:
        out.write(line)


def _call_site() -> str:
    """``file:line`` of the first frame outside boto3, botocore, s3transfer and this module."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != __file__ and not any(part in filename for part in _LIBRARY_PARTS):
            path = Path(filename)
            with suppress(ValueError):
                path = path.resolve().relative_to(_REPO_ROOT)
            return f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return "<library thread>"
