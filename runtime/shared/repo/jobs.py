"""The ``jobs`` table: creating jobs, reading them, and every change of their status.

Each status change is one guarded UPDATE whose legal sources come from
runtime.shared.status.TRANSITIONS (narrowed where a caller accepts fewer, never widened), so
duplicate deliveries, concurrent dispatchers, late events and a racing cancel are harmless.
Every successful change is counted in the ``TranscodeX/Jobs{Status}`` metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from runtime.shared.db import Connection, Row
from runtime.shared.log import job_status_metric
from runtime.shared.repo.usage import Count
from runtime.shared.status import ACTIVE, AWAITING_WORKER, TERMINAL, WITH_WORKER, ErrorCode, JobStatus, sources

if TYPE_CHECKING:
    from runtime.shared.contract import JobSpec


COLUMNS = (
    "id, user_id, upload_id, api_key_id, job_type, operations, status, progress, error_code, "
    "error_message, task_arn, dispatch_count, idempotency_key, request_hash, created_at, "
    "updated_at, dispatched_at, started_at, finished_at, runner, probe, task_cpu, task_memory_mib, "
    "price_class, timeout_seconds, estimated_cpu_seconds, estimated_seconds, compute_seconds"
)

# --- reads ---------------------------------------------------------------------------------


def get(conn: Connection, job_id: str, user_id: str | None = None) -> Row | None:
    """A job by id; with ``user_id``, only if that user owns it."""
    if user_id is None:
        return conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = %s AND user_id = %s", (job_id, user_id)).fetchone()


def find_by_idempotency_key(conn: Connection, user_id: str, idempotency_key: str) -> Row | None:
    return conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE user_id = %s AND idempotency_key = %s", (user_id, idempotency_key)
    ).fetchone()


def find_by_task_arn(conn: Connection, task_arn: str) -> Row | None:
    return conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE task_arn = %s", (task_arn,)).fetchone()


def page_for_user(
    conn: Connection,
    user_id: str,
    limit: int,
    *,
    status: JobStatus | None = None,
    before: tuple[datetime, str] | None = None,
) -> list[Row]:
    """Up to ``limit`` of a user's jobs, newest first, optionally of one status, strictly older
    than the ``(created_at, id)`` keyset ``before`` (uses the (user, [status,] created, id) indexes)."""
    clauses = ["user_id = %s"]
    args: list[Any] = [user_id]
    if status is not None:
        clauses.append("status = %s")
        args.append(status.value)
    if before is not None:
        clauses.append("(created_at, id) < (%s, %s)")
        args += list(before)
    return conn.execute(
        f"""SELECT {COLUMNS} FROM jobs WHERE {" AND ".join(clauses)}
            ORDER BY created_at DESC, id DESC LIMIT %s""",
        (*args, limit),
    ).fetchall()


def active_for_upload(conn: Connection, upload_id: str) -> list[str]:
    """Ids of the upload's jobs not finished yet (QUEUED, DISPATCHED, RUNNING): they need its input."""
    rows = conn.execute(
        "SELECT id FROM jobs WHERE upload_id = %s AND status = ANY(%s) ORDER BY created_at",
        (upload_id, sorted(s.value for s in ACTIVE)),
    ).fetchall()
    return [str(row["id"]) for row in rows]


def unfinished(conn: Connection) -> list[Row]:
    """Every job not in a terminal status (the local platform's recovery at startup)."""
    return conn.execute(
        "SELECT id, status, task_arn FROM jobs WHERE NOT (status = ANY(%s))", (sorted(s.value for s in TERMINAL),)
    ).fetchall()


def count_active(conn: Connection, user_id: str) -> Count:
    """The user's jobs not finished (the limit of active jobs)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM jobs WHERE user_id = %s AND status = ANY(%s)",
        (user_id, sorted(s.value for s in ACTIVE)),
    ).fetchone()
    return Count(int(row["n"]) if row else 0, None)


def count_since(conn: Connection, user_id: str, window_seconds: int) -> Count:
    """The user's jobs created in the last ``window_seconds``; frees when the oldest leaves it."""
    row = conn.execute(
        """SELECT count(*) AS n,
                  ceil(extract(epoch FROM min(created_at) + make_interval(secs => %(w)s) - now()))::int AS frees
           FROM jobs WHERE user_id = %(u)s AND created_at > now() - make_interval(secs => %(w)s)""",
        {"u": user_id, "w": window_seconds},
    ).fetchone()
    return Count(int(row["n"]), row["frees"]) if row else Count(0, None)


# --- creation ------------------------------------------------------------------------------


def create(
    conn: Connection,
    *,
    user_id: str,
    upload_id: str,
    spec: JobSpec,
    api_key_id: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    probe: dict[str, Any] | None = None,
    estimated_cpu_seconds: float | None = None,
) -> tuple[Row, bool]:
    """Insert a QUEUED job; return (job, created). With an idempotency key already used by
    this user, return the existing job and ``created=False`` instead of a duplicate.
    ``probe``/``estimated_cpu_seconds``: what the API learnt of the input (runtime.shared.estimate)."""
    row = conn.execute(
        f"""INSERT INTO jobs (user_id, upload_id, api_key_id, job_type, operations, idempotency_key, request_hash,
                              probe, estimated_cpu_seconds)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {COLUMNS}""",
        (
            user_id,
            upload_id,
            api_key_id,
            spec.job_type.value,
            Jsonb(spec.to_json()),
            idempotency_key,
            request_hash,
            Jsonb(probe) if probe is not None else None,
            estimated_cpu_seconds,
        ),
    ).fetchone()
    if row is not None:
        job_status_metric(row["status"])
        return row, True
    assert idempotency_key is not None
    existing = find_by_idempotency_key(conn, user_id, idempotency_key)
    assert existing is not None
    return existing, False


def clear_idempotency_key(conn: Connection, job_id: str) -> None:
    """Free a job's Idempotency-Key, so the client's retry creates a fresh job."""
    conn.execute("UPDATE jobs SET idempotency_key = NULL WHERE id = %s", (job_id,))


# --- status changes ------------------------------------------------------------------------

#: What each target status stamps besides ``status`` and ``updated_at``.
_STAMP = {
    JobStatus.DISPATCHED: ", dispatched_at = now(), dispatch_count = dispatch_count + 1",
    JobStatus.RUNNING: ", started_at = now(), progress = 0",
    JobStatus.QUEUED: ", task_arn = NULL, dispatched_at = NULL",
    JobStatus.SUCCEEDED: ", finished_at = now(), progress = 100",
    JobStatus.FAILED: ", finished_at = now()",
    JobStatus.CANCELLED: ", finished_at = now()",
}
_SETTABLE = ("task_arn", "error_code", "error_message")


def transition(
    conn: Connection,
    job_id: str,
    target: JobStatus,
    *,
    from_statuses: Iterable[JobStatus] | None = None,
    **fields: Any,
) -> Row | None:
    """Move a job to ``target`` if (and only if) it is in an allowed source status.

    Returns the updated job, or None when the guard did not match (someone else moved it,
    or it was never in a source status). ``from_statuses`` narrows the legal sources.
    """
    return _guarded(conn, job_id, target, sources(target, from_statuses), fields=fields)


def fail_undispatched(conn: Connection, job_id: str, error_code: ErrorCode, message: str) -> Row | None:
    """FAILED for a job no worker has: waiting for one (QUEUED, DISPATCHED) with no task recorded.

    A QUEUED job never has a task (releasing a claim clears it), so the task condition only
    matters for a claim."""
    return _guarded(
        conn,
        job_id,
        JobStatus.FAILED,
        sources(JobStatus.FAILED, AWAITING_WORKER),
        condition="task_arn IS NULL",
        fields={"error_code": error_code.value, "error_message": message},
    )


def fail_stopped(conn: Connection, job_id: str, task_id: str, error_code: ErrorCode, message: str) -> Row | None:
    """FAILED for a job that the stopped task ``task_id`` was (or may have been) running.

    A job whose recorded task is a different one is left alone: it is a late event about an
    old task, and the job's current worker will settle it.
    """
    return _guarded(
        conn,
        job_id,
        JobStatus.FAILED,
        sources(JobStatus.FAILED, WITH_WORKER),
        condition="(task_arn IS NULL OR task_arn = %(stopped_task)s)",
        params={"stopped_task": task_id},
        fields={"error_code": error_code.value, "error_message": message},
    )


def _guarded(
    conn: Connection,
    job_id: str,
    target: JobStatus,
    allowed: list[str],
    *,
    condition: str = "",
    params: dict[str, Any] | None = None,
    fields: dict[str, Any],
) -> Row | None:
    """The one UPDATE behind every status change: ``target`` if the status is in ``allowed``
    (and ``condition`` holds), stamping ``_STAMP[target]`` and setting ``fields``."""
    unknown = set(fields) - set(_SETTABLE)
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} in a transition; allowed: {list(_SETTABLE)}")
    assignments = "".join(f", {name} = %({name})s" for name in fields)
    extra = f" AND {condition}" if condition else ""
    row = conn.execute(
        f"""UPDATE jobs SET status = %(target)s, updated_at = now(){_STAMP[target]}{assignments}
            WHERE id = %(id)s AND status = ANY(%(sources)s){extra}
            RETURNING {COLUMNS}""",
        {**(params or {}), "target": target.value, "id": job_id, "sources": allowed, **fields},
    ).fetchone()
    if row is not None:
        job_status_metric(target.value)
    return row


# --- changes within a status ---------------------------------------------------------------


def reclaim_stale_claim(conn: Connection, job_id: str, older_than_seconds: float) -> Row | None:
    """Take over a DISPATCHED claim whose holder died before recording a task (guarded UPDATE).

    dispatch_count is deliberately not incremented: the retried RunTask then carries the same
    clientToken, so if the dead holder's RunTask did start a task, ECS returns that task
    instead of starting a second one.
    """
    return conn.execute(
        f"""UPDATE jobs SET dispatched_at = now(), updated_at = now()
            WHERE id = %s AND status = %s AND task_arn IS NULL
              AND dispatched_at < now() - make_interval(secs => %s)
            RETURNING {COLUMNS}""",
        (job_id, JobStatus.DISPATCHED.value, float(older_than_seconds)),
    ).fetchone()


def runner_of(task_id: str) -> str:
    """Where a task id says the job runs: ``lambda:<request id>``, ``local:<pid>`` (or any other
    local launcher's id), else an ECS task ARN (Fargate)."""
    if task_id.startswith("lambda:"):
        return "lambda"
    return "fargate" if task_id.startswith("arn:") else "local"


def set_task_arn(
    conn: Connection,
    job_id: str,
    task_arn: str,
    *,
    cpu: int | None = None,
    memory_mib: int | None = None,
    price_class: str | None = None,
    timeout_seconds: int | None = None,
    estimated_seconds: float | None = None,
) -> Row | None:
    """Record the task started for a claimed job (it may already be RUNNING), where it runs
    (``runner``, from the task id) and the size and timeout it was given."""
    return conn.execute(
        f"""UPDATE jobs SET task_arn = %s, runner = %s, task_cpu = %s, task_memory_mib = %s, price_class = %s,
                   timeout_seconds = %s, estimated_seconds = %s, updated_at = now()
            WHERE id = %s AND status = ANY(%s) RETURNING {COLUMNS}""",
        (
            task_arn,
            runner_of(task_arn),
            cpu,
            memory_mib,
            price_class,
            timeout_seconds,
            estimated_seconds,
            job_id,
            sorted(s.value for s in WITH_WORKER),
        ),
    ).fetchone()


def record_compute(conn: Connection, job_id: str, seconds: float) -> None:
    """The worker's measured run time (claim to outcome), for cost and estimate-vs-actual."""
    conn.execute("UPDATE jobs SET compute_seconds = %s WHERE id = %s", (max(0.0, float(seconds)), job_id))


def set_progress(conn: Connection, job_id: str, progress: int) -> str | None:
    """Write progress of a RUNNING job (never backwards); return the job's current status.

    The returned status doubles as the worker's cancellation check: anything but RUNNING
    means stop.
    """
    progress = max(0, min(100, int(progress)))
    row = conn.execute(
        """UPDATE jobs SET progress = GREATEST(progress, %s), updated_at = now()
           WHERE id = %s AND status = %s RETURNING status""",
        (progress, job_id, JobStatus.RUNNING.value),
    ).fetchone()
    if row is not None:
        return str(row["status"])
    current = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return None if current is None else str(current["status"])


# --- the sweeper's batches -----------------------------------------------------------------

#: ``%(age)s`` seconds before ``%(now)s`` (the database's clock when None).
_CUTOFF = "COALESCE(%(now)s::timestamptz, now()) - make_interval(secs => %(age)s)"


def touch_stale_queued(conn: Connection, older_than_seconds: float, limit: int, now: datetime | None) -> list[str]:
    """Ids of up to ``limit`` jobs QUEUED (untouched) for longer than ``older_than_seconds``,
    their ``updated_at`` bumped by the same UPDATE, so each is picked at most once per interval."""
    rows = conn.execute(
        f"""WITH picked AS MATERIALIZED (
                SELECT id FROM jobs WHERE status = %(queued)s AND updated_at < {_CUTOFF}
                ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
            UPDATE jobs SET updated_at = now() FROM picked
            WHERE jobs.id = picked.id AND status = %(queued)s AND updated_at < {_CUTOFF}
            RETURNING jobs.id""",
        {"now": now, "age": float(older_than_seconds), "limit": limit, "queued": JobStatus.QUEUED.value},
    ).fetchall()
    return [str(row["id"]) for row in rows]


def fail_lost(
    conn: Connection,
    older_than_seconds: float,
    limit: int,
    now: datetime | None,
    error_code: ErrorCode,
    message: str,
) -> list[Row]:
    """FAILED for up to ``limit`` jobs whose worker is lost: RUNNING for longer than
    ``older_than_seconds``, or DISPATCHED with a task for that long. Returns (id, task_arn) rows."""
    lost = f"""(jobs.status = %(running)s AND COALESCE(jobs.started_at, jobs.updated_at) < {_CUTOFF})
               OR (jobs.status = %(dispatched)s AND jobs.task_arn IS NOT NULL AND jobs.dispatched_at < {_CUTOFF})"""
    guard = f"jobs.status = ANY(%(sources)s) AND ({lost})"
    rows = conn.execute(
        f"""WITH picked AS MATERIALIZED (
                SELECT id FROM jobs WHERE {guard} ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
            UPDATE jobs SET status = %(target)s, updated_at = now(){_STAMP[JobStatus.FAILED]},
                   error_code = %(code)s, error_message = %(message)s
            FROM picked
            WHERE jobs.id = picked.id AND {guard}
            RETURNING jobs.id, jobs.task_arn""",
        {
            "now": now,
            "age": float(older_than_seconds),
            "limit": limit,
            "running": JobStatus.RUNNING.value,
            "dispatched": JobStatus.DISPATCHED.value,
            "sources": sources(JobStatus.FAILED, WITH_WORKER),
            "target": JobStatus.FAILED.value,
            "code": error_code.value,
            "message": message,
        },
    ).fetchall()
    for _ in rows:
        job_status_metric(JobStatus.FAILED.value)
    return rows
