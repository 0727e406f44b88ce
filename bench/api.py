"""API handler latency with 100,000 jobs in PostgreSQL: p50/p99 of status and list.

In-process through Chalice's test client (routing, auth by API key, the SQL, JSON), against a
real PostgreSQL started for the run; no AWS call is on these paths. ``python -m bench.api``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOBS = 100_000
OTHER_USERS = 9


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _seed(conn: Any, jobs: int) -> tuple[str, list[str]]:
    """One user owning 90% of the jobs, nine others the rest; statuses mixed; ANALYZEd."""
    users: list[str] = []
    uploads: list[str] = []
    for i in range(OTHER_USERS + 1):
        user = conn.execute(
            "INSERT INTO users (name, username, email, password_hash) VALUES (%s, %s, %s, 'x') RETURNING id",
            (f"bench {i}", f"bench_user_{i}", f"bench{i}@example.com"),
        ).fetchone()[0]
        upload = conn.execute(
            """INSERT INTO uploads (user_id, object_key, filename, content_type, media_type, declared_bytes, status)
               VALUES (%s, %s, 'a.jpg', 'image/jpeg', 'IMAGE', 1000, 'UPLOADED') RETURNING id""",
            (user, f"input/{user}/u/a.jpg"),
        ).fetchone()[0]
        users.append(user)
        uploads.append(upload)
    conn.execute(
        """INSERT INTO jobs (user_id, upload_id, job_type, operations, status, progress, created_at, updated_at)
           SELECT (%(users)s::uuid[])[k], (%(uploads)s::uuid[])[k], 'IMAGE', '[{"op": "rotate", "angle": 90}]',
                  (ARRAY['QUEUED','DISPATCHED','RUNNING','SUCCEEDED','FAILED','CANCELLED'])[1 + i %% 6],
                  i %% 101, now() - i * interval '1 second', now()
           FROM (SELECT i, CASE WHEN i %% 10 = 0 THEN 2 + (i / 10) %% %(others)s ELSE 1 END AS k
                 FROM generate_series(1, %(jobs)s) i) s""",
        {"users": users, "uploads": uploads, "others": OTHER_USERS, "jobs": jobs},
    )
    conn.execute("ANALYZE")
    main_user = str(users[0])
    ids = [
        str(r[0])
        for r in conn.execute(
            "SELECT id FROM jobs WHERE user_id = %s ORDER BY random() LIMIT 2000", (main_user,)
        ).fetchall()
    ]
    return main_user, ids


def _measure(call: Callable[[], Any], n: int, warmup: int = 50) -> dict[str, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.body
    return {
        "p50_ms": round(_percentile(samples, 0.50), 2),
        "p99_ms": round(_percentile(samples, 0.99), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "requests": n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import psycopg
    from argon2 import PasswordHasher
    from chalice.test import Client

    from runtime.api.app import app
    from runtime.api.chalicelib import accounts
    from runtime.api.chalicelib import deps as api_deps
    from runtime.local.postgres import PostgresServer
    from runtime.shared.db import Database
    from runtime.shared.migrate import apply_migrations
    from runtime.shared.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="transcodex-bench-api-"))
    server = PostgresServer(data_dir=root / "data")
    server.start()
    try:
        url = server.create_database("transcodex_bench")
        apply_migrations(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            user_id, job_ids = _seed(conn, args.jobs)
            total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]  # type: ignore[index]
        seeded_s = time.perf_counter() - started
        settings = Settings(
            database_url=url,
            input_bucket="bench-in",
            output_bucket="bench-out",
            queue_url="http://127.0.0.1:9/none",
            jwt_secret="b" * 40,
        )
        deps = api_deps.Deps(
            settings=settings,
            db=Database(url),
            jwt_secret="b" * 40,
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        api_deps.install(deps)
        key = accounts.create_api_key(deps, user_id, "bench", None)["key"]
        headers = {"x-api-key": key}
        rng = random.Random(7)
        results: dict[str, Any] = {"jobs_in_database": total, "seed_seconds": round(seeded_s, 1)}
        with Client(app) as client:
            http = client.http
            results["status"] = _measure(
                lambda: http.get(f"/media/status/{rng.choice(job_ids)}", headers=headers), args.requests
            )
            results["list_first_page"] = _measure(
                lambda: http.get("/media/jobs?limit=20", headers=headers), args.requests
            )
            results["list_by_status"] = _measure(
                lambda: http.get("/media/jobs?limit=20&status=FAILED", headers=headers), args.requests
            )
            deep = http.get("/media/jobs?limit=100", headers=headers).json_body
            for _ in range(200):  # 20,000 rows deep: keyset pages stay as cheap as the first
                deep = http.get(f"/media/jobs?limit=100&cursor={deep['next_cursor']}", headers=headers).json_body
            cursor = deep["next_cursor"]
            results["list_page_20000_deep"] = _measure(
                lambda: http.get(f"/media/jobs?limit=20&cursor={cursor}", headers=headers), args.requests
            )
        deps.db.close()
        api_deps.install(None)
    finally:
        server.stop()
    print(json.dumps({"api": results}, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"api": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
