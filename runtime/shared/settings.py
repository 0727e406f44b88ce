"""One typed loader for every environment variable the runtime reads.

Each component asks only for the sections it needs (``load_settings(env, "database",
"storage")``), and everything missing or malformed in those sections is reported at
once, naming the variable, so a misconfigured deploy fails at cold start rather than
on the first request. The tools around the runtime (the CLI, the local platform, image
builds, synth) read theirs through :func:`tool_settings`.

:data:`VARIABLES` names every ``TRANSCODEX_*`` variable and where it is read; a test keeps it
equal to the variables the code reads. This module imports the standard library only: the
CDK constructs read their tool settings from it without loading the runtime.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "TRANSCODEX_"

SECTIONS = ("database", "storage", "queue", "auth", "ecs", "limits")

#: Longest lifetime of any presigned URL (uploads, downloads, playback segments). A URL signed
#: with a role's temporary credentials (the API function's) stops working when that session
#: expires, whatever its X-Amz-Expires says; Lambda renews its credentials well ahead of
#: expiry but guarantees no longer remaining life, so the runtime signs for at most an hour and
#: clients re-request (the playback token outlives it: reloading the playlist re-signs).
PRESIGNED_URL_MAX_TTL_SECONDS = 3600


#: The RDS CA bundle in the artifacts (AWS publishes it at
#: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; see README, "TLS to the database").
RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-global-bundle.pem"
#: libpq sslmodes accepted for connections built from the RDS secret.
DATABASE_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConfigError(ValueError):
    """The environment does not describe a runnable component."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


def presigned_ttl(name: str, seconds: int) -> int:
    """``seconds`` if it is a lifetime a presigned URL can be given, else a ConfigError naming it
    (never a silent clamp: a longer promise would be broken by the credentials)."""
    if not 1 <= seconds <= PRESIGNED_URL_MAX_TTL_SECONDS:
        raise ConfigError(
            [
                f"{name} must be between 1 and {PRESIGNED_URL_MAX_TTL_SECONDS} seconds "
                f"(PRESIGNED_URL_MAX_TTL_SECONDS), got {seconds}"
            ]
        )
    return seconds


#: Lifetime of the API's presigned upload URLs; the sweeper waits at least this long before
#: it settles a PENDING upload, so both read it from here.
UPLOAD_URL_TTL_SECONDS = presigned_ttl("UPLOAD_URL_TTL_SECONDS", 3600)


@dataclass(frozen=True)
class Limits:
    """Processing limits; every one is configurable and over a limit is an error."""

    #: Largest accepted input object, in bytes (S3's single PUT limit is 5 GiB).
    max_input_bytes: int = 2 * 1024**3
    #: Largest image accepted, in pixels, read from the header before decoding.
    max_image_pixels: int = 100_000_000
    #: Longest video accepted, in seconds.
    max_video_duration_seconds: int = 3 * 3600
    #: Largest video frame accepted, in pixels (default: 4096x2304 covers 4K DCI).
    max_video_pixels: int = 4096 * 2304
    #: Wall time allowed to one worker run, in seconds.
    worker_timeout_seconds: int = 3600
    # --- per user (each counted and enforced in the inserting transaction; over one: 429)
    #: Jobs of one user QUEUED, DISPATCHED or RUNNING at once (each may be a Fargate task).
    max_active_jobs_per_user: int = 10
    #: Jobs one user may create in any rolling hour.
    max_jobs_per_hour_per_user: int = 100
    #: Uploads of one user PENDING at once (each holds a live presigned URL).
    max_pending_uploads_per_user: int = 20
    #: Input bytes one user may hold: uploaded inputs still in the bucket's lifecycle, plus
    #: pending uploads at their declared size (or ``max_input_bytes`` when undeclared).
    max_stored_bytes_per_user: int = 20 * 1024**3
    #: Refuse uploads without ``size_bytes`` (422 SIZE_REQUIRED). Off, an undeclared size gets
    #: a POST policy form bounded by ``content-length-range`` instead of a PUT URL (S3 can bound
    #: a PUT only by an exact signed Content-Length); on, every upload is a sized PUT.
    require_upload_size: bool = False


@dataclass(frozen=True)
class Runners:
    """Where jobs may run and the sizes the dispatcher may choose (runtime.shared.estimate)."""

    #: The worker Lambda (name or ARN); empty: every job runs as a Fargate task.
    worker_function: str = ""
    #: Its memory (MiB: 1769 MB is one vCPU), timeout and /tmp size, as the construct set them.
    worker_function_memory_mib: int = 4096
    worker_function_timeout_seconds: int = 900
    worker_function_storage_mib: int = 10240
    #: Encoding VIDEO jobs go to the Lambda only up to this duration x source pixels
    #: (default: one minute of 1080p).
    lambda_max_pixel_seconds: int = 60 * 1920 * 1080
    #: Fargate task sizes the dispatcher chooses from, in CPU units (256 ... 16384).
    fargate_min_cpu: int = 1024
    fargate_max_cpu: int = 8192
    #: The task's ephemeral storage (GiB), the bound of a job's scratch space.
    fargate_storage_gib: int = 50
    #: "X86_64" or "ARM64": which list price a Fargate run is costed at.
    worker_architecture: str = "X86_64"
    #: A job's timeout is its estimated run time x (1 + this/100) + a minute.
    estimate_margin_percent: int = 50


#: Fargate CPU units a task may be given.
FARGATE_CPUS = (256, 512, 1024, 2048, 4096, 8192, 16384)
ARCHITECTURES = ("X86_64", "ARM64")


def _runners(env: Mapping[str, str], problems: list[str]) -> Runners:
    def get(name: str) -> str:
        return (env.get(PREFIX + name) or "").strip()

    runners = Runners(
        worker_function=get("WORKER_FUNCTION"),
        worker_function_memory_mib=_int(
            env, "WORKER_FUNCTION_MEMORY_MIB", Runners.worker_function_memory_mib, problems, 128
        ),
        worker_function_timeout_seconds=_int(
            env, "WORKER_FUNCTION_TIMEOUT_SECONDS", Runners.worker_function_timeout_seconds, problems
        ),
        worker_function_storage_mib=_int(
            env, "WORKER_FUNCTION_STORAGE_MIB", Runners.worker_function_storage_mib, problems, 512
        ),
        lambda_max_pixel_seconds=_int(env, "LAMBDA_MAX_PIXEL_SECONDS", Runners.lambda_max_pixel_seconds, problems, 0),
        fargate_min_cpu=_int(env, "FARGATE_MIN_CPU", Runners.fargate_min_cpu, problems),
        fargate_max_cpu=_int(env, "FARGATE_MAX_CPU", Runners.fargate_max_cpu, problems),
        fargate_storage_gib=_int(env, "FARGATE_STORAGE_GIB", Runners.fargate_storage_gib, problems, 20),
        worker_architecture=get("WORKER_ARCHITECTURE") or Runners.worker_architecture,
        estimate_margin_percent=_int(env, "ESTIMATE_MARGIN_PERCENT", Runners.estimate_margin_percent, problems, 0),
    )
    for name in ("fargate_min_cpu", "fargate_max_cpu"):
        if getattr(runners, name) not in FARGATE_CPUS:
            problems.append(f"{PREFIX}{name.upper()} must be one of {FARGATE_CPUS}, got {getattr(runners, name)}")
    if runners.fargate_min_cpu > runners.fargate_max_cpu:
        problems.append(f"{PREFIX}FARGATE_MIN_CPU must not exceed {PREFIX}FARGATE_MAX_CPU")
    if runners.worker_architecture not in ARCHITECTURES:
        problems.append(
            f"{PREFIX}WORKER_ARCHITECTURE must be one of {ARCHITECTURES}, got {runners.worker_architecture!r}"
        )
    return runners


#: The worker's job id, as ECS's container override and the local launcher pass it.
JOB_ID_ENV = "JOB_ID"
LOG_LEVEL_ENV = PREFIX + "LOG_LEVEL"
#: Seconds after which a dispatch claim with no task recorded is taken over (see
#: repo.jobs.reclaim_stale_claim); constructs_lib.dispatcher sets it above the function timeout.
DISPATCH_CLAIM_TIMEOUT_ENV = PREFIX + "DISPATCH_CLAIM_TIMEOUT_SECONDS"


@dataclass(frozen=True)
class Settings:
    """The runtime's configuration. Sections not asked for keep their defaults."""

    aws_region: str = "us-east-1"
    #: Endpoint override for every AWS client (moto in tests and locally).
    aws_endpoint_url: str | None = None
    #: Endpoint override for S3 alone (SeaweedFS in tests and locally); default: ``aws_endpoint_url``.
    aws_endpoint_url_s3: str | None = None
    database_url: str | None = None
    database_secret_arn: str | None = None
    #: TLS of connections built from the secret (on AWS): verify the server against the RDS CA.
    #: A DATABASE_URL (local platform, tests) carries its own parameters.
    database_sslmode: str = "verify-full"
    database_sslrootcert: str = str(RDS_CA_BUNDLE)
    input_bucket: str = ""
    output_bucket: str = ""
    queue_url: str = ""
    #: The dead-letter queue (read by the local platform's DLQ poller; on AWS an event source).
    dlq_url: str = ""
    jwt_secret: str | None = None
    jwt_secret_arn: str | None = None
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    #: How long the refresh token rotated away last is still answered with the current pair
    #: (parallel requests racing one rotation); 0 turns the grace off.
    refresh_grace_seconds: int = 30
    #: Lifetime of playback tokens (the ``?token=`` of HLS playlists).
    playback_token_ttl_seconds: int = 3600
    #: Origins allowed to make cookie-authenticated state-changing requests (CSRF defence);
    #: empty: only the API's own origin.
    allowed_origins: tuple[str, ...] = ()
    ecs_cluster: str = ""
    ecs_task_definition: str = ""
    ecs_container_name: str = "worker"
    ecs_subnets: tuple[str, ...] = ()
    ecs_security_groups: tuple[str, ...] = ()
    #: Optional capacity provider (e.g. FARGATE_SPOT); empty uses the FARGATE launch type.
    ecs_capacity_provider: str = ""
    ecs_assign_public_ip: bool = False
    limits: Limits = field(default_factory=Limits)
    runners: Runners = field(default_factory=Runners)
    log_level: str = "INFO"
    #: None: the dispatcher's default (runtime.dispatcher.core.DEFAULT_CLAIM_TIMEOUT_SECONDS).
    dispatch_claim_timeout_seconds: int | None = None


def read_int(env: Mapping[str, str], name: str, default: int, problems: list[str], minimum: int = 1) -> int:
    """Whole-number variable ``name`` (``default`` when unset); problems are appended, not raised,
    so a loader can report every bad variable at once."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be a whole number, got {raw!r}")
        return default
    if value < minimum:
        problems.append(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, problems: list[str], minimum: int = 1) -> int:
    return read_int(env, PREFIX + name, default, problems, minimum)


def _flag(env: Mapping[str, str], name: str, problems: list[str]) -> bool:
    """A 1/0 (true/false) variable; unset is false."""
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    problems.append(f"{PREFIX}{name} must be 1 or 0, got {raw!r}")
    return False


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (raw or "").split(",") if p.strip())


def _origins(raw: str, problems: list[str]) -> tuple[str, ...]:
    """``scheme://host[:port]`` entries, lower-cased, without a trailing slash."""
    origins = tuple(o.rstrip("/").lower() for o in _list(raw))
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            problems.append(f"{PREFIX}ALLOWED_ORIGINS entries must be scheme://host[:port], got {origin!r}")
    return origins


def load_settings(env: Mapping[str, str] | None = None, sections: Iterable[str] = ()) -> Settings:
    """Read settings from ``env`` (default ``os.environ``), validating ``sections``.

    Raises ConfigError listing every problem in the requested sections.
    """
    env = os.environ if env is None else env
    wanted = set(sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown settings sections {sorted(unknown)}; allowed: {list(SECTIONS)}")
    problems: list[str] = []

    def get(name: str, default: str = "") -> str:
        return env.get(PREFIX + name, default).strip()

    def need(section: str, name: str) -> str:
        value = get(name)
        if section in wanted and not value:
            problems.append(f"{PREFIX}{name} is required")
        return value

    limits = Limits(
        max_input_bytes=_int(env, "MAX_INPUT_BYTES", Limits.max_input_bytes, problems),
        max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", Limits.max_image_pixels, problems),
        max_video_duration_seconds=_int(env, "MAX_VIDEO_DURATION_SECONDS", Limits.max_video_duration_seconds, problems),
        max_video_pixels=_int(env, "MAX_VIDEO_PIXELS", Limits.max_video_pixels, problems),
        worker_timeout_seconds=_int(env, "WORKER_TIMEOUT_SECONDS", Limits.worker_timeout_seconds, problems),
        max_active_jobs_per_user=_int(env, "MAX_ACTIVE_JOBS_PER_USER", Limits.max_active_jobs_per_user, problems),
        max_jobs_per_hour_per_user=_int(env, "MAX_JOBS_PER_HOUR_PER_USER", Limits.max_jobs_per_hour_per_user, problems),
        max_pending_uploads_per_user=_int(
            env, "MAX_PENDING_UPLOADS_PER_USER", Limits.max_pending_uploads_per_user, problems
        ),
        max_stored_bytes_per_user=_int(env, "MAX_STORED_BYTES_PER_USER", Limits.max_stored_bytes_per_user, problems),
        require_upload_size=_flag(env, "REQUIRE_UPLOAD_SIZE", problems),
    )
    database_url = get("DATABASE_URL") or None
    database_secret_arn = get("DATABASE_SECRET_ARN") or None
    if "database" in wanted and not (database_url or database_secret_arn):
        problems.append(f"one of {PREFIX}DATABASE_URL or {PREFIX}DATABASE_SECRET_ARN is required")
    sslmode = get("DATABASE_SSLMODE") or Settings.database_sslmode
    sslrootcert = get("DATABASE_SSLROOTCERT") or Settings.database_sslrootcert
    if sslmode not in DATABASE_SSLMODES:
        problems.append(f"{PREFIX}DATABASE_SSLMODE must be one of {DATABASE_SSLMODES}, got {sslmode!r}")
    elif (
        "database" in wanted
        and database_secret_arn
        and not database_url
        and sslmode.startswith("verify-")
        and not Path(sslrootcert).is_file()
    ):
        problems.append(
            f"{PREFIX}DATABASE_SSLROOTCERT {sslrootcert} is missing: put the RDS CA bundle there "
            "(https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem) before building the artifacts"
        )
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        problems.append(f"{PREFIX}DATABASE_URL must start with postgresql://, got {database_url[:16]!r}...")
    jwt_secret = get("JWT_SECRET") or None
    jwt_secret_arn = get("JWT_SECRET_ARN") or None
    if "auth" in wanted and not (jwt_secret or jwt_secret_arn):
        problems.append(f"one of {PREFIX}JWT_SECRET or {PREFIX}JWT_SECRET_ARN is required")
    if jwt_secret is not None and len(jwt_secret) < 32:
        problems.append(f"{PREFIX}JWT_SECRET must be at least 32 characters, got {len(jwt_secret)}")
    settings = Settings(
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_endpoint_url=get("AWS_ENDPOINT_URL") or None,
        aws_endpoint_url_s3=get("AWS_ENDPOINT_URL_S3") or None,
        database_url=database_url,
        database_secret_arn=database_secret_arn,
        database_sslmode=sslmode,
        database_sslrootcert=sslrootcert,
        input_bucket=need("storage", "INPUT_BUCKET"),
        output_bucket=need("storage", "OUTPUT_BUCKET"),
        queue_url=need("queue", "QUEUE_URL"),
        dlq_url=get("DLQ_URL"),
        jwt_secret=jwt_secret,
        jwt_secret_arn=jwt_secret_arn,
        access_token_ttl_seconds=_int(env, "ACCESS_TOKEN_TTL_SECONDS", 900, problems),
        refresh_token_ttl_seconds=_int(env, "REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, problems),
        refresh_grace_seconds=_int(env, "REFRESH_GRACE_SECONDS", 30, problems, minimum=0),
        playback_token_ttl_seconds=_int(env, "PLAYBACK_TOKEN_TTL_SECONDS", 3600, problems),
        allowed_origins=_origins(get("ALLOWED_ORIGINS"), problems),
        ecs_cluster=need("ecs", "ECS_CLUSTER"),
        ecs_task_definition=need("ecs", "ECS_TASK_DEFINITION"),
        ecs_container_name=get("ECS_CONTAINER_NAME", "worker") or "worker",
        ecs_subnets=_list(need("ecs", "ECS_SUBNETS")),
        ecs_security_groups=_list(need("ecs", "ECS_SECURITY_GROUPS")),
        ecs_capacity_provider=get("ECS_CAPACITY_PROVIDER"),
        ecs_assign_public_ip=get("ECS_ASSIGN_PUBLIC_IP").lower() in ("1", "true", "yes"),
        limits=limits,
        runners=_runners(env, problems),
        log_level=log_level(env),
        dispatch_claim_timeout_seconds=read_int(env, DISPATCH_CLAIM_TIMEOUT_ENV, 0, problems) or None,
    )
    if problems:
        raise ConfigError(problems)
    return settings


def log_level(env: Mapping[str, str] | None = None) -> str:
    """``TRANSCODEX_LOG_LEVEL`` (default INFO), also alone: a component configures logging
    before it loads the settings, so a refused configuration is logged."""
    return ((os.environ if env is None else env).get(LOG_LEVEL_ENV) or "").strip().upper() or "INFO"


def worker_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The job a worker runs when no ``--job-id`` is given (``JOB_ID``)."""
    return ((os.environ if env is None else env).get(JOB_ID_ENV) or "").strip() or None


#: How the local platform runs workers: ``pool`` (warm processes that take jobs one after another,
#: the default: runtime.local.pool) or ``subprocess`` (a new process per job).
LOCAL_WORKER_MODES = ("pool", "subprocess")


@dataclass(frozen=True)
class ToolSettings:
    """The tools' settings: the CLI, the local platform, image builds and synth (no deployed
    component reads them). Each is read and checked when asked for, so a variable one tool
    refuses never stops another; unset and empty are the same."""

    env: Mapping[str, str]

    def _get(self, name: str) -> str:
        return (self.env.get(PREFIX + name) or "").strip()

    @property
    def cache_dir(self) -> Path:
        """``TRANSCODEX_CACHE_DIR``: what runs keep (Lambda dependencies, base images, the
        containers.conf); default ``$XDG_CACHE_HOME/transcodex``, else ``~/.cache/transcodex``."""
        base = self.env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return Path(self._get("CACHE_DIR") or os.path.join(base, "transcodex"))

    @property
    def container_engine(self) -> str | None:
        """``TRANSCODEX_CONTAINER_ENGINE``: ``docker`` or ``podman``; None: docker when its daemon answers."""
        return self._get("CONTAINER_ENGINE") or None

    @property
    def base_suite(self) -> str | None:
        """``TRANSCODEX_BASE_SUITE``: the worker image's Debian release; None: this machine's."""
        return self._get("BASE_SUITE") or None

    @property
    def local_worker_image(self) -> str | None:
        """``TRANSCODEX_LOCAL_WORKER_IMAGE``: ``local up --worker-image``'s default."""
        return self._get("LOCAL_WORKER_IMAGE") or None

    @property
    def local_worker_mode(self) -> str:
        """``TRANSCODEX_LOCAL_WORKER_MODE``: ``local up --workers``'s default, one of
        :data:`LOCAL_WORKER_MODES` (default ``pool``)."""
        value = self._get("LOCAL_WORKER_MODE") or LOCAL_WORKER_MODES[0]
        if value not in LOCAL_WORKER_MODES:
            raise ConfigError(
                [f"{PREFIX}LOCAL_WORKER_MODE must be one of {', '.join(LOCAL_WORKER_MODES)}, got {value!r}"]
            )
        return value

    @property
    def docker_bundling(self) -> bool:
        """``TRANSCODEX_BUNDLING=docker``: bundle Lambda code in the CDK's Docker image, not with pip."""
        return self._get("BUNDLING") == "docker"

    @property
    def bundling_image(self) -> str | None:
        """``TRANSCODEX_BUNDLING_IMAGE``: the image of Docker bundling; None: the runtime's SAM build image."""
        return self._get("BUNDLING_IMAGE") or None

    @property
    def skip_bundling(self) -> bool:
        """``TRANSCODEX_SKIP_BUNDLING=1``: synthesize without bundles (the template refuses deployment)."""
        value = self._get("SKIP_BUNDLING")
        if value not in ("", "0", "1"):
            raise ConfigError([f"{PREFIX}SKIP_BUNDLING must be 1 or 0, got {value!r}"])
        return value == "1"

    @property
    def api_url(self) -> str | None:
        """``TRANSCODEX_API_URL``: the CLI's API (after ``--api-url``, before the config file)."""
        return self._get("API_URL") or None

    @property
    def api_key(self) -> str | None:
        """``TRANSCODEX_API_KEY``: the CLI sends this key instead of its stored credentials."""
        return self._get("API_KEY") or None

    @property
    def password(self) -> str | None:
        """``TRANSCODEX_PASSWORD``: the CLI's password when ``--password`` is not given (kept as is)."""
        return self.env.get(PREFIX + "PASSWORD") or None

    @property
    def config_path(self) -> Path:
        """``TRANSCODEX_CONFIG``: the CLI's credentials file; default
        ``$XDG_CONFIG_HOME/transcodex/config.json``, else under ``~/.config``."""
        override = self._get("CONFIG")
        if override:
            return Path(override).expanduser()
        base = self.env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "transcodex" / "config.json"


def tool_settings(env: Mapping[str, str] | None = None) -> ToolSettings:
    """The tools' settings from ``env`` (default: this process's environment, read live)."""
    return ToolSettings(os.environ if env is None else env)


#: Directory where every AWS call is recorded, one JSON line per call (runtime.shared.aws);
#: the tests set it so the IAM conformance check can compare the calls with the template.
#: Read from the process environment, not a Settings section: it is a property of the process
#: (and of the subprocesses it starts, which inherit it), not of one component's configuration.
AWS_CALL_LOG_ENV = PREFIX + "AWS_CALL_LOG"


def aws_call_log_dir(env: Mapping[str, str] | None = None) -> str | None:
    """The recording directory, or None when AWS calls are not recorded."""
    return ((os.environ if env is None else env).get(AWS_CALL_LOG_ENV) or "").strip() or None


#: Every ``TRANSCODEX_*`` variable and where it is read: a :class:`Settings` field (the deployed
#: components, :func:`load_settings`), a :class:`ToolSettings` property, a function of this module
#: or the dotted name of another. A test keeps
#: this equal to the variables the code reads (tests/unit/test_settings_messages_status.py).
VARIABLES: dict[str, str] = {
    **{
        PREFIX + name: f"Settings.{field_name}"
        for name, field_name in (
            ("AWS_ENDPOINT_URL", "aws_endpoint_url"),
            ("AWS_ENDPOINT_URL_S3", "aws_endpoint_url_s3"),
            ("DATABASE_URL", "database_url"),
            ("DATABASE_SECRET_ARN", "database_secret_arn"),
            ("DATABASE_SSLMODE", "database_sslmode"),
            ("DATABASE_SSLROOTCERT", "database_sslrootcert"),
            ("INPUT_BUCKET", "input_bucket"),
            ("OUTPUT_BUCKET", "output_bucket"),
            ("QUEUE_URL", "queue_url"),
            ("DLQ_URL", "dlq_url"),
            ("JWT_SECRET", "jwt_secret"),
            ("JWT_SECRET_ARN", "jwt_secret_arn"),
            ("ACCESS_TOKEN_TTL_SECONDS", "access_token_ttl_seconds"),
            ("REFRESH_TOKEN_TTL_SECONDS", "refresh_token_ttl_seconds"),
            ("REFRESH_GRACE_SECONDS", "refresh_grace_seconds"),
            ("PLAYBACK_TOKEN_TTL_SECONDS", "playback_token_ttl_seconds"),
            ("ALLOWED_ORIGINS", "allowed_origins"),
            ("ECS_CLUSTER", "ecs_cluster"),
            ("ECS_TASK_DEFINITION", "ecs_task_definition"),
            ("ECS_CONTAINER_NAME", "ecs_container_name"),
            ("ECS_SUBNETS", "ecs_subnets"),
            ("ECS_SECURITY_GROUPS", "ecs_security_groups"),
            ("ECS_CAPACITY_PROVIDER", "ecs_capacity_provider"),
            ("ECS_ASSIGN_PUBLIC_IP", "ecs_assign_public_ip"),
            ("MAX_INPUT_BYTES", "limits.max_input_bytes"),
            ("MAX_IMAGE_PIXELS", "limits.max_image_pixels"),
            ("MAX_VIDEO_DURATION_SECONDS", "limits.max_video_duration_seconds"),
            ("MAX_VIDEO_PIXELS", "limits.max_video_pixels"),
            ("WORKER_TIMEOUT_SECONDS", "limits.worker_timeout_seconds"),
            ("MAX_ACTIVE_JOBS_PER_USER", "limits.max_active_jobs_per_user"),
            ("MAX_JOBS_PER_HOUR_PER_USER", "limits.max_jobs_per_hour_per_user"),
            ("MAX_PENDING_UPLOADS_PER_USER", "limits.max_pending_uploads_per_user"),
            ("MAX_STORED_BYTES_PER_USER", "limits.max_stored_bytes_per_user"),
            ("REQUIRE_UPLOAD_SIZE", "limits.require_upload_size"),
            ("WORKER_FUNCTION", "runners.worker_function"),
            ("WORKER_FUNCTION_MEMORY_MIB", "runners.worker_function_memory_mib"),
            ("WORKER_FUNCTION_TIMEOUT_SECONDS", "runners.worker_function_timeout_seconds"),
            ("WORKER_FUNCTION_STORAGE_MIB", "runners.worker_function_storage_mib"),
            ("LAMBDA_MAX_PIXEL_SECONDS", "runners.lambda_max_pixel_seconds"),
            ("FARGATE_MIN_CPU", "runners.fargate_min_cpu"),
            ("FARGATE_MAX_CPU", "runners.fargate_max_cpu"),
            ("FARGATE_STORAGE_GIB", "runners.fargate_storage_gib"),
            ("WORKER_ARCHITECTURE", "runners.worker_architecture"),
            ("ESTIMATE_MARGIN_PERCENT", "runners.estimate_margin_percent"),
            ("LOG_LEVEL", "log_level"),
            ("DISPATCH_CLAIM_TIMEOUT_SECONDS", "dispatch_claim_timeout_seconds"),
        )
    },
    AWS_CALL_LOG_ENV: "aws_call_log_dir",
    # the API function's own knobs
    PREFIX + "API_BASE_URL": "runtime.api.chalicelib.deps.from_env",
    PREFIX + "API_DATABASE_POOL_SIZE": "runtime.api.chalicelib.deps.pool_size",
    PREFIX + "ARGON2_TIME_COST": "runtime.api.chalicelib.deps.password_hasher",
    PREFIX + "ARGON2_MEMORY_KIB": "runtime.api.chalicelib.deps.password_hasher",
    PREFIX + "ARGON2_PARALLELISM": "runtime.api.chalicelib.deps.password_hasher",
    # the sweeper's thresholds
    **{
        PREFIX + f"SWEEP_{name}": "runtime.dispatcher.sweeper.SweepConfig.from_env"
        for name in (
            "REQUEUE_AFTER_SECONDS",
            "RUNNING_GRACE_SECONDS",
            "UPLOAD_URL_TTL_SECONDS",
            "UPLOAD_GRACE_SECONDS",
            "BATCH_LIMIT",
        )
    },
    **{
        PREFIX + name: f"ToolSettings.{attribute}"
        for name, attribute in (
            ("CACHE_DIR", "cache_dir"),
            ("CONTAINER_ENGINE", "container_engine"),
            ("BASE_SUITE", "base_suite"),
            ("LOCAL_WORKER_IMAGE", "local_worker_image"),
            ("LOCAL_WORKER_MODE", "local_worker_mode"),
            ("BUNDLING", "docker_bundling"),
            ("BUNDLING_IMAGE", "bundling_image"),
            ("SKIP_BUNDLING", "skip_bundling"),
            ("API_URL", "api_url"),
            ("API_KEY", "api_key"),
            ("PASSWORD", "password"),
            ("CONFIG", "config_path"),
        )
    },
}
