"""What a job costs at list prices (runtime.shared.prices: us-east-1, dated), from times measured
here with the worker's own code.

* **1000 image jobs** (rotate a 320x240 PNG, the issue's small job): the operation's warm time
  (``process_image`` in a running process, as a warm worker Lambda runs it) and the cold start
  of a worker process (``python -m runtime.worker`` imports: what every Fargate task, and a cold
  Lambda, pays first). Lambda bills the warm time plus ``IO_SECONDS`` per job (S3 GET and PUT,
  four database writes; an allowance, not measured here: no AWS in the bench) at the worker
  function's 4096 MB; Fargate bills one task per job, at least a minute, at the dispatcher's
  smallest size (1 vCPU / 2 GB) and at the task definition's default (2 vCPU / 4 GB).
* **one output minute of a 1080p four-rung ladder** (1080/720/480/360, bench/ladder.py's
  camera-like source): the wall time of ``transcode_hls`` on this machine's 2 cores, per source
  minute, billed at 2 vCPU / 4 GB on Fargate x86, ARM (same time assumed: not measured on
  Graviton) and Spot (70 % off), beside AWS Elemental MediaConvert's Basic tier for the same
  four outputs (two HD, two SD). Start-up and the one-minute minimum are left out (a long video
  amortises them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime.shared import prices

#: Per-job S3 and database round trips on a warm Lambda (an allowance: see the docstring).
IO_SECONDS = 0.15
LAMBDA_MEMORY_MIB = 4096
RUNGS = (1080, 720, 480, 360)


def _quick() -> bool:
    return os.environ.get("TRANSCODEX_BENCH_QUICK") == "1"


def image_times(folder: Path, runs: int) -> tuple[float, float]:
    """(warm seconds per rotate, cold seconds to import the worker) as medians."""
    import pyvips

    from runtime.shared.contract import parse_job
    from runtime.shared.settings import Limits
    from runtime.worker.image import process_image

    source = folder / "small.png"
    pyvips.Image.xyz(320, 240)[0].cast("uchar").pngsave(str(source))
    spec = parse_job("IMAGE", [{"op": "rotate", "angle": 90}])
    warm = []
    for index in range(runs):
        out = folder / f"out{index}"
        out.mkdir()
        started = time.perf_counter()
        process_image(source, out, spec, Limits())
        warm.append(time.perf_counter() - started)
    cold = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import runtime.worker.__main__, runtime.worker.runner"], check=True)
        cold.append(time.perf_counter() - started)
    return sorted(warm)[len(warm) // 2], sorted(cold)[1]


def ladder_seconds_per_source_minute(folder: Path, seconds: int) -> float:
    from bench.ladder import make_source
    from runtime.shared.contract import Transcode
    from runtime.worker.video import probe, transcode_hls

    source = make_source(folder / "camera.mp4", seconds)
    info = probe(source)
    work = folder / "ladder"
    work.mkdir()
    started = time.perf_counter()
    transcode_hls(source, work, info, Transcode(renditions=RUNGS))
    return (time.perf_counter() - started) / info.duration * 60


def rows(warm: float, cold: float, ladder_wall_per_minute: float) -> list[tuple[str, str, str]]:
    """(case, measured time, USD) rows of the table."""
    lambda_job = prices.lambda_cost(warm + IO_SECONDS, LAMBDA_MEMORY_MIB)
    fargate_job = cold + warm + IO_SECONDS
    mediaconvert = sum(prices.mediaconvert_minute(h) for h in RUNGS)
    per_minute = ladder_wall_per_minute
    return [
        (
            "1000 image jobs, worker Lambda 4096 MB (warm)",
            f"{(warm + IO_SECONDS) * 1000:.0f} ms/job",
            f"{lambda_job * 1000:.4f}",
        ),
        (
            "1000 image jobs, Fargate 1 vCPU / 2 GB",
            f"{fargate_job:.2f} s/job",
            f"{prices.fargate_cost(fargate_job, 1024, 2048) * 1000:.4f}",
        ),
        (
            "1000 image jobs, Fargate 2 vCPU / 4 GB",
            f"{fargate_job:.2f} s/job",
            f"{prices.fargate_cost(fargate_job, 2048, 4096) * 1000:.4f}",
        ),
        (
            "1080p 4-rung ladder, per output minute, Fargate x86 2 vCPU",
            f"{per_minute:.0f} s/min",
            f"{_ladder(per_minute, prices.FARGATE_X86):.4f}",
        ),
        (
            "1080p 4-rung ladder, per output minute, Fargate ARM 2 vCPU",
            f"{per_minute:.0f} s/min",
            f"{_ladder(per_minute, prices.FARGATE_ARM):.4f}",
        ),
        (
            "1080p 4-rung ladder, per output minute, Fargate Spot 2 vCPU",
            f"{per_minute:.0f} s/min",
            f"{_ladder(per_minute, prices.FARGATE_SPOT):.4f}",
        ),
        ("1080p 4-rung ladder, per output minute, MediaConvert Basic", "-", f"{mediaconvert:.4f}"),
    ]


def _ladder(seconds: float, rate: prices.FargateRate) -> float:
    return seconds / 3600 * (2 * rate.vcpu_hour + 4 * rate.gb_hour)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="transcodex-cost-") as tmp:
        folder = Path(tmp)
        warm, cold = image_times(folder, 20 if _quick() else 100)
        per_minute = ladder_seconds_per_source_minute(folder, 4 if _quick() else 10)
    print(
        f"list prices: {prices.PRICES_REGION}, {prices.PRICES_DATE} (runtime/shared/prices.py); {os.cpu_count()} CPUs"
    )
    print(
        f"measured: rotate 320x240 PNG warm {warm * 1000:.1f} ms, worker cold start {cold:.2f} s, "
        f"ladder {per_minute:.0f} s per source minute; + {IO_SECONDS} s S3/DB allowance per image job"
    )
    table = rows(warm, cold, per_minute)
    width = max(len(r[0]) for r in table)
    print(f"| {'case':<{width}} | {'time':>10} | {'USD':>8} |")
    print(f"|{'-' * (width + 2)}|{'-' * 11}:|{'-' * 9}:|")
    for case, measured, usd in table:
        print(f"| {case:<{width}} | {measured:>10} | {usd:>8} |")


if __name__ == "__main__":
    main()
