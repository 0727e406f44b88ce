"""Our HLS ladder vs the seed's method, on one generated 1080p clip.

The seed ran one ffmpeg per resolution (640x360, 1280x720, 1920x1080, 2560x1440) in parallel,
libx264 ``-preset fast -crf 23`` with AAC 128k: four decodes of the same source, and an upscale
to 1440p. Ours decodes once and feeds every rung (split + scale) in one ffmpeg, capped CRF at
``-preset veryfast``, HLS segments. We report wall and CPU time for each and their ratios, and
the SSIM of every rung against the source (the rung scaled back to the source size, as a
viewer's player would), for ours and for the seed's comparable outputs.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from runtime.shared.contract import Transcode
from runtime.worker.video import plan_ladder, probe, transcode_hls

SEED_SIZES = ((640, 360), (1280, 720), (1920, 1080), (2560, 1440))


def _quick() -> bool:
    return os.environ.get("TRANSCODEX_BENCH_QUICK") == "1"


def make_source(path: Path, seconds: int) -> Path:
    """A 1080p25 testsrc2 clip with a sine tone, encoded near-transparently (CRF 16)."""
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "16",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ours(source: Path, work: Path) -> tuple[float, float, list[tuple[str, Path, int, int]]]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    transcode_hls(source, work, probe(source), Transcode())
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    info = probe(source)
    rungs = plan_ladder(*info.display_size, Transcode().renditions)
    return wall, cpu, [(r.name, work / "hls" / r.name / "index.m3u8", r.width, r.height) for r in rungs]


def run_seed(source: Path, work: Path) -> tuple[float, float, dict[int, Path]]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    outputs = {h: work / f"seed_{h}p.mp4" for _, h in SEED_SIZES}
    procs = [
        subprocess.Popen(
            [
                "ffmpeg",
                "-y",
                "-v",
                "error",
                "-i",
                str(source),
                "-vf",
                f"scale={w}:{h}",
                "-c:v",
                "libx264",
                "-preset",
                "fast",
                "-crf",
                "23",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                str(outputs[h]),
            ]
        )
        for w, h in SEED_SIZES
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("a seed-method ffmpeg failed")
    return time.perf_counter() - t0, _children_cpu() - cpu0, outputs


def ssim(distorted: Path, reference: Path, width: int, height: int) -> float:
    """SSIM (All) of ``distorted`` scaled to ``width`` x ``height`` against ``reference``."""
    proc = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "info",
            "-nostats",
            "-i",
            str(distorted),
            "-i",
            str(reference),
            "-lavfi",
            f"[0:v]scale={width}:{height}:flags=bicubic,setsar=1[d];[1:v]setsar=1[r];[d][r]ssim",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
    )
    match = re.search(r"SSIM .*All:([0-9.]+)", proc.stderr)
    if not match:
        raise RuntimeError(f"no SSIM in ffmpeg output: {proc.stderr[-500:]}")
    return float(match.group(1))


def _size(path: Path) -> int:
    if path.suffix == ".m3u8":
        return sum(p.stat().st_size for p in path.parent.iterdir() if p.suffix in (".ts", ".m4s", ".mp4"))
    return path.stat().st_size


def main() -> None:
    seconds = 10 if _quick() else 30
    with tempfile.TemporaryDirectory(prefix="transcodex-bench-") as tmp:
        root = Path(tmp)
        source = make_source(root / "source_1080p.mp4", seconds)
        print(f"source: generated 1920x1080 {seconds} s (testsrc2 + sine), {os.cpu_count()} CPU cores")
        (root / "ours").mkdir()
        (root / "seed").mkdir()
        ours_wall, ours_cpu, rungs = run_ours(source, root / "ours")
        seed_wall, seed_cpu, seed_out = run_seed(source, root / "seed")
        print(f"{'method':<34}{'wall s':>9}{'cpu s':>9}")
        print(f"{'ours: 1 ffmpeg, 4 rungs, HLS':<34}{ours_wall:>9.1f}{ours_cpu:>9.1f}")
        print(f"{'seed: 4 parallel ffmpeg, MP4':<34}{seed_wall:>9.1f}{seed_cpu:>9.1f}")
        print(
            f"wall-time ratio seed/ours: {seed_wall / ours_wall:.2f}x   "
            f"CPU-time ratio seed/ours: {seed_cpu / ours_cpu:.2f}x"
        )
        print(f"\n{'rung':<8}{'size':>11}{'ours SSIM':>11}{'ours MB':>9}{'seed SSIM':>11}{'seed MB':>9}")
        for name, playlist, width, height in rungs:
            ours_ssim = ssim(playlist, source, 1920, 1080)
            seed_path = seed_out.get(height)
            seed_ssim = f"{ssim(seed_path, source, 1920, 1080):.4f}" if seed_path else "-"
            seed_mb = f"{_size(seed_path) / 1e6:.1f}" if seed_path else "-"
            print(
                f"{name:<8}{f'{width}x{height}':>11}{ours_ssim:>11.4f}{_size(playlist) / 1e6:>9.1f}"
                f"{seed_ssim:>11}{seed_mb:>9}"
            )
        print(f"(seed also writes 2560x1440, an upscale of the 1080p source: {_size(seed_out[1440]) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
