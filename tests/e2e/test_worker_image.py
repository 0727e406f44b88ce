"""The worker image users deploy, built from runtime/worker/Dockerfile and run by the local platform.

The image is built once per content (runtime.local.images tags it with the hash of the
Dockerfile, the requirements and runtime/{shared,worker}), so a warm run reuses it. The
platform then runs every worker INSIDE the image (``local up --worker-image``) with the
environment the ECS task definition gives it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from runtime.local import images
from runtime.local.client import Client, job_id_of
from scripts import locks
from scripts.locks import pins
from tests.e2e.platform_proc import RunningPlatform, owned_processes, start_platform
from tests.media import ffprobe, make_image, make_video

ENGINE_MISSING = shutil.which("podman") is None and shutil.which("docker") is None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.skipif(ENGINE_MISSING, reason="needs podman (scripts/system-deps.sh installs it) or docker"),
]


@pytest.fixture(scope="module")
def worker_image() -> str:
    started = time.monotonic()
    tag = images.build_worker_image()
    print(f"worker image {tag} ready in {time.monotonic() - started:.1f}s")
    return tag


def in_image(tag: str, script: str) -> str:
    proc = subprocess.run(
        [images.engine(), "run", "--rm", "--pull=never", "--network=none", "--entrypoint", "sh", tag, "-c", script],
        capture_output=True,
        text=True,
        env=images.engine_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_given_the_built_image_when_inspected_then_it_is_under_budget_non_root_and_without_compilers(
    worker_image: str,
) -> None:
    size = images.image_size_mb(images.engine(), worker_image)
    print(f"worker image size: {size:.0f} MB (budget {images.WORKER_IMAGE_BUDGET_MB} MB)")
    assert size < images.WORKER_IMAGE_BUDGET_MB

    out = in_image(worker_image, "id -u; for t in gcc cc c++ make pip pip3; do command -v $t || true; done")
    uid, *tools = out.split()
    assert uid != "0" and tools == []


def test_given_the_jobs_sandbox_flags_when_the_image_runs_then_only_scratch_is_writable_and_no_capability_held(
    worker_image: str,
) -> None:
    script = (
        "id -u; grep CapEff /proc/self/status; "
        "for d in /app /tmp /home/worker /scratch; do touch $d/probe 2>/dev/null && echo $d=rw || echo $d=ro; done"
    )
    eng = images.engine()
    flags = ["--rm", "--pull=never", "--network=none", *images.sandbox_flags(eng)]
    proc = subprocess.run(
        [eng, "run", *flags, "--entrypoint", "sh", worker_image, "-c", script],
        capture_output=True,
        text=True,
        env=images.engine_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    uid, _, capabilities, *writable = proc.stdout.split()
    assert uid != "0" and int(capabilities, 16) == 0
    assert writable == ["/app=ro", "/tmp=ro", "/home/worker=ro", "/scratch=rw"]


def test_given_the_built_image_when_asked_for_versions_then_libvips_and_ffmpeg_are_the_tests_own(
    worker_image: str,
) -> None:
    import pyvips

    out = in_image(
        worker_image,
        "python -c 'import pyvips, sys; print(pyvips.version(0), pyvips.version(1), pyvips.version(2)); "
        'print(*sys.version_info[:2], sep=".")\'; ffmpeg -version',
    )
    vips_line, python_line, ffmpeg_line = out.splitlines()[:3]
    assert vips_line.split() == [str(pyvips.version(i)) for i in range(3)]
    host_ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert re.match(r"ffmpeg version \S+", ffmpeg_line)
    assert ffmpeg_line.split()[2] == host_ffmpeg.split()[2]
    worker_lock = next(lock for lock in locks.LOCKS if lock.name == "worker image")
    assert pins(images.ROOT / worker_lock.output)["pyvips-binary"] == importlib.metadata.version("pyvips-binary")
    assert python_line == worker_lock.python  # the lock was resolved for the image's Python


@pytest.fixture(scope="module")
def platform(workdir: Path, worker_image: str) -> Any:
    running = start_platform(workdir / "platform", extra_args=("--worker-image", worker_image))
    try:
        yield running
    finally:
        state = running.state
        sessions = {running.process.pid, *(child["pid"] for child in state["children"].values())}
        ports = list(state["ports"].values())
        running.stop()
        assert owned_processes(running.data_dir, sessions, ports) == []


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> Client:
    client = Client(platform.api_url, timeout=60)
    name = f"img{uuid.uuid4().hex[:10]}"
    email, password = f"{name}@example.com", uuid.uuid4().hex
    client.signup("Image E2E", name, email, password)
    client.login(email, password)
    return client


def containers_started(tag: str, since: float) -> set[str]:
    """Names of the containers of ``tag`` started since ``since`` (the engine's event log)."""
    eng = images.engine()
    until = ["--stream=false"] if eng == "podman" else ["--until", str(int(time.time()) + 1)]
    proc = subprocess.run(
        [
            eng,
            "events",
            *until,
            "--since",
            str(int(since)),
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}} {{.Actor.Attributes.image}}" if eng == "docker" else "{{.Name}} {{.Image}}",
        ],
        capture_output=True,
        text=True,
        env=images.engine_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return {line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] and tag in line.split()[1]}


def run_in_image(client: Client, tag: str, path: Path, operations: Any, out: Path) -> list[Path]:
    since = time.time() - 1
    job = client.submit_file(path, operations)
    job_id = job_id_of(job)
    final = client.wait(job_id, timeout_s=300, interval_s=0.5)
    assert final["status"] == "SUCCEEDED", final.get("error")
    assert f"transcodex-worker-{job_id}" in containers_started(tag, since), "the worker did not run in the image"
    return client.download(job_id, out)


def test_given_workers_in_the_image_when_an_image_job_runs_then_it_succeeds_with_the_operations_applied(
    client: Client, worker_image: str, workdir: Path, tmp_path: Path
) -> None:
    import pyvips

    source = make_image(workdir / "photo.jpg", 640, 480)
    files = run_in_image(client, worker_image, source, {"ROTATE": "90", "FORCE-RESIZE": "120x300"}, tmp_path)

    outputs = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    assert len(outputs) == 1, files
    image = pyvips.Image.new_from_file(str(outputs[0]))
    assert (image.width, image.height) == (120, 300)


def test_given_workers_in_the_image_when_a_1080p_ladder_runs_then_every_rung_is_valid_hls(
    client: Client, worker_image: str, workdir: Path, tmp_path: Path
) -> None:
    source = make_video(workdir / "clip1080.mp4", seconds=4, width=1920, height=1080)
    ladder = [{"op": "transcode", "renditions": ["1080p", "720p", "360p"], "segment_seconds": 2}]
    files = run_in_image(client, worker_image, source, ladder, tmp_path)

    master = next(p for p in files if p.name.endswith(".m3u8") and "#EXT-X-STREAM-INF" in p.read_text())
    probe = ffprobe(master)
    heights = sorted(s["height"] for s in probe["streams"] if s["codec_type"] == "video")
    assert heights == [360, 720, 1080]
    assert float(probe["format"]["duration"]) == pytest.approx(4, abs=0.5)


def _containers(name: str) -> list[str]:
    proc = subprocess.run(
        [images.engine(), "ps", "--all", "--filter", f"name={name}", "--format", "{{.Names}}"],
        capture_output=True, text=True, env=images.engine_env(), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_given_a_killed_supervisor_with_a_worker_in_the_image_when_up_again_then_the_container_is_removed(
    worker_image: str, workdir: Path
) -> None:
    import os
    import signal

    import psycopg

    data_dir = workdir / "orphan"
    first = start_platform(data_dir, extra_args=("--worker-image", worker_image))
    user = Client(first.api_url, timeout=60)
    name = f"orp{uuid.uuid4().hex[:10]}"
    user.signup("Orphan", name, f"{name}@example.com", "pw-" + name)
    user.login(f"{name}@example.com", "pw-" + name)
    source = make_video(workdir / "long.mp4", seconds=60, width=640, height=360)
    job_id = job_id_of(user.submit_file(source, [{"op": "transcode", "renditions": ["360p"]}]))
    deadline = time.monotonic() + 120
    while user.status(job_id)["status"] != "RUNNING":
        assert time.monotonic() < deadline, user.status(job_id)
        time.sleep(0.1)
    state = first.state
    with psycopg.connect(state["database_url"]) as conn:
        (task_arn,) = conn.execute("SELECT task_arn FROM jobs WHERE id = %s", (job_id,)).fetchone()
    groups = {first.process.pid, *(c["pid"] for c in state["children"].values()), int(task_arn.split(":")[1])}
    groups.add(int((data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0]))
    for group in groups:  # SIGKILL, as a crash would: the engine keeps the container running
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    first.process.wait(30)
    assert _containers(images.container_name(job_id)) == [images.container_name(job_id)]
    # Frozen, so it cannot notice its job ended and exit by itself: only the cleanup can remove it.
    subprocess.run([images.engine(), "pause", images.container_name(job_id)], check=True, env=images.engine_env())

    second = start_platform(data_dir, extra_args=("--worker-image", worker_image))
    try:
        final = Client(second.api_url, user.creds).wait(job_id, timeout_s=120, interval_s=0.5)
        left = _containers(images.container_name(job_id))
    finally:
        second.stop()
    assert left == []
    assert final["status"] == "FAILED" and final["error"]["code"], final
