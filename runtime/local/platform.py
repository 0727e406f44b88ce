"""The local platform: the real pipeline on one machine, supervised by one process.

``transcodex local up`` runs :class:`Platform`: a PostgreSQL server it owns (data under
``data_dir/postgres``), SeaweedFS for S3 (a real S3 server, objects under ``data_dir/s3``),
moto's server for SQS, the real Chalice app served over HTTP,
and the local dispatcher (a thread) that long-polls the queue and hands each job to the real
worker: a warm pool of worker processes (runtime.local.pool), or a subprocess per job. Every
child runs in its own process group, its output goes to one log (``data_dir/logs/platform.log``,
echoed to stderr), and :meth:`Platform.stop` stops them all (terminate, wait, kill) so nothing
is left running.

State survives a restart: PostgreSQL keeps its data folder, the JWT secret is generated once
into the data folder, SeaweedFS keeps every object on disk as it is written, and
jobs that were queued when the platform stopped are queued again at startup.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runtime.local.postgres import PostgresServer, free_port, hold_port
from runtime.local.processes import command_line, wait_gone
from runtime.local.seaweed import STOP_TIMEOUT_SECONDS, SeaweedServer, provision_buckets, provision_queues
from runtime.shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from runtime.local.dispatch_loop import LocalDispatcher

log = logging.getLogger("transcodex.local")

INPUT_BUCKET = "transcodex-input"
OUTPUT_BUCKET = "transcodex-output"
QUEUE_NAME = "transcodex-jobs"
DLQ_NAME = "transcodex-jobs-dlq"
#: Deliveries before a message moves to the DLQ (then the job is marked FAILED).
MAX_RECEIVE_COUNT = 5
REGION = "us-east-1"
#: moto logs every request; successful ones would drown the log (errors still show).
MOTO_QUIET = re.compile(r'" [23]\d\d -\s*$')


class PlatformError(RuntimeError):
    """The platform could not start; the message says what to do."""


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        # Servers bind with SO_REUSEADDR, so a port in TIME_WAIT is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LogSink:
    """One place for every log line: ``logs/platform.log``, echoed to a stream."""

    def __init__(self, path: Path, echo: IO[str] | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._echo = echo
        self._lock = threading.Lock()

    def write(self, source: str, line: str) -> None:
        text = f"{source:<10} | {line.rstrip()}\n"
        with self._lock:
            self._file.write(text)
            if self._echo is not None:
                with contextlib.suppress(ValueError, OSError):
                    self._echo.write(text)
                    self._echo.flush()

    def pump(self, source: str, stream: IO[bytes], skip: re.Pattern[str] | None = None) -> threading.Thread:
        """Copy a child's output into the log on a daemon thread (minus lines matching ``skip``)."""

        def run() -> None:
            with stream:
                for raw in iter(stream.readline, b""):
                    line = raw.decode("utf-8", "replace")
                    if skip is None or not skip.search(line):
                        self.write(source, line)

        thread = threading.Thread(target=run, name=f"log-{source}", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _SinkHandler(logging.Handler):
    def __init__(self, sink: LogSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.sink.write("platform", self.format(record))


def terminate_group(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM a child's process group, wait, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # children are started with start_new_session=True: pgid == pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # grandchildren that outlived the leader


def postmaster_pid(server: PostgresServer) -> int | None:
    try:
        return int((server.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(proc: subprocess.Popen[bytes]) -> str:
    """The command line recorded for a child, as :func:`command_line` will read it back (spawn
    passes a list; a string would be one argument, not one per character)."""
    args = proc.args
    return " ".join(map(str, args)) if isinstance(args, list | tuple) else str(args)


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    args = command_line(pid) or []
    return any(flag == "-D" and value == str(pgdata) for flag, value in itertools.pairwise(args))


def stop_postgres(server: PostgresServer, pid: int | None, timeout_s: float = 60) -> None:
    """``pg_ctl stop -m fast``, checked: if the server is still up (or its folder vanished),
    signal the postmaster recorded at start (SIGINT, then SIGQUIT, then SIGKILL)."""
    pgdata = server.data_dir / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        args = ("pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(timeout_s)), "stop")
        proc = server._run(*args, check=False)
        if proc.returncode != 0:
            log.error("pg_ctl stop failed", extra={"output": (proc.stderr or proc.stdout)[-500:]})
    if pid is None or not _is_postmaster_of(pid, pgdata):
        return
    log.warning("PostgreSQL still running; signalling the postmaster", extra={"pid": pid})
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[Any], what: str, log_path: Path) -> None:
    """Wait until ``url`` answers at all (any HTTP status), or fail if the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise PlatformError(f"{what} exited with code {proc.returncode} while starting; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise PlatformError(f"{what} did not answer on {url} within {timeout_s:.0f}s") from None
            time.sleep(0.1)


class Platform:
    """Start, supervise and stop the whole local pipeline."""

    def __init__(
        self,
        data_dir: Path,
        api_port: int = 8000,
        concurrency: int = 2,
        echo: IO[str] | None = sys.stderr,
        own_logging: bool = False,
        worker_image: str | None = None,
        worker_mode: str | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        #: Run each worker inside this image (podman) instead of as a module of this Python.
        self.worker_image = worker_image
        #: ``pool`` (warm workers) or ``subprocess`` (one per job); None: the dispatcher's default.
        self.worker_mode = worker_mode
        self.requested_api_port = api_port
        self.concurrency = concurrency
        self.echo = echo
        self.own_logging = own_logging
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.postgres: PostgresServer | None = None
        self.settings: Settings | None = None
        self.env: dict[str, str] = {}
        self.api_url = ""
        self.moto_url = ""
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.seaweed: SeaweedServer | None = None
        self._saved_aws_env: dict[str, str] | None = None
        self._lock_file: IO[str] | None = None
        self._sink: LogSink | None = None
        self._log_handler: logging.Handler | None = None
        self.dispatcher: LocalDispatcher | None = None
        self._postmaster_pid: int | None = None
        self.crashed: str | None = None

    # --- state files ----------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "platform.log"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "platform.json"

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}  # a damaged file is no state either

    def _write_state(self, **values: Any) -> None:
        state = {**self._read_state(), **values}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_path)

    def _jwt_secret(self, name: str = "jwt-secret") -> str:
        """Generated once and kept, so sessions (and S3 keys) survive a restart."""
        path = self.data_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def _pick_port(self, name: str) -> int:
        """Reuse last run's port when free, so URLs handed out stay valid across restarts."""
        previous = self._read_state().get("ports", {}).get(name)
        if isinstance(previous, int) and _port_free(previous):
            hold_port(previous)  # so no later free_port() hands it to another server
            return previous
        return free_port()

    def _acquire_lock(self) -> None:
        self._lock_file = (self.data_dir / "lock").open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise PlatformError(
                f"another `transcodex local up` is already using {self.data_dir}; stop it or pass --data-dir"
            ) from None

    def _reap_leftovers(self) -> None:
        """Kill children recorded by a previous supervisor that was killed without cleanup.

        Only a process whose command line is exactly the recorded one (it names this platform's
        own ports) and that still leads its own process group: a reused pid is never killed.
        """
        for name, record in self._read_state().get("children", {}).items():
            if not isinstance(record, dict):
                continue  # an old state file without command lines: nothing can be proven ours
            pid, recorded = int(record["pid"]), str(record["cmdline"])
            args = command_line(pid)
            try:
                leads_group = os.getpgid(pid) == pid
            except OSError:
                continue
            if args is not None and " ".join(args) == recorded and leads_group:
                log.warning("stopping a leftover process", extra={"child": name, "pid": pid})
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                wait_gone(pid, 10.0)  # so its port is free before ports are picked

    # --- lifecycle --------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        args: list[str],
        skip: re.Pattern[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child in its own process group with its output in the shared log."""
        assert self._sink is not None
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env if env is None else env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        self._sink.pump(name, proc.stdout, skip)
        self.children[name] = proc
        self._write_state(children={n: {"pid": p.pid, "cmdline": _cmdline(p)} for n, p in self.children.items()})
        return proc

    def start(self) -> str:
        """Bring everything up; return the API URL. On failure everything started is stopped."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        self._sink = LogSink(self.log_path, self.echo)
        self._attach_logging()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.api_url

    def _attach_logging(self) -> None:
        from runtime.shared.log import JsonFormatter

        assert self._sink is not None
        handler = _SinkHandler(self._sink)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        if self.own_logging:
            root.handlers = [handler]  # the supervisor process: this log is the only one
        else:
            root.addHandler(handler)  # embedded (demo, tests): leave the host's handlers alone
        root.setLevel(logging.INFO)
        for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "psycopg.pool"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._log_handler = handler

    def _start(self) -> None:
        self._reap_leftovers()
        api_port = self.requested_api_port or self._pick_port("api")
        if not _port_free(api_port):
            raise PlatformError(f"port {api_port} on 127.0.0.1 is in use; pick another with --port")
        moto_port = self._pick_port("moto")

        # PostgreSQL (a server left by a killed supervisor is stopped first)
        self.postgres = PostgresServer(data_dir=self.data_dir / "postgres", port=self._pick_port("postgres"))
        self.postgres.stop()
        self.postgres.start()
        self._postmaster_pid = postmaster_pid(self.postgres)
        from runtime.shared.migrate import apply_migrations

        applied = apply_migrations(self.postgres.url)
        log.info("postgres ready", extra={"port": self.postgres.port, "migrations_applied": applied})

        # SeaweedFS: S3, with one identity per component (only its role's bucket actions)
        self.seaweed = SeaweedServer(
            data_dir=self.data_dir / "s3",
            buckets={"input": INPUT_BUCKET, "output": OUTPUT_BUCKET},
            s3_port=self._pick_port("s3"),
            admin_key="transcodex-local",
            admin_secret=self._jwt_secret("s3-secret"),
        )
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        self.env = self._child_env(jwt_secret=self._jwt_secret())
        weed = self.spawn("s3", self.seaweed.prepare(), env=self.seaweed.environment(self.env))
        self.seaweed.proc = weed

        # moto: SQS
        # This process's own boto3 clients need the dummy credentials; the TRANSCODEX_* settings go to
        # children explicitly, so an embedding process (the demo, tests) keeps its environment.
        # Restored by stop(): an embedding process (tests) keeps its own S3 identity afterwards.
        self._saved_aws_env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AWS_")})
        moto = self.spawn(
            "moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], MOTO_QUIET
        )
        _wait_http(f"{self.moto_url}/moto-api/", 30, moto, "moto's server", self.log_path)
        try:
            self.seaweed.wait_ready(60, proc=weed)
        except Exception as err:
            raise PlatformError(f"SeaweedFS (S3) did not start: {err}; see {self.log_path}") from err
        self._provision_aws()
        self.settings = load_settings(self.env, ["database", "storage", "queue", "auth"])
        log.info("s3 and sqs ready", extra={"s3_endpoint": self.seaweed.endpoint, "sqs_endpoint": self.moto_url})

        # the Chalice app, with the API's own S3 identity
        api = self.spawn(
            "api",
            [sys.executable, "-m", "runtime.local.api_server", "--port", str(api_port)],
            env=self._env_as("api"),
        )
        self.api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{self.api_url}/openapi.json", 60, api, "the API server", self.log_path)
        self._write_state(
            ports={"api": api_port, "moto": moto_port, "postgres": self.postgres.port, "s3": self.seaweed.s3_port},
            api_url=self.api_url,
            moto_endpoint=self.moto_url,
            s3_endpoint=self.seaweed.endpoint,
            database_url=self.postgres.url,
            supervisor_pid=os.getpid(),
        )

        # the dispatcher; its workers act with the worker's S3 identity
        from runtime.local.dispatch_loop import DEFAULT_WORKER_MODE, LocalDispatcher

        self.dispatcher = LocalDispatcher(
            self.settings,
            concurrency=self.concurrency,
            log_path=self.log_path,
            env=self._env_as("worker"),
            worker_image=self.worker_image,
            worker_mode=self.worker_mode or DEFAULT_WORKER_MODE,
        )
        requeued = self.dispatcher.recover()
        log.info("jobs recovered", extra=requeued)
        self._run_thread("dispatcher", self.dispatcher.run_until, self.stopping)

    def _env_as(self, component: str) -> dict[str, str]:
        """The children's environment with ``component``'s S3 keys (moto accepts any key)."""
        assert self.seaweed is not None
        identity = self.seaweed.identities[component]
        return {**self.env, "AWS_ACCESS_KEY_ID": identity.access_key, "AWS_SECRET_ACCESS_KEY": identity.secret_key}

    def _child_env(self, jwt_secret: str) -> dict[str, str]:
        assert self.postgres is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRANSCODEX_"))}
        env.update(
            {
                # the supervisor's own identity (provisioning, the dispatcher loop and the sweeper)
                "AWS_ACCESS_KEY_ID": self.seaweed.admin_key if self.seaweed else "local",
                "AWS_SECRET_ACCESS_KEY": self.seaweed.admin_secret if self.seaweed else "local",
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "TRANSCODEX_DATABASE_URL": self.postgres.url,
                "TRANSCODEX_INPUT_BUCKET": INPUT_BUCKET,
                "TRANSCODEX_OUTPUT_BUCKET": OUTPUT_BUCKET,
                "TRANSCODEX_JWT_SECRET": jwt_secret,
                "TRANSCODEX_AWS_ENDPOINT_URL": self.moto_url,
                "TRANSCODEX_AWS_ENDPOINT_URL_S3": self.seaweed.endpoint if self.seaweed else "",
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Limits and token lifetimes the user set still apply.
        env.update({k: v for k, v in os.environ.items() if k.startswith("TRANSCODEX_") and k not in env})
        return env

    def _provision_aws(self) -> None:
        from runtime.shared.aws import client

        base = load_settings(self.env)
        # A browser player on another origin can fetch playlists and segments (CORS).
        provision_buckets(client("s3", base), [INPUT_BUCKET, OUTPUT_BUCKET])
        queue_url, dlq_url = provision_queues(client("sqs", base), QUEUE_NAME, DLQ_NAME, MAX_RECEIVE_COUNT)
        urls = {"TRANSCODEX_QUEUE_URL": queue_url, "TRANSCODEX_DLQ_URL": dlq_url}
        self.env.update(urls)

    def _run_thread(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception:
                log.exception("platform thread crashed; stopping", extra={"thread": name})
                self.crashed = name
                self.stopping.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def failed_child(self) -> str | None:
        """The name of a long-running child that exited on its own, if any."""
        for name in ("s3", "moto", "api"):
            proc = self.children.get(name)
            if proc is not None and proc.poll() is not None:
                return name
        return None

    def wait(self) -> int:
        """Block until asked to stop (stop event) or a child dies; return an exit code."""
        while not self.stopping.wait(0.5):
            dead = self.failed_child()
            if dead:
                log.error("a platform process exited unexpectedly; stopping", extra={"child": dead})
                return 1
        return 1 if self.crashed else 0

    def stop(self) -> None:
        """Stop everything, in dependency order; safe to call twice and after a failed start."""
        self.stopping.set()
        if self._lock_file is None:
            return  # never started (or already stopped): the data folder is not ours to touch
        api = self.children.pop("api", None)
        if api is not None:
            terminate_group(api)
        for thread in self._threads:  # the dispatcher takes no new message once it sees the event
            thread.join(timeout=30)
        self._threads = []
        if self.dispatcher is not None:
            try:
                self.dispatcher.shutdown()
            except Exception:
                log.exception("stopping workers failed")
            self.dispatcher = None
        for name in list(self.children):
            # SeaweedFS takes over 10 s to stop on SIGTERM; its data is on disk either way
            terminate_group(self.children.pop(name), STOP_TIMEOUT_SECONDS if name == "s3" else 10.0)
        if self.postgres is not None:
            try:
                stop_postgres(self.postgres, self._postmaster_pid)
            except Exception:
                log.exception("stopping PostgreSQL failed")
            self.postgres = None
        self._write_state(children={}, supervisor_pid=None)
        if self._saved_aws_env is not None:
            for key in [k for k in os.environ if k.startswith("AWS_")]:
                del os.environ[key]
            os.environ.update(self._saved_aws_env)
            self._saved_aws_env = None
        log.info("platform stopped")
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def run_foreground(
    data_dir: Path,
    port: int,
    concurrency: int,
    quiet: bool = False,
    worker_image: str | None = None,
    worker_mode: str | None = None,
) -> int:
    """``transcodex local up``: start, print ``API <url>``, run until Ctrl-C/SIGTERM, stop."""
    echo = None if quiet else sys.stderr
    platform = Platform(
        data_dir,
        api_port=port,
        concurrency=concurrency,
        echo=echo,
        own_logging=True,
        worker_image=worker_image,
        worker_mode=worker_mode,
    )
    starting = True

    def on_signal(signum: int, _frame: object) -> None:
        if not platform.stopping.is_set():
            print(f"stopping ({signal.Signals(signum).name}) ...", file=sys.stderr, flush=True)
        platform.stopping.set()
        if starting:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            url = platform.start()
        except KeyboardInterrupt:
            return 130
        except PlatformError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        starting = False
        print(f"API {url}", flush=True)
        print(f"logs: {platform.log_path}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        code = platform.wait()
        return code
    finally:
        starting = False
        platform.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
