"""The API's dependencies, built once on the first request (never at import).

Importing ``runtime/api/app.py`` must work with no environment and no network (the CDK app
reads ``app.routes`` at synth). Tests install their own :class:`Deps` (real PostgreSQL, moto)
with :func:`install`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from argon2 import PasswordHasher

from runtime.api.chalicelib.work import Prober, WorkerFunctionProber
from runtime.shared import aws
from runtime.shared.db import Database, open_database
from runtime.shared.log import configure
from runtime.shared.settings import ConfigError, Settings, load_settings, read_int

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

#: OWASP's argon2id recommendation (m=19 MiB, t=2, p=1); tests lower it through the env.
ARGON2_DEFAULTS = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}


def password_hasher(env: Mapping[str, str] | None = None) -> PasswordHasher:
    """argon2id with cost from ``TRANSCODEX_ARGON2_{TIME_COST,MEMORY_KIB,PARALLELISM}``."""
    env = os.environ if env is None else env
    params = dict(ARGON2_DEFAULTS)
    for key, name in (("time_cost", "TIME_COST"), ("memory_cost", "MEMORY_KIB"), ("parallelism", "PARALLELISM")):
        raw = env.get(f"TRANSCODEX_ARGON2_{name}")
        if raw:
            params[key] = max(1, int(raw))
    return PasswordHasher(
        time_cost=params["time_cost"], memory_cost=params["memory_cost"], parallelism=params["parallelism"]
    )


#: Database connections per API process. On Lambda one container serves one request at a
#: time, so the construct sets 1 (the connection budget counts it per concurrent container);
#: the local platform's threaded server keeps the default.
POOL_SIZE_ENV = "TRANSCODEX_API_DATABASE_POOL_SIZE"
DEFAULT_POOL_SIZE = 4


def pool_size(env: Mapping[str, str]) -> int:
    problems: list[str] = []
    size = read_int(env, POOL_SIZE_ENV, DEFAULT_POOL_SIZE, problems)
    if problems:
        raise ConfigError(problems)
    return size


@dataclass
class Deps:
    """Everything a handler needs; AWS clients come from runtime.shared.aws (endpoint override)."""

    settings: Settings
    db: Database
    jwt_secret: str
    hasher: PasswordHasher = field(default_factory=password_hasher)
    #: Overrides the base URL built from the request (e.g. a custom domain).
    public_base_url: str | None = None
    #: Probes a video input for the work check (chalicelib.work); None: videos go unprobed.
    prober: Prober | None = None

    @property
    def s3(self) -> S3Client:
        return aws.client("s3", self.settings)

    @property
    def sqs(self) -> SQSClient:
        return aws.client("sqs", self.settings)


_lock = threading.Lock()
_deps: Deps | None = None


@aws.acting_as("api")
def from_env(env: Mapping[str, str] | None = None) -> Deps:
    """Build the dependencies from the environment (Lambda, the local platform)."""
    env = os.environ if env is None else env
    settings = load_settings(env, ["database", "storage", "queue", "auth", "limits"])
    configure(settings.log_level)
    secret = settings.jwt_secret
    if secret is None:
        assert settings.jwt_secret_arn is not None
        secret = aws.secret_string(settings.jwt_secret_arn, settings).strip()
    if len(secret) < 32:
        raise ValueError("the JWT signing secret must be at least 32 characters")
    return Deps(
        settings=settings,
        db=open_database(settings, max_size=pool_size(env)),
        jwt_secret=secret,
        hasher=password_hasher(env),
        public_base_url=(env.get("TRANSCODEX_API_BASE_URL") or "").rstrip("/") or None,
        prober=(
            WorkerFunctionProber(aws.client("lambda", settings), settings.runners.worker_function)
            if settings.runners.worker_function
            else None
        ),
    )


def get() -> Deps:
    global _deps
    if _deps is None:
        with _lock:
            if _deps is None:
                _deps = from_env()
    return _deps


def install(deps: Deps | None) -> Deps | None:
    """Replace the process's dependencies (tests, benchmarks); returns the previous ones."""
    global _deps
    with _lock:
        previous, _deps = _deps, deps
    return previous
