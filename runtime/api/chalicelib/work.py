"""POST /media/process's work check: estimate the job (runtime.shared.estimate) and refuse,
before anything is queued or billed, what no allowed worker can finish in time.

A video is probed (duration, frame size, frame rate) by the worker Lambda, which has ffprobe
(the API bundle does not): :class:`WorkerFunctionProber`. Without a prober, or when the probe
fails, a video is accepted unprobed: the dispatcher gives it the largest allowed task and the
longest timeout, and the worker reports an unreadable input itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api.chalicelib.domain import Unprocessable
from runtime.shared import estimate
from runtime.shared.contract import JobSpec, JobType
from runtime.shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

log = logging.getLogger(__name__)

#: An input object key -> its probe (``estimate.Probe.to_json``), or None when unknown.
Prober = Callable[[str], dict[str, Any] | None]


class WorkerFunctionProber:
    """Asks the worker Lambda (``{"probe_key": KEY}``, RequestResponse) to ffprobe an input."""

    def __init__(self, client: LambdaClient, function_name: str) -> None:
        self.client = client
        self.function_name = function_name

    def __call__(self, key: str) -> dict[str, Any] | None:
        try:
            response = self.client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps({"probe_key": key}).encode(),
            )
            if response.get("FunctionError"):
                raise ValueError(response["Payload"].read()[:300])
            probe = json.loads(response["Payload"].read() or b"{}").get("probe")
        except (ClientError, BotoCoreError, ValueError) as err:
            log.warning(
                "the worker function could not probe the input; accepting it unprobed", extra={"error": str(err)}
            )
            return None
        return probe if isinstance(probe, dict) else None


def check(
    settings: Settings, prober: Prober | None, spec: JobSpec, object_key: str, size: int
) -> tuple[dict[str, Any] | None, float | None]:
    """(the probe, the estimated CPU-seconds) of a job about to be created; raises
    Unprocessable WORK_TOO_LARGE with the estimate and the limit when nothing can finish it."""
    operations = spec.to_json()
    probe_json = None
    needs_probe = spec.job_type is JobType.VIDEO and any(op.get("op") != "poster" for op in operations)
    if needs_probe and prober is not None:
        probe_json = prober(object_key)
    work = estimate.job_work(spec.job_type.value, operations, size, estimate.Probe.from_json(probe_json))
    placed = estimate.place(work, size, estimate.bounds(settings))
    if isinstance(placed, estimate.TooLarge):
        raise Unprocessable(
            "WORK_TOO_LARGE",
            f"this job would take about {placed.estimated_seconds / 60:.0f} minutes on the largest worker allowed, "
            f"over the {placed.limit_seconds // 60}-minute limit (or needs more scratch space than a worker has); "
            "submit a shorter video or fewer/lower renditions",
            {**placed.details(), "probe": probe_json},
        )
    return probe_json, (work.cpu_seconds if work is not None else None)
