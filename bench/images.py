"""pyvips (our pipeline) vs Pillow on generated 24-megapixel JPEGs: throughput and peak memory.

Three operations, each in a fresh subprocess per library so peak RSS (VmHWM) belongs to
that case alone: resize to 1500 px wide (JPEG q85), thumbnail into 256x256 (JPEG), convert the
full image to WebP q80. pyvips runs our worker's own process_image; Pillow uses its usual calls
(``Image.thumbnail`` already applies JPEG draft-mode shrink-on-load, so that one is fair).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT = 6000, 4000  # 24 megapixels
OPERATIONS = {
    "resize": [{"op": "resize", "width": 1500}],
    "thumbnail": [{"op": "thumbnail", "width": 256, "height": 256}],
    "convert": [{"op": "convert-format", "format": "webp", "quality": 80}],
}


def make_inputs(folder: Path, count: int) -> list[Path]:
    """Photo-like JPEGs: a smooth gradient plus noise (so they compress like photographs)."""
    import pyvips

    paths = []
    for index in range(count):
        x = pyvips.Image.xyz(WIDTH, HEIGHT)
        base = (x[0] * (200 / WIDTH) + x[1] * (55 / HEIGHT) + index * 10).cast("uchar")
        noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=12, mean=0)
        bands = [(base + noise * (0.5 + 0.25 * b)).cast("uchar") for b in range(3)]
        image = bands[0].bandjoin(bands[1:]).copy(interpretation="srgb")
        path = folder / f"photo_{index}.jpg"
        image.jpegsave(str(path), Q=90)
        paths.append(path)
    return paths


def _case_vips(op: str, paths: list[Path], out: Path) -> None:
    from runtime.shared.contract import parse_job
    from runtime.shared.settings import Limits
    from runtime.worker.image import process_image

    spec = parse_job("IMAGE", OPERATIONS[op])
    for index, path in enumerate(paths):
        process_image(path, out / str(index), spec, Limits())


def _case_pillow(op: str, paths: list[Path], out: Path) -> None:
    from PIL import Image, ImageOps

    for index, path in enumerate(paths):
        with Image.open(path) as image:
            if op == "thumbnail":
                image.thumbnail((256, 256))
                ImageOps.exif_transpose(image).save(out / f"{index}.jpg", quality=85)
                continue
            image = ImageOps.exif_transpose(image)
            if op == "resize":
                image.resize((1500, round(image.height * 1500 / image.width)), Image.LANCZOS).save(
                    out / f"{index}.jpg", quality=85
                )
            else:
                image.save(out / f"{index}.webp", quality=80)


def case(library: str, op: str, paths: list[Path]) -> dict[str, float]:
    """Run one case in this process; print and return seconds and peak RSS."""
    if library == "pyvips":
        import pyvips  # noqa: F401  (import before the baseline, like Pillow below)
    else:
        import PIL.Image  # noqa: F401
    baseline = _peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        (_case_vips if library == "pyvips" else _case_pillow)(op, paths, Path(tmp))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": _peak_rss_mb(), "baseline_mb": baseline}


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from
    the parent, so a child would report the benchmark driver's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_subprocess(library: str, op: str, paths: list[Path]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.images", "--case", library, op, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    count = 2 if os.environ.get("TRANSCODEX_BENCH_QUICK") == "1" else 4
    with tempfile.TemporaryDirectory(prefix="transcodex-bench-img-") as tmp:
        paths = make_inputs(Path(tmp), count)
        mpix = WIDTH * HEIGHT * count / 1e6
        print(
            f"inputs: {count} generated {WIDTH}x{HEIGHT} JPEGs ({WIDTH * HEIGHT / 1e6:.0f} MP each), "
            f"{os.cpu_count()} cores"
        )
        header = f"{'operation':<11}{'library':<8}{'images/s':>9}{'MP/s':>8}{'peak MB':>9}{'(base MB)':>10}"
        print(header)
        for op in OPERATIONS:
            results = {lib: _in_subprocess(lib, op, paths) for lib in ("pyvips", "pillow")}
            for lib, r in results.items():
                print(
                    f"{op:<11}{lib:<8}{count / r['seconds']:>9.2f}{mpix / r['seconds']:>8.1f}"
                    f"{r['peak_mb']:>9.0f}{r['baseline_mb']:>10.0f}"
                )
            speed = results["pillow"]["seconds"] / results["pyvips"]["seconds"]
            memory = (results["pillow"]["peak_mb"] - results["pillow"]["baseline_mb"]) / max(
                1.0, results["pyvips"]["peak_mb"] - results["pyvips"]["baseline_mb"]
            )
            print(f"{'':<11}pyvips is {speed:.2f}x the throughput, Pillow uses {memory:.1f}x the memory above baseline")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--case":
        print(json.dumps(case(sys.argv[2], sys.argv[3], [Path(p) for p in sys.argv[4:]])))
    else:
        main()
