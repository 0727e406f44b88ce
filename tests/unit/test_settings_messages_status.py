"""Settings fail fast and completely; messages are versioned; transitions are closed."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.shared import settings as settings_module
from runtime.shared.messages import JobMessage, MessageError, parse_message
from runtime.shared.settings import (
    VARIABLES,
    ConfigError,
    Settings,
    ToolSettings,
    load_settings,
    log_level,
    tool_settings,
    worker_job_id,
)
from runtime.shared.status import TERMINAL, TRANSITIONS, JobStatus, can_transition, sources


def test_given_empty_env_when_loading_api_sections_then_every_missing_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, ["database", "storage", "queue", "auth"])
    text = str(caught.value)
    for name in (
        "TRANSCODEX_DATABASE_URL",
        "TRANSCODEX_INPUT_BUCKET",
        "TRANSCODEX_OUTPUT_BUCKET",
        "TRANSCODEX_QUEUE_URL",
        "TRANSCODEX_JWT_SECRET",
    ):
        assert name in text
    assert len(caught.value.problems) == 5


def test_given_malformed_values_when_loading_then_each_is_reported() -> None:
    env = {
        "TRANSCODEX_MAX_INPUT_BYTES": "lots",
        "TRANSCODEX_WORKER_TIMEOUT_SECONDS": "0",
        "TRANSCODEX_DATABASE_URL": "mysql://x",
        "TRANSCODEX_JWT_SECRET": "short",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    problems = " | ".join(caught.value.problems)
    assert "MAX_INPUT_BYTES must be a whole number, got 'lots'" in problems
    assert "WORKER_TIMEOUT_SECONDS must be >= 1, got 0" in problems
    assert "must start with postgresql://" in problems
    assert "at least 32 characters" in problems


def test_given_full_env_when_loading_then_typed_values() -> None:
    settings = load_settings(
        {
            "AWS_REGION": "eu-west-1",
            "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:db",
            "TRANSCODEX_DATABASE_SSLROOTCERT": __file__,  # any existing file stands for the RDS CA bundle
            "TRANSCODEX_ECS_CLUSTER": "c",
            "TRANSCODEX_ECS_TASK_DEFINITION": "td",
            "TRANSCODEX_ECS_SUBNETS": "subnet-a, subnet-b",
            "TRANSCODEX_ECS_SECURITY_GROUPS": "sg-1",
            "TRANSCODEX_MAX_IMAGE_PIXELS": "1000",
        },
        ["database", "ecs"],
    )
    assert settings.aws_region == "eu-west-1"
    assert settings.ecs_subnets == ("subnet-a", "subnet-b")
    assert settings.limits.max_image_pixels == 1000
    assert settings.database_url is None


def test_given_unknown_section_when_loading_then_value_error() -> None:
    with pytest.raises(ValueError, match="unknown settings sections"):
        load_settings({}, ["datbase"])


def test_given_message_when_round_tripped_then_job_id_is_canonical() -> None:
    body = JobMessage("6F9619FF-8B86-D011-B42D-00C04FC964FF").to_body()
    assert parse_message(body).job_id == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert parse_message('{"version":1,"job_id":"6f9619ff8b86d011b42d00c04fc964ff"}').job_id == (
        "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("", "not JSON"),
        ("[1]", "JSON object"),
        ('{"job_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}', "unsupported message version None"),
        ('{"version": 2, "job_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}', "version 2"),
        ('{"version": 1, "job_id": "42"}', "must be a UUID"),
        ('{"version": 1}', "must be a UUID"),
    ],
)
def test_given_malformed_message_when_parsed_then_message_error(body: str, fragment: str) -> None:
    with pytest.raises(MessageError, match=fragment):
        parse_message(body)


def test_given_terminal_status_then_nothing_leaves_it() -> None:
    for target, allowed in TRANSITIONS.items():
        assert not (allowed & TERMINAL), f"{target} reachable from a terminal status"
    assert can_transition(JobStatus.QUEUED, JobStatus.DISPATCHED)
    assert not can_transition(JobStatus.SUCCEEDED, JobStatus.RUNNING)
    assert sources(JobStatus.SUCCEEDED) == ["RUNNING"]


def test_given_a_lifetime_over_the_presigned_cap_when_validated_then_it_is_an_error_naming_it() -> None:
    from runtime.shared.settings import PRESIGNED_URL_MAX_TTL_SECONDS, ConfigError, presigned_ttl

    assert presigned_ttl("X_TTL", PRESIGNED_URL_MAX_TTL_SECONDS) == PRESIGNED_URL_MAX_TTL_SECONDS
    with pytest.raises(ConfigError, match="X_TTL must be between 1 and 3600"):
        presigned_ttl("X_TTL", PRESIGNED_URL_MAX_TTL_SECONDS + 1)


def test_given_the_api_when_it_signs_urls_then_every_lifetime_is_within_the_presigned_cap() -> None:
    from runtime.api.chalicelib import jobs, playback
    from runtime.shared.settings import PRESIGNED_URL_MAX_TTL_SECONDS, UPLOAD_URL_TTL_SECONDS

    for ttl in (UPLOAD_URL_TTL_SECONDS, jobs.DOWNLOAD_URL_TTL_SECONDS, playback.SEGMENT_URL_TTL_SECONDS):
        assert ttl <= PRESIGNED_URL_MAX_TTL_SECONDS


def test_given_the_rds_secret_and_no_ca_bundle_when_loading_then_the_missing_bundle_is_named(
    tmp_path: Path,
) -> None:
    from runtime.shared.settings import (
        ConfigError,
        load_settings,
    )

    env = {
        "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        "TRANSCODEX_DATABASE_SSLROOTCERT": str(tmp_path / "absent.pem"),
    }
    with pytest.raises(ConfigError, match=r"absent\.pem is missing"):
        load_settings(env, ["database"])


def test_given_the_rds_secret_when_the_url_is_built_then_it_verifies_the_server_with_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.shared import aws
    from runtime.shared.db import database_url
    from runtime.shared.settings import load_settings

    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "TRANSCODEX_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        "TRANSCODEX_DATABASE_SSLROOTCERT": str(bundle),
    }
    secret = {"username": "u", "password": "p@ss", "host": "db.example", "port": 5432, "dbname": "t"}
    monkeypatch.setattr(aws, "secret_json", lambda arn, settings: secret)

    url = database_url(load_settings(env, ["database"]))

    assert url == f"postgresql://u:p%40ss@db.example:5432/t?sslmode=verify-full&sslrootcert={bundle}"


# --- one place that names every variable -------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
#: A variable name as it stands in code or docs; one ending in "_" is a prefix of several (f-strings).
NAME = re.compile(r"TRANSCODEX_[A-Z0-9_]+")


class _Recorder(dict[str, str]):
    """An empty environment that notes every variable looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return default


def _named_in_code() -> set[str]:
    """``TRANSCODEX_*`` names written in the runtime, the constructs and the app (not settings.py)."""
    files = [*REPO.glob("runtime/**/*.py"), *REPO.glob("constructs_lib/**/*.py"), *REPO.glob("stacks/**/*.py")]
    files += [REPO / "app.py", REPO / "constructs_lib" / "runtime_interface.json"]
    names: set[str] = set()
    for path in files:
        if path.name == "settings.py" and path.parent.name == "shared":
            continue
        names |= {n for n in NAME.findall(path.read_text()) if not n.endswith("_")}
    return names


def _read_by_loaders() -> set[str]:
    from runtime.api.chalicelib.deps import password_hasher

    env = _Recorder()
    load_settings(env)
    tools = tool_settings(env)
    for attribute in (a for a, v in vars(ToolSettings).items() if isinstance(v, property)):
        getattr(tools, attribute)
    password_hasher(env)
    return {name for name in env.read if name.startswith("TRANSCODEX_")}


def test_given_the_code_when_scanned_then_the_registry_names_exactly_the_variables_it_reads() -> None:
    read = _named_in_code() | _read_by_loaders()
    assert sorted(read - set(VARIABLES)) == [], "read but not in settings.VARIABLES"
    assert sorted(set(VARIABLES) - read) == [], "in settings.VARIABLES but read nowhere"


def _resolve(dotted: str) -> Any:
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            target = getattr(target, part)
        return target
    raise AssertionError(f"{dotted}: no module")


def test_given_the_registry_when_its_owners_are_looked_up_then_each_one_exists() -> None:
    for name, owner in VARIABLES.items():
        kind, _, path = owner.partition(".")
        if kind == "Settings":
            target: Any = Settings()
            for part in path.split("."):
                target = getattr(target, part)
        elif kind == "ToolSettings":
            assert isinstance(getattr(ToolSettings, path, None), property), name
        elif not path:
            assert callable(getattr(settings_module, owner, None)), name
        else:
            assert callable(_resolve(owner)), name


def test_given_tool_variables_when_read_then_defaults_follow_xdg_and_a_bad_one_stops_only_its_reader() -> None:
    home = {"XDG_CACHE_HOME": "/c", "XDG_CONFIG_HOME": "/cfg"}
    defaults = tool_settings(home)
    assert (defaults.cache_dir, defaults.config_path) == (Path("/c/transcodex"), Path("/cfg/transcodex/config.json"))
    assert (defaults.container_engine, defaults.api_key, defaults.skip_bundling, defaults.docker_bundling) == (
        None,
        None,
        False,
        False,
    )
    env = {
        **home,
        "TRANSCODEX_CACHE_DIR": "/cache",
        "TRANSCODEX_CONFIG": "~/t.json",
        "TRANSCODEX_BUNDLING": "docker",
        "TRANSCODEX_API_URL": " http://api:1 ",
        "TRANSCODEX_SKIP_BUNDLING": "yes",
    }
    tools = tool_settings(env)
    assert tools.cache_dir == Path("/cache") and tools.config_path == Path("~/t.json").expanduser()
    assert tools.docker_bundling is True and tools.api_url == "http://api:1"
    with pytest.raises(ConfigError, match="TRANSCODEX_SKIP_BUNDLING must be 1 or 0, got 'yes'"):
        _ = tools.skip_bundling


def test_given_the_claim_timeout_and_log_level_when_loaded_then_read_through_the_loader() -> None:
    assert load_settings({}).dispatch_claim_timeout_seconds is None  # the dispatcher's default applies
    loaded = load_settings({"TRANSCODEX_DISPATCH_CLAIM_TIMEOUT_SECONDS": "120", "TRANSCODEX_LOG_LEVEL": " debug"})
    assert (loaded.dispatch_claim_timeout_seconds, loaded.log_level) == (120, "DEBUG")
    assert log_level({"TRANSCODEX_LOG_LEVEL": "warning"}) == "WARNING" and log_level({}) == "INFO"
    assert worker_job_id({"JOB_ID": " j-1 "}) == "j-1" and worker_job_id({}) is None
    with pytest.raises(ConfigError, match="DISPATCH_CLAIM_TIMEOUT_SECONDS must be >= 1, got 0"):
        load_settings({"TRANSCODEX_DISPATCH_CLAIM_TIMEOUT_SECONDS": "0"})
