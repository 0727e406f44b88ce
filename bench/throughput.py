"""Jobs through the whole local platform: throughput of small image jobs and the latency a
client sees, with the warm worker pool against one process per job (the baseline).

For each worker mode the real platform is started (PostgreSQL, SeaweedFS, moto's SQS, the
Chalice API over HTTP, the dispatcher loop, ``--concurrency 2`` workers) and driven over HTTP
with the CLI's client:

* **throughput**: 200 jobs (rotate 90 of a 320x240 PNG, one upload) posted from 4 threads;
  jobs/s = jobs / (last SUCCEEDED - first POST).
* **latency**: one job at a time, from ``POST /media/process`` to the first ``GET
  /media/status`` that says SUCCEEDED (polled every 10 ms): p50/p99 for the small image and
  for the default HLS ladder of a 10 s 720p clip.

Where the time goes comes from the job's own timestamps (created, dispatched, started,
finished: one clock, PostgreSQL's): API → claim is the queue and the dispatch loop, claim →
RUNNING is the hand-over to a worker (a process start in subprocess mode), RUNNING → done the
runner's work, done → seen the client's polling. ``python -m bench.throughput [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODES = ("subprocess", "pool")
ROTATE = [{"op": "rotate", "angle": 90}]
LADDER = [{"op": "transcode"}]
CONCURRENCY = 2
POSTERS = 4
#: One bench user posts every job, so the per-user limits (issue 14) are raised for the
#: platforms this bench starts; a job refused with 429 would measure the limiter, not the pool.
BENCH_LIMITS = {
    "TRANSCODEX_MAX_ACTIVE_JOBS_PER_USER": "100000",
    "TRANSCODEX_MAX_JOBS_PER_HOUR_PER_USER": "100000",
    "TRANSCODEX_MAX_PENDING_UPLOADS_PER_USER": "1000",
}


def _quick() -> bool:
    return os.environ.get("TRANSCODEX_BENCH_QUICK") == "1"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_media(folder: Path) -> tuple[Path, Path]:
    """The 320x240 PNG and the 10 s 720p30 H.264/AAC clip."""
    png, clip = folder / "small.png", folder / "clip720.mp4"
    ffmpeg = ["ffmpeg", "-y", "-v", "error"]
    subprocess.run([*ffmpeg, "-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", str(png)], check=True)
    subprocess.run(
        [*ffmpeg, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i",
         "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:v", "libx264", "-preset", "veryfast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    return png, clip


class Run:
    """One platform in one worker mode, with a logged-in client and the inputs uploaded once."""

    def __init__(self, mode: str, root: Path, png: Path, clip: Path) -> None:
        from runtime.local.client import Client
        from runtime.local.platform import Platform

        self.mode = mode
        self.platform = Platform(root / mode, api_port=0, concurrency=CONCURRENCY, echo=None, worker_mode=mode)
        self.api_url = self.platform.start()
        self.client = Client(self.api_url)
        name = f"bench{uuid.uuid4().hex[:8]}"
        self.client.signup("Bench", name, f"{name}@example.com", "bench-password-1")
        self.client.login(f"{name}@example.com", "bench-password-1")
        self.uploads = {
            "IMAGE": self._upload(png, "IMAGE", "image/png"),
            "VIDEO": self._upload(clip, "VIDEO", "video/mp4"),
        }
        assert self.platform.settings is not None
        self.database_url: str = self.platform.settings.database_url or ""

    def _upload(self, path: Path, media_type: str, mime: str) -> str:
        upload = self.client.create_upload(path, media_type, mime)
        self.client.put_file(upload, path)
        return str(upload.get("upload_id") or upload.get("id") or (upload.get("upload") or {}).get("id"))

    def post(self, job_type: str, operations: Any) -> str:
        from runtime.local.client import job_id_of

        return job_id_of(self.client.process(self.uploads[job_type], job_type, operations, str(uuid.uuid4())))

    def one(self, job_type: str, operations: Any) -> tuple[float, str]:
        """Seconds from POST to a status that says SUCCEEDED, and the job id."""
        started = time.perf_counter()
        job_id = self.post(job_type, operations)
        while True:
            status = self.client.status(job_id)["status"]
            if status == "SUCCEEDED":
                return time.perf_counter() - started, job_id
            if status in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"bench job {job_id} ended {status}")
            time.sleep(0.01)

    def stamps(self, job_ids: list[str]) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(
                """SELECT id::text, status, created_at, dispatched_at, started_at, finished_at
                   FROM jobs WHERE id = ANY(%s::uuid[])""",
                (job_ids,),
            ).fetchall()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each part of the platform (children included, e.g. ffmpeg)."""
        import resource

        import psutil

        def seconds(pid: int, children: bool = True) -> float:
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                total = times.user + times.system
                if children:
                    total += times.children_user + times.children_system
                    total += sum(seconds(c.pid, False) for c in proc.children(recursive=True))
                return total
            except psutil.Error:
                return 0.0

        parts = {name: seconds(proc.pid) for name, proc in self.platform.children.items()}
        assert self.platform.postgres is not None
        from runtime.local.platform import postmaster_pid

        parts["postgres"] = seconds(postmaster_pid(self.platform.postgres) or 0)
        own = resource.getrusage(resource.RUSAGE_SELF)
        parts["bench process (client, dispatcher loop)"] = own.ru_utime + own.ru_stime
        launcher = self.platform.dispatcher.launcher
        if hasattr(launcher, "worker_pids"):
            parts["workers"] = sum(seconds(pid) for pid in launcher.worker_pids())
        else:  # one process per job, reaped by this process: the API, moto and S3 are not reaped yet
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
            parts["workers"] = reaped.ru_utime + reaped.ru_stime
        return parts

    def stop(self) -> None:
        self.platform.stop()


def throughput(run: Run, jobs: int) -> dict[str, Any]:
    """Post ``jobs`` image jobs from POSTERS threads; wait for all to finish (database count)."""
    import psycopg

    posted: list[str] = []
    lock = threading.Lock()
    cpu_before = run.cpu()
    first = time.time()

    def post(_: int) -> None:
        job_id = run.post("IMAGE", ROTATE)
        with lock:
            posted.append(job_id)

    with ThreadPoolExecutor(POSTERS) as pool:
        list(pool.map(post, range(jobs)))
    posting_s = time.time() - first
    with psycopg.connect(run.database_url) as conn:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL", (posted,)
            ).fetchone()
            if row and row[0] == len(posted):
                break
            time.sleep(0.05)
    cpu_after = run.cpu()
    rows = run.stamps(posted)
    failed = [r for r in rows if r["status"] != "SUCCEEDED"]
    last = max(r["finished_at"] for r in rows).timestamp()
    cpu_ms = {name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / len(rows), 1) for name in cpu_after}
    return {
        "jobs": len(rows),
        "failed": len(failed),
        "posting_s": round(posting_s, 2),
        "wall_s": round(last - first, 2),
        "jobs_per_s": round(len(rows) / (last - first), 2),
        "cpu_ms_per_job": cpu_ms,
        "cpu_ms_per_job_total": round(sum(cpu_ms.values()), 1),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def latency(run: Run, job_type: str, operations: Any, samples: int, warmup: int = 2) -> dict[str, Any]:
    for _ in range(warmup):
        run.one(job_type, operations)
    times, ids = [], []
    for _ in range(samples):
        seconds, job_id = run.one(job_type, operations)
        times.append(seconds * 1000)
        ids.append(job_id)
    parts: dict[str, list[float]] = {"api_to_claim": [], "claim_to_running": [], "running_to_done": []}
    for row in run.stamps(ids):
        parts["api_to_claim"].append((row["dispatched_at"] - row["created_at"]).total_seconds() * 1000)
        parts["claim_to_running"].append((row["started_at"] - row["dispatched_at"]).total_seconds() * 1000)
        parts["running_to_done"].append((row["finished_at"] - row["started_at"]).total_seconds() * 1000)
    return {
        "samples": samples,
        "p50_ms": round(_percentile(times, 0.5), 1),
        "p99_ms": round(_percentile(times, 0.99), 1),
        **{f"{name}_p50_ms": round(statistics.median(values), 1) for name, values in parts.items()},
    }


def measure(mode: str, root: Path, png: Path, clip: Path, quick: bool) -> dict[str, Any]:
    run = Run(mode, root, png, clip)
    try:
        return {
            "throughput": throughput(run, 50 if quick else 200),
            "image": latency(run, "IMAGE", ROTATE, 10 if quick else 30),
            "ladder": latency(run, "VIDEO", LADDER, 1 if quick else 3, warmup=0 if quick else 1),
        }
    finally:
        run.stop()


def _row(label: str, base: float, pool: float, unit: str, better: str) -> str:
    ratio = base / pool if better == "lower" else pool / base
    return f"{label:<40}{base:>12.1f}{pool:>12.1f}  {unit:<6}{ratio:>7.2f}x"


def report(results: dict[str, dict[str, Any]]) -> None:
    base, pool = results["subprocess"], results["pool"]
    print(f"{CONCURRENCY} workers, {os.cpu_count()} CPUs; {base['throughput']['jobs']} image jobs, posted by {POSTERS}")
    print(f"{'':<40}{'subprocess':>12}{'pool':>12}  {'':<6}{'better':>8}")
    print(_row("image jobs/s", base["throughput"]["jobs_per_s"], pool["throughput"]["jobs_per_s"], "jobs/s", "higher"))
    for kind, name in (("image", "single image job"), ("ladder", "10 s 720p ladder")):
        for q in ("p50", "p99"):
            print(_row(f"{name} POST->SUCCEEDED {q}", base[kind][f"{q}_ms"], pool[kind][f"{q}_ms"], "ms", "lower"))
    print("CPU per image job in the throughput run, ms (every part shares the same cores):")
    for part in base["throughput"]["cpu_ms_per_job"]:
        print(
            _row(
                f"  {part}",
                base["throughput"]["cpu_ms_per_job"][part],
                pool["throughput"]["cpu_ms_per_job"][part],
                "ms",
                "lower",
            )
        )
    total_b, total_p = base["throughput"]["cpu_ms_per_job_total"], pool["throughput"]["cpu_ms_per_job_total"]
    print(_row("  total", total_b, total_p, "ms", "lower"))
    print(
        f"  -> CPU-bound ceiling on {os.cpu_count()} CPUs: {1000 * (os.cpu_count() or 1) / total_b:.1f} vs "
        f"{1000 * (os.cpu_count() or 1) / total_p:.1f} jobs/s; load average during the runs: "
        f"{base['throughput']['load_average_1min']} / {pool['throughput']['load_average_1min']}"
    )
    print("where a single image job's time goes (p50, database timestamps):")
    for part in ("api_to_claim", "claim_to_running", "running_to_done"):
        key = f"{part}_p50_ms"
        print(_row(f"  {part.replace('_', ' ')}", base["image"][key], pool["image"][key], "ms", "lower"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", default=_quick(), help="fewer jobs and samples")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args([] if argv is None else argv)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for name, value in BENCH_LIMITS.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="transcodex-bench-throughput-") as tmp:
        root = Path(tmp)
        png, clip = make_media(root)
        results = {mode: measure(mode, root, png, clip, args.quick) for mode in args.modes}
    print(json.dumps({"throughput": results}, indent=1, default=str))
    if set(MODES) <= set(results):
        report(results)
    if args.json:
        args.json.write_text(json.dumps({"throughput": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
