"""Container tooling without a Docker daemon: podman settings, local base images, the worker image.

No container registry answers on this machine (or in CI), so a base image the Dockerfiles
name is made from Debian's packages when it is missing: ``debootstrap --variant=minbase
SUITE`` (what ``debian:SUITE-slim`` is built from), tarred into a cache folder outside the
clone and imported into podman. With a working Docker daemon nothing is prepared: docker
pulls the real image.

    python -m runtime.local.images env           # print CONTAINERS_CONF=... (sourceable)
    python -m runtime.local.images base bookworm # make sure debian:bookworm-slim exists
    python -m runtime.local.images image         # build the worker image unless cached; print its tag

Everything cached is keyed by content and reported ("reused ..." / "built ...") on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from runtime.shared.settings import tool_settings

#: The repository root (images are built from a checkout, the build context the Dockerfile names).
ROOT = Path(__file__).resolve().parents[2]
WORKER_IMAGE = "transcodex-worker"
#: What goes into the worker image (the build context the Dockerfile copies from).
WORKER_INPUTS = (
    "runtime/worker/Dockerfile",
    "runtime/worker/requirements.lock",
    "runtime/__init__.py",
    "runtime/shared",
    "runtime/worker",
)
#: Image-size budget (MB, uncompressed as podman reports it; 942 MB when set): Debian minbase,
#: python3, ffmpeg with its codecs (Debian's ffmpeg pulls mesa and LLVM, ~160 MB, through SDL),
#: pyvips-binary's libvips. A test keeps the image under it.
WORKER_IMAGE_BUDGET_MB = 1000
DEBIAN_MIRROR = "http://deb.debian.org/debian"

CONTAINERS_CONF_TEXT = """\
# Written by runtime/local/images.py. crun (podman's default here) fails on rlimits and
# cgroups in this environment; runc with the cgroupfs manager and no default ulimits works.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


def say(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    path = tool_settings().cache_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


def containers_conf() -> Path:
    path = cache_dir() / "containers.conf"
    if not path.exists() or path.read_text() != CONTAINERS_CONF_TEXT:
        path.write_text(CONTAINERS_CONF_TEXT)
    return path


def engine() -> str:
    """``docker`` when a Docker daemon answers, else ``podman`` (a docker CLI alone is not enough)."""
    forced = tool_settings().container_engine
    if forced:
        return forced
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0:
                return "docker"
        except subprocess.TimeoutExpired:
            pass
    if shutil.which("podman"):
        return "podman"
    raise SystemExit("no container engine: install podman (scripts/system-deps.sh) or start Docker")


def engine_env() -> dict[str, str]:
    """The environment podman needs here (CONTAINERS_CONF); harmless for docker."""
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF") or str(containers_conf())}


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    stdin: IO[Any] | None = None,
    stdout: int | None = None,
    capture_output: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The container engine, checked, as text, with :func:`engine_env`."""
    return subprocess.run(
        argv,
        check=True,
        text=True,
        env=engine_env(),
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        capture_output=capture_output,
    )


def image_exists(eng: str, ref: str) -> bool:
    return subprocess.run([eng, "image", "inspect", ref], capture_output=True, env=engine_env()).returncode == 0


def image_size_mb(eng: str, ref: str) -> float:
    out = run([eng, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True).stdout
    return int(out.strip()) / 1e6


# --- base images --------------------------------------------------------------------------


def rootfs_tarball(suite: str) -> Path:
    """A minbase rootfs of ``suite`` as a tarball in the cache (debootstrap'd when missing).

    Keyed by what decides its content: suite, variant, mirror and debootstrap's version.
    """
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "debootstrap"], capture_output=True, text=True
    ).stdout.strip()
    key = hashlib.sha256(f"{suite}|minbase|{DEBIAN_MIRROR}|{version}".encode()).hexdigest()[:16]
    tarball = cache_dir() / "rootfs" / f"debian-{suite}-minbase-{key}.tar"
    if tarball.exists():
        say(f"reused rootfs {tarball}")
        return tarball
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap is missing: run scripts/system-deps.sh")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
        target = Path(tmp) / "rootfs"
        argv = ["debootstrap", "--variant=minbase"]
        subprocess.run([*argv, suite, str(target), DEBIAN_MIRROR], check=True, stdout=subprocess.DEVNULL)
        # like the official -slim images: no apt lists, no docs or caches
        for sub in ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(target / sub, ignore_errors=True)
            (target / sub).mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "--numeric-owner", "-C", str(target), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    say(f"built rootfs {tarball} in {time.monotonic() - started:.0f}s")
    return tarball


def ensure_base(suite: str, eng: str | None = None) -> str:
    """Make sure ``debian:SUITE-slim`` exists for the engine; return the reference to build FROM."""
    eng = eng or engine()
    ref = f"debian:{suite}-slim"
    if eng == "docker":
        return ref  # a daemon pulls the real image
    if image_exists(eng, ref):
        say(f"reused base image {ref}")
        return ref
    tarball = rootfs_tarball(suite)
    with tarball.open("rb") as fh:
        run([eng, "import", "--quiet", "--change", 'CMD ["bash"]', "-", ref], stdin=fh, stdout=subprocess.DEVNULL)
    say(f"imported base image {ref} from {tarball.name} (debootstrap minbase, no registry reachable)")
    return ref


# --- the worker image -------------------------------------------------------------------------


def inputs_hash(inputs: tuple[str, ...] = WORKER_INPUTS, extra: str = "") -> str:
    """sha256 over every file that goes into the image (paths and bytes, caches excluded)."""
    digest = hashlib.sha256(extra.encode())
    files: list[Path] = []
    for item in inputs:
        path = ROOT / item
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for path in files:
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def host_suite() -> str:
    """The Debian release this machine runs (the tests' ffmpeg is that release's)."""
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return fields.get("VERSION_CODENAME", "bookworm").strip('"') or "bookworm"


def _ca_secret() -> list[str]:
    """Lend this machine's CA bundle to a build as the secret "ca" (a TLS-inspecting proxy)."""
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    return ["--secret", f"id=ca,src={ca}"] if ca and Path(ca).is_file() else []


def build_worker_image(rebuild: bool = False) -> str:
    """Build the worker image unless one with the same inputs exists; return its tag."""
    eng = engine()
    suite = tool_settings().base_suite or host_suite()
    tag = f"{WORKER_IMAGE}:{inputs_hash(extra=suite)}"
    if not rebuild and image_exists(eng, tag):
        say(f"reused worker image {tag} ({image_size_mb(eng, tag):.0f} MB)")
        return tag
    base = ensure_base(suite, eng)
    started = time.monotonic()
    argv = [
        eng,
        "build",
        "-f",
        "runtime/worker/Dockerfile",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-t",
        tag,
        "-t",
        f"{WORKER_IMAGE}:latest",
    ]
    if eng == "podman":
        argv.append("--network=host")  # apt-get and pip inside the build
    argv += _ca_secret()
    run([*argv, "."], cwd=ROOT)
    say(
        f"built worker image {tag} in {time.monotonic() - started:.0f}s: "
        f"{image_size_mb(eng, tag):.0f} MB (budget {WORKER_IMAGE_BUDGET_MB} MB)"
    )
    return tag


def build_lambda_python_image(version: str, target: str = "runtime") -> str:
    """An image with Debian sid's python``version`` (the Lambda runtime's), cached by its Dockerfile:
    ``target`` "runtime" stands in for Lambda's runtime, "build" for the SAM build image."""
    eng = engine()
    dockerfile = ROOT / "runtime" / "local" / "lambda-python.Dockerfile"
    boto3 = importlib.metadata.version("boto3")  # the runtime's SDK: the version the tests run
    digest = hashlib.sha256(dockerfile.read_bytes() + f"{version}|{boto3}".encode()).hexdigest()[:16]
    name = {"runtime": "transcodex-lambda-python", "build": "transcodex-sam-build-python"}[target]
    tag = f"{name}:{version}-{digest}"
    if image_exists(eng, tag):
        say(f"reused Lambda Python image {tag}")
        return tag
    base = ensure_base("sid", eng)
    started = time.monotonic()
    argv = [
        eng,
        "build",
        "-f",
        str(dockerfile),
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"PYTHON=python{version}",
        "--build-arg",
        f"BOTO3_VERSION={boto3}",
        "--target",
        target,
        "-t",
        tag,
    ]
    if eng == "podman":
        argv.append("--network=host")
    argv += _ca_secret()
    run([*argv, str(dockerfile.parent)], stdout=subprocess.DEVNULL)
    say(f"built Lambda Python image {tag} ({target}) in {time.monotonic() - started:.0f}s")
    return tag


# --- running the worker image -----------------------------------------------------------------

#: Environment the worker container receives: what the ECS task definition sets
#: (TRANSCODEX_INPUT_BUCKET, TRANSCODEX_OUTPUT_BUCKET, limits), what RunTask's override adds
#: (JOB_ID), and the local stand-ins for what Fargate provides (database URL for the secret,
#: loopback endpoint and dummy credentials for the task role).
CONTAINER_ENV_PREFIXES = ("TRANSCODEX_", "AWS_")
CONTAINER_ENV_NAMES = ("JOB_ID", "PYTHONUNBUFFERED")


def container_name(job_id: str) -> str:
    """The worker container's name: one per job, so a leftover can be found by its job."""
    return f"transcodex-worker-{job_id}"


def remove_container(job_id: str) -> bool:
    """Force-remove the worker container of ``job_id`` if one is left (a supervisor killed with
    SIGKILL leaves its container running under the engine); True when one was removed."""
    try:
        eng = engine()
    except SystemExit:
        return False  # no engine on this machine: no container can exist
    wait = ["--time", "0"] if eng == "podman" else []
    proc = subprocess.run(
        [eng, "rm", "-f", *wait, container_name(job_id)],
        capture_output=True, text=True, env=engine_env(), timeout=60,
    )  # fmt: skip
    return proc.returncode == 0 and bool(proc.stdout.strip())


#: the worker image's scratch folder (TMPDIR; runtime/worker/Dockerfile)
SCRATCH = "/scratch"


def sandbox_flags(eng: str) -> list[str]:
    """Read-only root (podman: no writable /tmp either, as on ECS), every capability dropped,
    and a tmpfs scratch the image's user owns (podman's ``U``; docker honours ``mode``)."""
    owner = "U" if eng == "podman" else "mode=1777"
    flags = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
    flags += ["--tmpfs", f"{SCRATCH}:rw,nosuid,nodev,noexec,{owner}"]
    return [*flags, "--read-only-tmpfs=false"] if eng == "podman" else flags


def container_worker_argv(image: str, env: dict[str, str] | None = None, eng: str | None = None) -> tuple[str, ...]:
    """``podman run`` of the worker image for one job (``{job_id}`` is replaced by the launcher).

    ``-e NAME`` without a value passes the launcher's value through, so the argv (which shows
    in ``ps``) carries names only, never the database password. Host networking: the local
    PostgreSQL, S3 and SQS listen on 127.0.0.1. ``--pull=never``: no registry is ever asked.
    The box is the ECS task's (constructs_lib/worker.py): read-only root, no capabilities, no
    privilege gain, and one writable scratch folder, a tmpfs owned by the image's user.
    """
    eng = eng or engine()
    names = sorted({*(n for n in (env or {}) if n.startswith(CONTAINER_ENV_PREFIXES)), *CONTAINER_ENV_NAMES})
    argv = [eng, "run", "--rm", "--network=host", "--name", container_name("{job_id}"), *sandbox_flags(eng)]
    if eng == "podman":
        argv.append("--pull=never")
    for name in names:
        argv += ["-e", name]
    return (*argv, image, "--job-id", "{job_id}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print CONTAINERS_CONF=... for a shell")
    base = sub.add_parser("base", help="make sure debian:SUITE-slim exists (debootstrap'd when missing)")
    base.add_argument("suite", nargs="?", default=None)
    image = sub.add_parser("image", help="build the worker image (cached by the hash of its inputs)")
    image.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "env":
        print(f"export CONTAINERS_CONF={engine_env()['CONTAINERS_CONF']}")
    elif args.command == "base":
        print(ensure_base(args.suite or host_suite()))
    else:
        print(build_worker_image(rebuild=args.rebuild))


if __name__ == "__main__":
    main()
