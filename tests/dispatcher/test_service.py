"""DispatcherService, the object the Lambda handlers and the local loop both call: a batch on the
real moto queue and PostgreSQL, with the failures the handlers' tests cannot provoke."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runtime.dispatcher.launchers import LaunchRequest
from runtime.dispatcher.service import DispatcherConfig, DispatcherService
from runtime.local.launcher import LocalProcessLauncher
from runtime.shared import db as dbm
from runtime.shared.settings import ConfigError, Settings
from runtime.shared.sqs import SqsQueue
from runtime.shared.status import JobStatus
from tests.dispatcher.conftest import body_for, get_job


class BrokenForOneJob(LocalProcessLauncher):
    """The local launcher, with a bug (not a LaunchError) for one job."""

    broken_job_id: str = ""

    def launch(self, request: LaunchRequest) -> str:
        if request.job_id == self.broken_job_id:
            raise RuntimeError("launcher bug")
        return super().launch(request)


def test_given_an_unexpected_error_for_one_message_when_a_batch_is_dispatched_then_only_that_one_is_retried(
    db: dbm.Database, make_job: Any, queue: Any
) -> None:
    broken, fine = make_job(), make_job()
    launcher = BrokenForOneJob(max_workers=2, command=["sleep", "30"])
    launcher.broken_job_id = str(broken["id"])
    service = DispatcherService(db=db, launcher=launcher)
    jobs = SqsQueue(queue.sqs, queue.url)
    jobs.send(body_for(broken))
    jobs.send(body_for(fine))
    received = jobs.receive(10)
    try:
        settled = service.dispatch_batch(received)
    finally:
        launcher.shutdown(grace_seconds=1)

    by_body = {m.body: m for m in received}
    assert settled.retry == (by_body[body_for(broken)],)
    assert settled.handled == (by_body[body_for(fine)],)
    assert all(m.receipt_handle and m.receive_count == 1 for m in received)
    assert get_job(db, fine["id"])["task_arn"].startswith("local:")
    # The claim is kept without a task: a redelivery after the claim timeout takes it over.
    stored = get_job(db, broken["id"])
    assert (stored["status"], stored["task_arn"], stored["dispatch_count"]) == (JobStatus.DISPATCHED, None, 1)


def test_given_a_service_without_a_launcher_when_a_batch_arrives_then_it_is_refused_and_no_job_is_claimed(
    db: dbm.Database, make_job: Any, queue: Any
) -> None:
    job = make_job()
    jobs = SqsQueue(queue.sqs, queue.url)
    jobs.send(body_for(job))
    service = DispatcherService(db=db, config=DispatcherConfig(), queue=jobs)

    with pytest.raises(ConfigError, match="without a launcher"):
        service.dispatch_batch(jobs.receive(10))
    with pytest.raises(ConfigError, match="without the input bucket"):
        service.sweep()

    assert get_job(db, job["id"])["status"] == JobStatus.QUEUED


def test_given_settings_without_an_input_bucket_when_a_sweeping_service_is_built_then_it_names_the_variable(
    settings: Settings,
) -> None:
    with pytest.raises(ConfigError, match="TRANSCODEX_INPUT_BUCKET"):
        DispatcherService.from_settings(replace(settings, input_bucket=""), queue=True, storage=True)
