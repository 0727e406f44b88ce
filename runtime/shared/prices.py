"""List prices and the cost of one job run: the status response's ``estimated_cost_usd`` and
bench/cost.py's table both come from here (one owner of the prices).

On-demand list prices, **us-east-1, as of 2026-12-02** (compute only: no S3, data transfer,
NAT, CloudWatch or public IPv4):

* Fargate Linux/x86: $0.04048 per vCPU-hour, $0.004445 per GB-hour; Linux/ARM: $0.03238 per
  vCPU-hour, $0.00356 per GB-hour; per second, one-minute minimum
  (https://aws.amazon.com/fargate/pricing/).
* Fargate Spot: the discount varies by hour and region, "up to 70 %"; the figures below take
  70 % off x86 on-demand ($0.012144 / vCPU-hour, $0.0013335 / GB-hour), the usual us-east-1
  level (https://aws.amazon.com/fargate/pricing/, "Fargate Spot").
* Lambda x86: $0.0000166667 per GB-second, ARM $0.0000133334 per GB-second, $0.20 per million
  requests; ephemeral storage above 512 MB $0.0000000309 per GB-second; billed per millisecond
  (https://aws.amazon.com/lambda/pricing/).
* AWS Elemental MediaConvert, on-demand Basic tier (AVC, single pass, <= 30 fps), first
  volume tier: $0.0075 per output minute SD (< 720 lines), $0.015 HD (720-1080), $0.030 UHD
  (https://aws.amazon.com/mediaconvert/pricing/; MediaConvert now bills "normalized minutes"
  with per-feature multipliers, of which these are the SD/HD/UHD rates; check the page before
  quoting them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_DATE = "2026-12-02"
PRICES_REGION = "us-east-1"


@dataclass(frozen=True)
class FargateRate:
    vcpu_hour: float
    gb_hour: float


FARGATE_X86 = FargateRate(0.04048, 0.004445)
FARGATE_ARM = FargateRate(0.03238, 0.00356)
FARGATE_SPOT = FargateRate(0.04048 * 0.3, 0.004445 * 0.3)
FARGATE_MINIMUM_SECONDS = 60

LAMBDA_X86_GB_SECOND = 0.0000166667
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000

#: MediaConvert Basic tier, USD per output minute, by the output's lines.
MEDIACONVERT_BASIC_SD = 0.0075
MEDIACONVERT_BASIC_HD = 0.015
MEDIACONVERT_BASIC_UHD = 0.030


def fargate_cost(seconds: float, cpu_units: int, memory_mib: int, rate: FargateRate = FARGATE_X86) -> float:
    """One task of ``cpu_units``/``memory_mib`` billed for ``seconds`` (one-minute minimum)."""
    billed = max(float(seconds), FARGATE_MINIMUM_SECONDS) / 3600
    return billed * (cpu_units / 1024 * rate.vcpu_hour + memory_mib / 1024 * rate.gb_hour)


def lambda_cost(seconds: float, memory_mib: int, arm: bool = False) -> float:
    """One invocation of ``memory_mib`` for ``seconds`` (billed per millisecond, plus the request)."""
    billed = math.ceil(float(seconds) * 1000) / 1000
    per_gb_second = LAMBDA_ARM_GB_SECOND if arm else LAMBDA_X86_GB_SECOND
    return billed * memory_mib / 1024 * per_gb_second + LAMBDA_REQUEST


def mediaconvert_minute(height: int) -> float:
    """MediaConvert Basic tier price of one output minute ``height`` lines tall."""
    if height < 720:
        return MEDIACONVERT_BASIC_SD
    return MEDIACONVERT_BASIC_HD if height <= 1080 else MEDIACONVERT_BASIC_UHD


def job_cost(
    runner: str | None,
    compute_seconds: float | None,
    cpu_units: int | None,
    memory_mib: int | None,
    *,
    arm: bool = False,
    spot: bool = False,
) -> float | None:
    """The list-price compute cost of one job's run, or None when unknown (not run yet, or
    local: a local run costs nothing billable)."""
    if compute_seconds is None or runner not in ("lambda", "fargate") or not memory_mib:
        return None
    if runner == "lambda":
        return lambda_cost(compute_seconds, memory_mib, arm)
    if not cpu_units:
        return None
    rate = FARGATE_SPOT if spot else (FARGATE_ARM if arm else FARGATE_X86)
    return fargate_cost(compute_seconds, cpu_units, memory_mib, rate)
