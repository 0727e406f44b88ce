"""One owner per table: SQL against a table appears only in its repository module, and the
statuses and roles the code names are the ones the schema allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runtime.shared.repo.outputs import OutputRole
from runtime.shared.status import (
    AWAITING_WORKER,
    TERMINAL,
    TRANSITIONS,
    UPLOAD_TRANSITIONS,
    WITH_WORKER,
    JobStatus,
    UploadStatus,
    sources,
    upload_sources,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = REPO_ROOT / "runtime"
MIGRATIONS = RUNTIME / "shared" / "migrations"

#: table -> the one module whose SQL may name it (paths relative to the repository root).
OWNERS = {
    "jobs": "runtime/shared/repo/jobs.py",
    "uploads": "runtime/shared/repo/uploads.py",
    "job_outputs": "runtime/shared/repo/outputs.py",
    "media_deletions": "runtime/shared/repo/deletions.py",
    # Accounts keep their queries in one module already; it is their repository.
    "users": "runtime/api/chalicelib/accounts.py",
    "sessions": "runtime/api/chalicelib/accounts.py",
    "api_keys": "runtime/api/chalicelib/accounts.py",
    "login_failures": "runtime/api/chalicelib/accounts.py",
    "signup_attempts": "runtime/api/chalicelib/accounts.py",
    "schema_migrations": "runtime/shared/migrate.py",
}

#: A table named after a statement keyword (case-insensitive, SQL may be written either way).
_TABLE_REF = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|FROM|JOIN|TRUNCATE(?:\s+TABLE)?|"
    r"CREATE\s+TABLE(?:\s+IF\s+NOT\s+EXISTS)?|ALTER\s+TABLE|LOCK\s+TABLE)\s+(?:ONLY\s+)?([A-Za-z_]\w*)",
    re.IGNORECASE,
)


def sql_references(source: str) -> list[tuple[int, str]]:
    """(line, table) for every table a string literal of ``source`` names in SQL position.

    Docstrings are prose and skipped; f-strings are read by their literal parts, so
    ``f"SELECT {COLUMNS} FROM jobs"`` counts."""
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found += [(node.lineno, m.group(1).lower()) for m in _TABLE_REF.finditer(node.value)]
    return found


def schema_tables() -> set[str]:
    """Every table the migrations create (plus the migrator's own bookkeeping table)."""
    text = "\n".join(p.read_text() for p in MIGRATIONS.glob("*.sql"))
    return {t.lower() for t in re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I)} | {
        "schema_migrations"
    }


def test_given_the_schema_when_its_tables_are_listed_then_each_has_one_owning_module() -> None:
    tables = schema_tables()
    assert {"jobs", "uploads", "job_outputs"} <= tables
    assert tables == set(OWNERS), f"tables without an owner: {sorted(tables - set(OWNERS))}"
    for owner in set(OWNERS.values()):
        assert (REPO_ROOT / owner).is_file(), owner


def test_given_the_runtime_sources_when_scanned_then_no_sql_names_a_table_outside_its_owner() -> None:
    strays = []
    scanned = 0
    for path in sorted(RUNTIME.rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        scanned += 1
        for line, table in sql_references(path.read_text()):
            if table in OWNERS and OWNERS[table] != relative:
                strays.append(f"{relative}:{line}: SQL on {table} (owner: {OWNERS[table]})")
    assert scanned > 50
    assert not strays, "SQL outside its repository:\n" + "\n".join(strays)


def test_given_the_repositories_when_scanned_then_each_names_its_own_table() -> None:
    """The scan sees the SQL it is meant to see (a scan that finds nothing would pass vacuously)."""
    for table in ("jobs", "uploads", "job_outputs"):
        refs = {t for _, t in sql_references((REPO_ROOT / OWNERS[table]).read_text())}
        assert table in refs, f"{OWNERS[table]} names no {table}"


def test_given_sql_in_code_and_prose_in_docstrings_when_scanned_then_only_the_sql_counts() -> None:
    source = '''
def cancel(conn, job_id):
    """Move the job away from jobs that ... (prose: update jobs by hand? never)."""
    conn.execute("update jobs set status = 'CANCELLED' WHERE id = %s", (job_id,))
    conn.execute(f"SELECT {COLUMNS} FROM job_outputs o JOIN uploads u ON u.id = o.id")
    conn.execute("DELETE FROM  login_failures WHERE created_at < now()")
'''
    assert sorted(sql_references(source)) == [(4, "jobs"), (5, "job_outputs"), (5, "uploads"), (6, "login_failures")]


def test_given_the_job_transitions_when_read_then_no_guard_leaves_a_terminal_status_or_widens_them() -> None:
    assert TRANSITIONS[JobStatus.RUNNING] == AWAITING_WORKER
    assert TRANSITIONS[JobStatus.FAILED] >= AWAITING_WORKER
    assert TRANSITIONS[JobStatus.FAILED] >= WITH_WORKER and not (WITH_WORKER & TERMINAL)
    for target in JobStatus:
        assert sources(target) == sorted(TRANSITIONS[target])
        for source in JobStatus:
            if source in TRANSITIONS[target]:
                assert sources(target, [source]) == [source.value]
            else:
                with pytest.raises(ValueError, match="not a legal transition"):
                    sources(target, [source])
    for target, allowed in UPLOAD_TRANSITIONS.items():
        assert upload_sources(target) == sorted(allowed)
    with pytest.raises(ValueError, match="not a legal transition"):
        upload_sources(UploadStatus.EXPIRED, [UploadStatus.UPLOADED])


def _checked_values(table: str, column: str) -> list[str]:
    text = (MIGRATIONS / "0001_init.sql").read_text()
    block = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", text, re.S)
    assert block, table
    found = re.search(rf"\b{column}\b[^,]*?CHECK \({column} IN \(([^)]*)\)\)", block.group(1), re.S)
    assert found, (table, column)
    return re.findall(r"'([^']*)'", found.group(1))


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [("jobs", "status", JobStatus), ("uploads", "status", UploadStatus), ("job_outputs", "role", OutputRole)],
)
def test_given_the_schema_when_its_checked_values_are_read_then_they_are_the_enums_values(
    table: str, column: str, enum: type
) -> None:
    assert sorted(_checked_values(table, column)) == sorted(member.value for member in enum)  # type: ignore[attr-defined]
