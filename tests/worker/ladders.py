"""Small real HLS ladders for the ladder-check and I-frame tests, made with real ffmpeg.

``worker_ladder`` runs the worker's own ladder (runtime.worker.video.transcode_hls);
``audio_group_ladder`` writes what a ladder with an audio rendition group looks like
(a video-only variant and an audio-only rendition named by EXT-X-MEDIA), by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runtime.shared.contract import Transcode
from runtime.worker import hls
from runtime.worker.video import probe, transcode_hls
from tests.media import FFMPEG, ffprobe


def worker_ladder(source: Path, work: Path, segment_type: str, renditions: tuple[int, ...] = (360, 240)) -> Path:
    """The worker's ladder of ``source`` in ``work/hls``; returns the master playlist."""
    work.mkdir(parents=True, exist_ok=True)
    transcode_hls(
        source, work, probe(source), Transcode(renditions=renditions, segment_seconds=2, segment_type=segment_type)
    )
    return work / "hls" / "master.m3u8"


def copy_ladder(master: Path, target: Path) -> Path:
    """A copy of the ladder folder (to break without touching the shared one)."""
    shutil.copytree(master.parent, target)
    return target / master.name


def hls_rendition(source: Path, out: Path, maps: list[str], codec: list[str], segment_type: str = "ts") -> Path:
    """One rendition of ``source`` (the streams in ``maps``) as 2 s HLS segments in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = "m4s" if segment_type == "fmp4" else "ts"
    args = [FFMPEG, "-y", "-v", "error", "-i", str(source)]
    for m in maps:
        args += ["-map", m]
    args += [*codec, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
    args += ["-hls_segment_type", "fmp4" if segment_type == "fmp4" else "mpegts"]
    if segment_type == "fmp4":
        args += ["-hls_fmp4_init_filename", "init.mp4"]
    args += ["-hls_segment_filename", str(out / f"seg_%05d.{suffix}"), str(out / "index.m3u8")]
    subprocess.run(args, check=True, capture_output=True)
    return out / "index.m3u8"


def audio_group_ladder(source: Path, root: Path, bandwidth_counts_audio: bool = True) -> Path:
    """A master with one video-only variant and an English audio rendition (EXT-X-MEDIA with a
    URI): the shape a ladder with an audio rendition group has. BANDWIDTH is the measured video
    peak plus the audio peak unless ``bandwidth_counts_audio`` is False (a lie)."""
    video = hls_rendition(source, root / "360p", ["0:v:0"], ["-c", "copy"])
    audio = hls_rendition(source, root / "audio" / "en", ["0:a:0"], ["-c", "copy"])
    stream = next(s for s in ffprobe(source)["streams"] if s["codec_type"] == "video")
    avc = hls.avc1_codec(stream["profile"], int(stream["level"]))
    peak = hls.measure(video)[0] + (hls.measure(audio)[0] if bandwidth_counts_audio else 0)
    master = root / "master.m3u8"
    master.write_text(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,'
        'URI="audio/en/index.m3u8"\n'
        f"#EXT-X-STREAM-INF:BANDWIDTH={peak},RESOLUTION={stream['width']}x{stream['height']},"
        f'CODECS="{avc},mp4a.40.2",AUDIO="aud"\n360p/index.m3u8\n'
    )
    return master
