"""The worker's registries against the contract: every operation model has exactly one
implementation, every implementation a model of its job type, and a job runs them in order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runtime.shared.contract import IMAGE_MODELS, REGISTRY, VIDEO_MODELS, JobType, parse_job
from runtime.shared.settings import Limits
from runtime.worker import image, video


@pytest.mark.parametrize(
    ("models", "registry", "job_type"),
    [(IMAGE_MODELS, image.OPERATIONS, JobType.IMAGE), (VIDEO_MODELS, video.VIDEO_OPERATIONS, JobType.VIDEO)],
    ids=["image", "video"],
)
def test_given_a_job_type_when_its_models_and_implementations_are_compared_then_they_pair_one_to_one(
    models: tuple[type, ...], registry: dict[type, Any], job_type: JobType
) -> None:
    assert set(registry) == set(models), "a model without an implementation, or an implementation without a model"
    assert all(model.job_type is job_type for model in registry)
    runs = [getattr(impl, "run", impl) for impl in registry.values()]
    assert all(callable(run) for run in runs)
    assert [run for run, n in Counter(runs).items() if n > 1] == [], "one implementation serves two operations"


def test_given_both_registries_when_joined_then_they_cover_the_whole_contract_once() -> None:
    assert set(image.OPERATIONS).isdisjoint(video.VIDEO_OPERATIONS)
    assert set(image.OPERATIONS) | set(video.VIDEO_OPERATIONS) == set(REGISTRY.values())
    assert all(step.cost > 0 for step in video.VIDEO_OPERATIONS.values())


def test_given_video_operations_when_processed_then_each_runs_in_the_declared_order_with_its_progress_share(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = parse_job("VIDEO", [{"op": "poster"}, {"op": "transcode"}, {"op": "transcode-resolution", "height": 360}])
    calls: list[tuple[str, Any]] = []
    seen: list[float] = []

    def fake(name: str) -> Any:
        def run(source: Path, work: Path, info: Any, op: Any, progress: Any, deadline: Any) -> list[Any]:
            calls.append((name, op))
            progress(1.0)
            return []

        return run

    registry = {
        model: video.VideoStep(fake(model.op_name()), step.cost) for model, step in video.VIDEO_OPERATIONS.items()
    }
    monkeypatch.setattr(video, "VIDEO_OPERATIONS", registry)
    monkeypatch.setattr(video, "probe", lambda path: video.VideoInfo(10.0, 640, 360, 0, False, 25.0, "h264"))

    video.process_video(tmp_path / "in.mp4", tmp_path, spec.operations, Limits(), seen.append)

    assert calls == [(op.op, op) for op in spec.operations]
    total = sum(video.VIDEO_OPERATIONS[type(op)].cost for op in spec.operations)
    costs = [video.VIDEO_OPERATIONS[type(op)].cost for op in spec.operations]
    assert seen == pytest.approx([sum(costs[: i + 1]) / total for i in range(len(costs))])
