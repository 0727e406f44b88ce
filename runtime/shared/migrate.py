"""Apply the SQL migrations in ``migrations/`` exactly once each.

Safe when several processes start together (API cold starts, the deploy-time custom
resource, the local platform): a transaction-scoped advisory lock serialises them, and
each file is recorded with its checksum so an edited, already-applied migration is
refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant identifying "TranscodeX migrations" among advisory locks.
LOCK_KEY = 0x7C0DE5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations in version order (file name order: ``0001_init.sql`` …)."""
    return [Migration(p.stem, p.read_text()) for p in sorted(directory.glob("*.sql"))]


def content_hash(directory: Path = MIGRATIONS_DIR) -> str:
    """A hash of every migration, so infrastructure can re-run migrations when it changes."""
    digest = hashlib.sha256()
    for migration in discover(directory):
        digest.update(migration.version.encode() + b"\0" + migration.sql.encode())
    return digest.hexdigest()


def apply_migrations(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=False) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done: dict[str, str] = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        for migration in discover(directory):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} was changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            log.info("applying migration", extra={"version": migration.version})
            conn.execute(migration.sql)  # a trusted file from the package, not a LiteralString
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
            )
            applied_now.append(migration.version)
    return applied_now
