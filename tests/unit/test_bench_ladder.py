"""The ladder bench's statistics and the bench runner: pure, no ffmpeg."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from bench import run as bench_run
from bench.ladder import Overhead, Spread, paired_ratios, run_order, spread

pytestmark = pytest.mark.unit


def test_given_paired_runs_when_ratioed_then_each_pair_divides_on_its_own() -> None:
    # drift: the second pair ran on a machine 20% slower, for both methods
    assert paired_ratios([12.0, 14.4], [10.0, 12.0]) == pytest.approx([1.2, 1.2])


def test_given_unpaired_runs_when_ratioed_then_value_error_says_counts() -> None:
    with pytest.raises(ValueError, match="got 2 and 1"):
        paired_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_ratios([], [])


def test_given_ratios_when_spread_then_median_and_range() -> None:
    result = spread([1.3, 1.1, 1.2, 1.25])
    assert result == Spread(pytest.approx(1.225), 1.1, 1.3)
    assert str(spread([1.0, 1.5, 1.2])) == "1.20x (range 1.00-1.50)"
    with pytest.raises(ValueError):
        spread([])


def test_given_cpu_times_when_the_overhead_is_split_then_the_rest_is_what_ours_could_still_save() -> None:
    extra = Overhead(ours=19.4, floor=15.9, decode=2.8, audio=0.3)
    assert extra.rest == pytest.approx(0.4)
    assert extra.reachable_ratio == pytest.approx(19.4 / 19.0)
    assert Overhead(10.0, 10.0, 0.0, 0.0).reachable_ratio == 1.0  # ours = floor: nothing to save


def test_given_repeats_when_ordered_then_floor_and_ours_alternate_first() -> None:
    assert run_order(3) == [("floor", "ours"), ("ours", "floor"), ("floor", "ours")]
    assert all(sorted(pair) == ["floor", "ours"] for pair in run_order(6))


def test_given_module_with_argv_main_when_bench_runner_runs_it_then_it_gets_no_runner_args(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    module = types.ModuleType("bench.fake_argv")
    module.main = lambda argv=None: seen.append(argv)  # type: ignore[attr-defined]
    plain = types.ModuleType("bench.fake_plain")
    plain.main = lambda: seen.append("plain")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fake_argv", module)
    monkeypatch.setitem(sys.modules, "bench.fake_plain", plain)
    monkeypatch.setattr(bench_run, "discover", lambda: ["fake_argv", "fake_plain"])
    monkeypatch.setattr(sys, "argv", ["python -m bench.run", "fake_argv", "--quick"])
    assert bench_run.main(["fake_argv", "fake_plain"]) == 0
    assert seen == [[], "plain"]
