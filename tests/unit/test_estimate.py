"""The work estimate, its calibration, the placement it drives, and the prices of a run."""

from __future__ import annotations

import pytest

from runtime.shared import estimate, prices
from runtime.shared.estimate import Bounds, Placement, Probe, TooLarge, place, video_work
from runtime.shared.settings import ConfigError, load_settings

pytestmark = pytest.mark.unit

LADDER_1080 = [{"op": "transcode", "renditions": [1080, 720, 480, 360]}]
WITH_LAMBDA = Bounds(lambda_function="worker-fn")


def test_given_calibration_runs_when_fit_recomputed_then_constants_match_the_measurements() -> None:
    (_, dur, fps, src, out4, cpu4, _), (_, _, _, _, out1, cpu1, _), check = estimate.CALIBRATION
    frames = dur * fps
    encode = (cpu4 - cpu1) / (frames * (out4 - out1))
    decode = (cpu1 - frames * encode * out1) / (frames * src)
    assert encode == pytest.approx(estimate.ENCODE_CPU_PER_PIXEL, rel=0.01)
    assert decode == pytest.approx(estimate.DECODE_CPU_PER_PIXEL, rel=0.01)
    _, dur3, fps3, src3, out3, cpu3, _ = check
    predicted = dur3 * fps3 * (decode * src3 + encode * out3)
    assert cpu3 <= predicted <= cpu3 * 1.25, "the held-out run must be estimated within +25 %, never under"


def test_given_1080p_ladder_when_estimated_then_cpu_grows_with_duration_and_rungs() -> None:
    probe = Probe(60, 1920, 1080)
    one_minute = video_work(LADDER_1080, probe)
    assert video_work(LADDER_1080, Probe(120, 1920, 1080)).cpu_seconds > 1.9 * (one_minute.cpu_seconds - 3)
    assert video_work([{"op": "transcode", "renditions": [360]}], probe).cpu_seconds < one_minute.cpu_seconds / 3
    # rungs above the source are skipped: a 720p source's 1080p ladder is its 720p one
    small = Probe(60, 1280, 720)
    assert video_work(LADDER_1080, small).cpu_seconds == pytest.approx(
        video_work([{"op": "transcode", "renditions": [720, 480, 360]}], small).cpu_seconds
    )


def test_given_poster_only_when_estimated_then_light_whatever_the_duration() -> None:
    work = video_work([{"op": "poster", "at_seconds": 1.0}], Probe(3 * 3600, 3840, 2160))
    assert work.light and work.cpu_seconds < 5


def test_given_image_and_short_video_and_poster_when_placed_then_lambda() -> None:
    assert isinstance(image := place(estimate.image_work(200_000), 200_000, WITH_LAMBDA), Placement)
    assert image.runner == "lambda"
    short = place(video_work(LADDER_1080, Probe(10, 1920, 1080)), 20_000_000, WITH_LAMBDA)
    assert isinstance(short, Placement) and short.runner == "lambda"
    poster = place(estimate.job_work("VIDEO", [{"op": "poster"}], 10**9, None), 10**9, WITH_LAMBDA)
    assert isinstance(poster, Placement) and poster.runner == "lambda"


def test_given_no_worker_function_when_placed_then_fargate() -> None:
    placed = place(estimate.image_work(200_000), 200_000, Bounds())
    assert isinstance(placed, Placement) and placed.runner == "fargate"


def test_given_long_video_when_placed_then_fargate_sized_up_with_a_fitting_timeout() -> None:
    work = video_work(LADDER_1080, Probe(40 * 60, 1920, 1080))
    placed = place(work, 2 * 10**9, WITH_LAMBDA)
    assert isinstance(placed, Placement) and placed.runner == "fargate"
    # 40 min of 1080p ladder does not fit 1 h on 1 vCPU with the margin: a bigger task, a valid pair
    assert placed.cpu is not None and placed.cpu > 1024
    low, high, step = estimate.FARGATE_SIZES[placed.cpu]
    assert low <= placed.memory_mib <= high and placed.memory_mib % step == 0
    assert placed.estimated_seconds is not None
    assert placed.estimated_seconds * 1.5 < placed.timeout_seconds <= 3600


def test_given_three_hour_4k_ladder_when_placed_then_too_large_with_estimate_and_limit() -> None:
    work = video_work([{"op": "transcode", "renditions": [2160, 1440, 1080, 720]}], Probe(3 * 3600, 3840, 2160))
    refused = place(work, 10**9, WITH_LAMBDA)
    assert isinstance(refused, TooLarge)
    assert refused.limit_seconds == 3600 and refused.estimated_seconds > 3600
    assert set(refused.details()) >= {"estimated_seconds", "limit_seconds"}


def test_given_unknown_video_work_when_placed_then_largest_allowed_task_and_longest_timeout() -> None:
    placed = place(None, 10**6, Bounds(fargate_max_cpu=8192, max_timeout_seconds=7200))
    assert isinstance(placed, Placement) and (placed.cpu, placed.timeout_seconds) == (8192, 7200)


def test_given_runner_env_when_loaded_then_bounds_follow_and_bad_sizes_are_named() -> None:
    env = {
        "TRANSCODEX_WORKER_FUNCTION": "fn",
        "TRANSCODEX_FARGATE_MAX_CPU": "8192",
        "TRANSCODEX_WORKER_TIMEOUT_SECONDS": "7200",
    }
    bounds = estimate.bounds(load_settings(env))
    assert (bounds.lambda_function, bounds.fargate_max_cpu, bounds.max_timeout_seconds) == ("fn", 8192, 7200)
    with pytest.raises(ConfigError, match="FARGATE_MIN_CPU must be one of"):
        load_settings({"TRANSCODEX_FARGATE_MIN_CPU": "3000"})


def test_given_list_prices_when_costing_then_fargate_minimum_minute_and_lambda_per_ms() -> None:
    # the figure: 2 vCPU / 4 GB for the one-minute minimum
    assert prices.fargate_cost(5, 2048, 4096) == pytest.approx(0.00165, abs=0.00001)
    assert prices.fargate_cost(120, 2048, 4096) == pytest.approx(2 * prices.fargate_cost(60, 2048, 4096))
    assert prices.lambda_cost(0.5, 2048) == pytest.approx(0.5 * 2 * 0.0000166667 + 0.2e-6)
    assert prices.job_cost("local", 10, None, None) is None
    spot = prices.job_cost("fargate", 600, 2048, 4096, spot=True)
    assert spot is not None and spot < prices.fargate_cost(600, 2048, 4096) / 3
