"""``python -m runtime.worker --job-id ID`` (or JOB_ID in the environment, as ECS passes it).

Exit codes: 0 SUCCEEDED (or already finished: an idempotent re-delivery), 1 FAILED, 3 CANCELLED,
2 configuration error (bad settings, unknown job id).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import uuid
from types import FrameType

from runtime.shared import aws
from runtime.shared.db import open_database
from runtime.shared.log import configure
from runtime.shared.settings import ConfigError, load_settings, log_level, worker_job_id
from runtime.shared.status import JobStatus
from runtime.worker.errors import Stopped
from runtime.worker.runner import JobNotFound, run_job

EXIT_CODES = {
    JobStatus.SUCCEEDED: 0,
    JobStatus.RUNNING: 0,  # another worker holds the job: not ours to report
    JobStatus.FAILED: 1,
    JobStatus.CANCELLED: 3,
}
EXIT_CONFIG = 2

log = logging.getLogger("transcodex.worker")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stopped(f"signal {signum}")


@aws.acting_as("worker")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.worker", description=__doc__)
    parser.add_argument("--job-id", default=worker_job_id(), help="the job to run (default: $JOB_ID)")
    args = parser.parse_args(argv)
    configure(log_level())
    try:
        job_id = str(uuid.UUID(str(args.job_id)))
    except ValueError:
        log.error("a job id (UUID) is required: --job-id ID or JOB_ID", extra={"received": args.job_id})
        return EXIT_CONFIG
    try:
        settings = load_settings(sections=["database", "storage", "limits"])
        database = open_database(settings, max_size=2)
    except (ConfigError, ValueError) as err:
        log.error("invalid configuration", extra={"error": str(err), "job_id": job_id})
        return EXIT_CONFIG
    signal.signal(signal.SIGTERM, _on_sigterm)  # ECS stop: record why, kill ffmpeg, clean scratch
    signal.signal(signal.SIGINT, _on_sigterm)
    try:
        status = run_job(job_id, settings, database)
    except JobNotFound:
        log.error("no such job", extra={"job_id": job_id})
        return EXIT_CONFIG
    except Exception:
        log.exception("the worker could not record an outcome (database unreachable?)", extra={"job_id": job_id})
        return 1
    finally:
        database.close()
    return EXIT_CODES.get(status, 1)


if __name__ == "__main__":
    sys.exit(main())
