"""Our HLS ladder against its encode-only floor and against the seed's method, on a noisy,
camera-like 1080p30 clip.

* **ours**: ``transcode_hls`` with the default operation, as a job runs it (one ffmpeg: decode
  once, prepare, scale each rung from the one above, four H.264 encoders, one AAC encode, HLS).
* **floor**: the same four x264 encodes with the same settings (``ladder_encoder_options``),
  fed frames already decoded and scaled, from memory (raw YUV in /dev/shm, written before
  the clock starts), written nowhere. Nothing the ladder does can cost less than this; ours /
  floor is the price of decoding, scaling, audio and muxing.
* **inherent**: what the floor leaves out and no ladder can skip: decoding the source once and
  one AAC encode. ours / (floor + inherent) is what ours could still save by doing less.
* **seed**: one ffmpeg per resolution (640x360, 1280x720, 1920x1080, 2560x1440) in parallel,
  ``libx264 -preset fast -crf 23`` with AAC 128k, four decodes and an upscale to 1440p.

The source is what a phone or camera writes: moving detail plus temporal sensor noise,
H.264 High at 16 Mb/s, AAC stereo. We print wall and CPU time (children of this process), the
ratios, the realtime factor (source seconds per wall second), the SSIM of every rung against
the source (the rung scaled back to 1920x1080, as a player would show it) for ours and for
the seed's comparable outputs, and what the interlace detector costs on this source.

CPU time on a shared or virtual machine drifts by +-10% from one minute to the next, more
than the differences we look for. So ``--repeat N`` runs floor and ours N times each,
alternating which goes first, and prints the median (and range) of the N paired ratios: a
pair runs within half a minute, so drift cancels in its ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from runtime.shared.contract import Transcode
from runtime.worker.ffmpeg_run import FFMPEG
from runtime.worker.video import (
    AUDIO_KBPS,
    available_cpus,
    detect_fields,
    ladder_encoder_options,
    plan_ladder,
    prepare,
    probe,
    transcode_hls,
)

SEED_SIZES = ((640, 360), (1280, 720), (1920, 1080), (2560, 1440))
#: the clip: 1080p30 with grain like a phone's sensor in indoor light, at a phone's bitrate
SOURCE_FILTER = "testsrc2=size=1920x1080:rate=30,noise=c0s=10:c1s=4:c2s=4:allf=t:all_seed=13"
SOURCE_BITRATE = "16M"


def _quick() -> bool:
    return os.environ.get("TRANSCODEX_BENCH_QUICK") == "1"


def make_source(path: Path, seconds: int) -> Path:
    """The camera-like clip (see SOURCE_FILTER), H.264 High 16 Mb/s + AAC stereo."""
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", SOURCE_FILTER]
    args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds)]
    args += ["-c:v", "libx264", "-preset", "faster", "-profile:v", "high", "-pix_fmt", "yuv420p"]
    args += ["-b:v", SOURCE_BITRATE, "-maxrate", "20M", "-bufsize", "20M", "-g", "30"]
    args += ["-c:a", "aac", "-b:a", "192k", "-ac", "2", str(path)]
    subprocess.run(args, check=True)
    return path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(run: Any) -> tuple[float, float, Any]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    result = run()
    return time.perf_counter() - t0, _children_cpu() - cpu0, result


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements and their range."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.2f}x (range {self.low:.2f}-{self.high:.2f})"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no measurements")
    return Spread(statistics.median(values), min(values), max(values))


def paired_ratios(ours: Sequence[float], floor: Sequence[float]) -> list[float]:
    """ours[i] / floor[i]: each pair ran back to back, so machine drift cancels in it."""
    if len(ours) != len(floor) or not ours:
        raise ValueError(f"need as many ours as floor runs, at least one: got {len(ours)} and {len(floor)}")
    return [o / f for o, f in zip(ours, floor, strict=True)]


def run_order(repeat: int) -> list[tuple[str, str]]:
    """Which of floor and ours runs first in each pair: alternating, so neither always gets
    the cooler (or warmer) machine."""
    return [("floor", "ours") if n % 2 == 0 else ("ours", "floor") for n in range(repeat)]


def run_ours(source: Path, work: Path) -> tuple[float, float, list[tuple[str, Path, int, int]]]:
    info = probe(source)
    wall, cpu, _ = _timed(lambda: transcode_hls(source, work, info, Transcode()))
    rungs = plan_ladder(*info.display_size, Transcode().renditions, prepare(info).fps)
    return wall, cpu, [(r.name, work / "hls" / r.name / "index.m3u8", r.width, r.height) for r in rungs]


def run_floor(source: Path, scratch: Path) -> tuple[float, float]:
    """The same x264 encodes from raw frames in memory (decoding and scaling done beforehand)."""
    info = probe(source)
    prep = prepare(info)
    rungs = plan_ladder(*info.display_size, Transcode().renditions, prep.fps)
    raw = []
    for rung in rungs:
        path = scratch / f"floor_{rung.name}.yuv"
        args = [FFMPEG, "-y", "-v", "error", "-i", str(source), "-map", "0:v:0", "-f", "rawvideo"]
        args += ["-vf", f"fps={prep.rate},scale={rung.width}:{rung.height},format=yuv420p", str(path)]
        subprocess.run(args, check=True)
        raw.append(path)
    inputs = [
        ffmpeg.input(str(p), f="rawvideo", pix_fmt="yuv420p", s=f"{r.width}x{r.height}", r=str(prep.rate))
        for p, r in zip(raw, rungs, strict=True)
    ]
    options = ladder_encoder_options(rungs, prep.rate, Transcode().segment_seconds)
    args = ffmpeg.output(*inputs, "-", f="null", **options).global_args("-hide_banner", "-v", "error", "-nostdin")
    try:
        wall, cpu, _ = _timed(lambda: subprocess.run(args.compile(cmd=FFMPEG), check=True))
    finally:
        for path in raw:
            path.unlink(missing_ok=True)
    return wall, cpu


def run_inherent(source: Path, runs: int = 3) -> tuple[float, float]:
    """CPU seconds (median of ``runs``) of what no ladder can skip and the floor leaves out:
    decoding the source's video once, as the ladder's decoder does, and one AAC encode."""
    base = [FFMPEG, "-v", "error", "-nostdin", "-threads", str(available_cpus()), "-i", str(source)]
    decode = [*base, "-map", "0:v:0", "-f", "null", "-"]
    aac = [*base, "-map", "0:a:0", "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2", "-f", "null", "-"]

    def cpu(args: list[str]) -> float:
        return statistics.median(_timed(lambda: subprocess.run(args, check=True))[1] for _ in range(runs))

    return cpu(decode), cpu(aac)


@dataclass(frozen=True)
class Overhead:
    """What ours costs beyond the floor, in CPU seconds: the inherent decode and audio encode,
    and the rest (scaling, splitting, muxing, progress)."""

    ours: float
    floor: float
    decode: float
    audio: float

    @property
    def rest(self) -> float:
        return self.ours - self.floor - self.decode - self.audio

    @property
    def reachable_ratio(self) -> float:
        """ours / (floor + decode + audio): 1.0 is a ladder that adds nothing it could avoid."""
        return self.ours / (self.floor + self.decode + self.audio)


def run_seed(source: Path, work: Path) -> tuple[float, float, dict[int, Path]]:
    outputs = {h: work / f"seed_{h}p.mp4" for _, h in SEED_SIZES}

    def command(w: int, h: int) -> list[str]:
        args = [FFMPEG, "-y", "-v", "error", "-i", str(source), "-vf", f"scale={w}:{h}", "-c:v", "libx264"]
        return [*args, "-preset", "fast", "-crf", "23", "-c:a", "aac", "-b:a", "128k", str(outputs[h])]

    def run() -> None:
        procs = [subprocess.Popen(command(w, h)) for w, h in SEED_SIZES]
        if any(proc.wait() != 0 for proc in procs):
            raise RuntimeError("a seed-method ffmpeg failed")

    wall, cpu, _ = _timed(run)
    return wall, cpu, outputs


def ssim(distorted: Path, reference: Path, width: int, height: int) -> float:
    """SSIM (All) of ``distorted`` scaled to ``width`` x ``height`` against ``reference``."""
    graph = f"[0:v]scale={width}:{height}:flags=bicubic,setsar=1[d];[1:v]setsar=1[r];[d][r]ssim"
    args = [FFMPEG, "-v", "info", "-nostats", "-i", str(distorted), "-i", str(reference), "-lavfi", graph]
    proc = subprocess.run([*args, "-f", "null", "-"], capture_output=True, text=True)
    match = re.search(r"SSIM .*All:([0-9.]+)", proc.stderr)
    if not match:
        raise RuntimeError(f"no SSIM in ffmpeg output: {proc.stderr[-500:]}")
    return float(match.group(1))


def _size(path: Path) -> int:
    if path.suffix == ".m3u8":
        return sum(p.stat().st_size for p in path.parent.iterdir() if p.suffix in (".ts", ".m4s", ".mp4"))
    return path.stat().st_size


Times = dict[str, list[tuple[float, float]]]


def run_pairs(source: Path, root: Path, scratch: Path, repeat: int) -> tuple[Times, list[tuple[str, Path, int, int]]]:
    """``repeat`` floor/ours pairs in :func:`run_order`, each printed as it finishes: the
    (wall, CPU) seconds of every run, and the rungs of the last ours run."""
    times: Times = {"floor": [], "ours": []}
    rungs: list[tuple[str, Path, int, int]] = []
    header = f"{'pair':<6}{'first':<7}{'floor wall':>11}{'floor cpu':>10}"
    print(f"{header}{'ours wall':>10}{'ours cpu':>9}{'cpu ratio':>10}")
    for n, order in enumerate(run_order(repeat)):
        for name in order:
            if name == "floor":
                times["floor"].append(run_floor(source, scratch))
            else:
                shutil.rmtree(root / "ours", ignore_errors=True)
                (root / "ours").mkdir()
                wall, cpu, rungs = run_ours(source, root / "ours")
                times["ours"].append((wall, cpu))
        (fw, fc), (ow, oc) = times["floor"][-1], times["ours"][-1]
        print(f"{n + 1:<6}{order[0]:<7}{fw:>11.1f}{fc:>10.1f}{ow:>10.1f}{oc:>9.1f}{oc / fc:>9.2f}x", flush=True)
    return times, rungs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ladder", description=__doc__)
    parser.add_argument("--repeat", type=int, default=1 if _quick() else 3, help="floor/ours pairs (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    seconds = 4 if _quick() else 10
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="transcodex-bench-") as tmp:
        root = Path(tmp)
        source = make_source(root / "camera_1080p30.mp4", seconds)
        print(f"source: {SOURCE_FILTER}, {seconds} s, H.264 High {SOURCE_BITRATE}b/s + AAC; {os.cpu_count()} CPUs")
        times, rungs = run_pairs(source, root, scratch, args.repeat)
        (root / "seed").mkdir()
        seed_wall, seed_cpu, seed_out = run_seed(source, root / "seed")
        idet_wall, idet_cpu, _ = _timed(lambda: detect_fields(source))
        decode_cpu, audio_cpu = run_inherent(source)

        floor_wall = statistics.median(w for w, _ in times["floor"])
        floor_cpu = statistics.median(c for _, c in times["floor"])
        ours_wall = statistics.median(w for w, _ in times["ours"])
        ours_cpu = statistics.median(c for _, c in times["ours"])
        print(f"\nmedians of {args.repeat} run(s)")
        print(f"{'method':<44}{'wall s':>9}{'cpu s':>9}")
        print(f"{'floor: 4 x264 encodes from raw frames':<44}{floor_wall:>9.1f}{floor_cpu:>9.1f}")
        print(f"{'ours: 1 ffmpeg, 4 rungs + 1 audio, HLS':<44}{ours_wall:>9.1f}{ours_cpu:>9.1f}")
        print(f"{'seed: 4 parallel ffmpeg, MP4 (1 run)':<44}{seed_wall:>9.1f}{seed_cpu:>9.1f}")
        wall_ratio = spread(paired_ratios([w for w, _ in times["ours"]], [w for w, _ in times["floor"]]))
        cpu_ratio = spread(paired_ratios([c for _, c in times["ours"]], [c for _, c in times["floor"]]))
        print(f"ours/floor (median of paired runs): wall {wall_ratio}, CPU {cpu_ratio}")
        print(f"seed/ours:  wall {seed_wall / ours_wall:.2f}x, CPU {seed_cpu / ours_cpu:.2f}x")
        realtime = f"ours {seconds / ours_wall:.2f}x, floor {seconds / floor_wall:.2f}x"
        print(f"realtime factor (source s / wall s): {realtime}")
        print(f"interlace detection (idet, first frames): {idet_wall:.2f} s wall, {idet_cpu:.2f} s CPU")
        extra = Overhead(ours_cpu, floor_cpu, decode_cpu, audio_cpu)
        print(
            f"ours - floor = {ours_cpu - floor_cpu:.1f} s CPU: decoding the source {extra.decode:.1f} s, "
            f"AAC {extra.audio:.1f} s (neither avoidable), the rest {extra.rest:.1f} s (scaling, muxing); "
            f"ours/(floor + decode + AAC) {extra.reachable_ratio:.2f}x"
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
        shutil.rmtree(root / "seed", ignore_errors=True)


if __name__ == "__main__":
    main()
