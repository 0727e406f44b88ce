"""``make demo``: the whole product in one command, on one machine.

Starts the local platform (its own state in ``.transcodex/demo``), generates a 1080p test
clip and a photo-like image with ffmpeg, runs the seed's image job (rotate 180, watermark,
force-resize) and an adaptive-bitrate HLS ladder through the same client the CLI uses,
downloads every output to ``./demo-output``, checks the HLS plays (ffprobe reads it back
through its master playlist), prints a summary and stops the platform, even on failure.
``--keep-running`` leaves the platform up afterwards so the HLS URL can be opened in a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.local.client import ApiError, Client, job_id_of

IMAGE_JOB = {"ROTATE": "180", "WATERMARK": "TranscodeX demo", "FORCE-RESIZE": "1280x720"}


def _ffmpeg(args: list[str]) -> None:
    proc = subprocess.run(["ffmpeg", "-y", "-v", "error", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr[-1500:]}")


def make_clip(path: Path, seconds: int = 10, width: int = 1920, height: int = 1080) -> Path:
    """A test pattern with a 440 Hz tone: H.264/AAC MP4."""
    _ffmpeg(
        [
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path),
        ]
    )  # fmt: skip
    return path


def make_photo(path: Path, width: int = 2400, height: int = 1600) -> Path:
    """A detailed, photo-like JPEG: a Mandelbrot zoom with film grain."""
    _ffmpeg(
        [
            "-f", "lavfi", "-i", f"mandelbrot=size={width}x{height}:maxiter=300:start_scale=0.4",
            "-vf", "noise=alls=12:allf=t", "-frames:v", "1", "-q:v", "3", str(path),
        ]
    )  # fmt: skip
    return path


def probe_hls(master: Path) -> dict[str, Any]:
    """What a player sees through the master playlist: its streams and duration."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height:format=duration", "-of", "json",
         str(master)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"the downloaded HLS does not play: {proc.stderr[-800:]}")
    probed = json.loads(proc.stdout)
    if not isinstance(probed, dict):
        raise RuntimeError(f"ffprobe printed no JSON object: {proc.stdout[:200]}")
    return probed


@dataclass(frozen=True)
class DemoMedia:
    """What the demo generates and asks for; the defaults are the README's demo, tests use less."""

    clip_seconds: int = 10
    clip_size: tuple[int, int] = (1920, 1080)
    photo_size: tuple[int, int] = (2400, 1600)
    renditions: tuple[str, ...] = ("1080p", "720p", "480p", "360p")


def run_demo(
    out_dir: Path,
    data_dir: Path,
    keep_running: bool = False,
    progress: bool = True,
    media_spec: DemoMedia = DemoMedia(),
) -> dict[str, Any]:
    from runtime.local.platform import Platform

    started = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    media = data_dir / "media"
    media.mkdir(parents=True)
    platform = Platform(data_dir, api_port=0, concurrency=2, echo=None)
    summary: dict[str, Any] = {}
    try:
        print(f"starting the local platform (log: {data_dir / 'logs' / 'platform.log'}) ...", flush=True)
        api_url = platform.start()
        print(f"API {api_url}", flush=True)
        (cw, ch), (pw, ph) = media_spec.clip_size, media_spec.photo_size
        print(f"generating a {media_spec.clip_seconds} s {ch}p clip and a {pw}x{ph} photo-like image ...", flush=True)
        clip = make_clip(media / f"clip-{ch}p.mp4", media_spec.clip_seconds, cw, ch)
        photo = make_photo(media / "photo.jpg", pw, ph)
        video_job = [{"op": "transcode", "renditions": list(media_spec.renditions)}, {"op": "poster", "at_seconds": 1}]

        client = Client(api_url)
        email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
        password = uuid.uuid4().hex
        client.signup("Demo User", email.split("@")[0], email, password)
        client.login(email, password)

        jobs = {
            "image": client.submit_file(photo, IMAGE_JOB, progress=progress),
            "video": client.submit_file(clip, video_job, progress=progress),
        }
        for name, job in jobs.items():
            job_id = job_id_of(job)
            final = client.wait(job_id, progress=progress, timeout_s=600)
            if final.get("status") != "SUCCEEDED":
                error = final.get("error") or {}
                raise RuntimeError(f"the {name} job {final.get('status')}: {error.get('code')}: {error.get('message')}")
            files = client.download(job_id, out_dir / name, progress=progress)
            info = client.download_info(job_id)
            summary[name] = {"job_id": job_id, "status": final["status"], "files": files, "info": info}

        video_dir = out_dir / "video" / summary["video"]["job_id"]
        master = next(iter(sorted(video_dir.rglob("master.m3u8"))), None) or next(iter(video_dir.rglob("*.m3u8")))
        summary["hls_probe"] = probe_hls(master)
        summary["hls_master"] = master
        summary["hls_url"] = summary["video"]["info"].get("playback_url")
        summary["seconds"] = time.monotonic() - started
        summary["data_dir"] = data_dir
        print_summary(summary, out_dir)
        if keep_running:
            print("the platform keeps running so the HLS URL plays; Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                platform.wait()
        return summary
    finally:
        print("stopping the local platform ...", flush=True)
        platform.stop()


def print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    print("\n=== TranscodeX demo: summary ===")
    for name in ("image", "video"):
        job = summary[name]
        total = sum(p.stat().st_size for p in job["files"])
        print(f"{name:>6} job {job['job_id']}  {job['status']}  {len(job['files'])} file(s), {total / 1e6:.1f} MB")
        for output in job["info"].get("outputs", []):
            size = f"{output.get('width')}x{output.get('height')}" if output.get("width") else ""
            print(f"         {output.get('role'):<14} {output.get('name'):<40} {size}")
    streams = summary["hls_probe"].get("streams", [])
    heights = sorted({s["height"] for s in streams if s.get("codec_type") == "video" and s.get("height")}, reverse=True)
    print(f"   HLS ladder: {', '.join(f'{h}p' for h in heights)}; plays from disk: {summary['hls_master']}")
    print(f"   HLS URL (plays in a browser while the platform runs): {summary['hls_url']}")
    print(f"   replay it later (same port; link valid 1 h): transcodex local up --data-dir {summary['data_dir']}")
    print(f"   outputs in {out_dir.resolve()}; took {summary['seconds']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local.demo", description=__doc__)
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--data-dir", default=".transcodex/demo")
    parser.add_argument("--keep-running", action="store_true", help="keep the platform up after the summary")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through run_demo's finally, which stops the platform

    signal.signal(signal.SIGTERM, on_term)
    try:
        run_demo(Path(args.out), Path(args.data_dir), args.keep_running, progress=not args.no_progress)
    except ApiError as err:
        print(f"demo failed: {err.describe()}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
