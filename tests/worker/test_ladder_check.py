"""The ladder check on real ladders made by ffmpeg: a sound ladder passes, and each way of
breaking one (a truncated segment, a lying BANDWIDTH, RESOLUTION or CODECS, a missing segment,
a bad audio rendition or I-frame playlist) fails naming the rendition; through the runner the
job ends FAILED with PROCESSING_FAILED and nothing is published."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.shared.aws import client
from runtime.shared.status import ErrorCode, JobStatus
from runtime.worker import ladder_check, video
from runtime.worker.errors import JobFailure
from runtime.worker.iframes import add_iframe_playlists
from runtime.worker.outputs import LocalOutput
from runtime.worker.runner import run_job
from tests.media import make_truncated, make_video
from tests.worker.ladders import audio_group_ladder, copy_ladder, worker_ladder


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "clip.mp4", 4, 640, 360)


@pytest.fixture(scope="module", params=["ts", "fmp4"])
def ladder(request: pytest.FixtureRequest, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker's 360p+240p ladder of a 4 s clip (2 s segments), with its I-frame playlists."""
    master = worker_ladder(source, tmp_path_factory.mktemp(f"ladder-{request.param}"), request.param)
    add_iframe_playlists(LocalOutput(master, "hls/master.m3u8", None, "application/vnd.apple.mpegurl"))
    return master


@pytest.fixture(scope="module")
def grouped(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audio_group_ladder(source, tmp_path_factory.mktemp("grouped"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


def _segment(master: Path, rung: str, n: int) -> Path:
    return next((master.parent / rung).glob(f"seg_{n:05d}.*"))


def test_given_the_workers_ladder_when_checked_then_it_passes(ladder: Path, source: Path) -> None:
    assert ladder_check.ladder_problems(ladder, source, threads=1) == []
    ladder_check.check_ladder(ladder, source)  # raises nothing


def test_given_a_truncated_segment_when_checked_then_the_variant_and_segment_are_named(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(ladder, tmp_path / "hls")
    segment = _segment(broken, "240p", 1)
    make_truncated(segment, segment, keep=0.5)
    with pytest.raises(JobFailure) as failed:
        ladder_check.check_ladder(broken, source)
    assert failed.value.code == ErrorCode.PROCESSING_FAILED
    message = failed.value.message
    assert "240p/index.m3u8" in message and segment.name in message
    assert "360p/index.m3u8" not in message  # the sound variant is not blamed


def _scramble_video(segment: Path) -> None:
    """Overwrite video payload bytes in the middle of ``segment``, keeping its size and framing
    (TS: 30 packets of PID 0x100 past the first third; fMP4: a run inside the mdat)."""
    data = bytearray(segment.read_bytes())
    noise = random.Random(7)
    if segment.suffix == ".ts":
        hit = 0
        for i in range(len(data) // 3 // 188 * 188, len(data) - 188, 188):
            if ((data[i + 1] & 0x1F) << 8 | data[i + 2]) == 0x100 and hit < 30:
                data[i + 30 : i + 180] = bytes(noise.randrange(256) for _ in range(150))
                hit += 1
    else:
        start = len(data) // 3
        data[start : start + 6000] = bytes(noise.randrange(256) for _ in range(6000))
    segment.write_bytes(bytes(data))


def test_given_a_segment_with_corrupt_video_when_checked_then_it_does_not_decode(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    """Same size, same packets, same timing: only decoding finds this."""
    broken = copy_ladder(ladder, tmp_path / "hls")
    _scramble_video(_segment(broken, "360p", 1))
    problems = ladder_check.ladder_problems(broken, source)
    assert [p for p in problems if p.startswith("360p/index.m3u8: does not decode: ")], problems
    assert not [p for p in problems if p.startswith("240p/")], problems


def test_given_a_bandwidth_below_the_measured_peak_when_checked_then_it_fails_naming_it(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(ladder, tmp_path / "hls")
    text = broken.read_text()
    declared = re.search(r"BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=\d+,RESOLUTION=640x360", text)
    assert declared is not None
    _edit(broken, f"BANDWIDTH={declared.group(1)},", f"BANDWIDTH={int(declared.group(1)) // 2},")
    problems = ladder_check.ladder_problems(broken, source)
    assert len(problems) == 1 and problems[0].startswith("360p/index.m3u8: BANDWIDTH=")
    # the ladder has an audio group, whose peak the variant's BANDWIDTH includes
    assert f"measured peak with its audio group of {declared.group(1)} b/s" in problems[0]


def test_given_a_wrong_resolution_or_codecs_when_checked_then_each_fails_naming_the_variant(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(ladder, tmp_path / "hls")
    _edit(broken, "RESOLUTION=426x240,FRAME-RATE=", "RESOLUTION=428x240,FRAME-RATE=")  # the variant, not its I-frames
    _edit(broken, "mp4a.40.2", "mp4a.40.5")  # the first variant (360p) now claims HE-AAC
    problems = ladder_check.ladder_problems(broken, source)
    assert "240p/index.m3u8: RESOLUTION=428x240 but its video is 426x240" in problems
    assert any(p.startswith("360p/index.m3u8: its audio is mp4a.40.2, not in CODECS=") for p in problems)
    assert len(problems) == 3, problems  # and 360p's mp4a.40.5 matches no stream


def test_given_a_segment_left_out_of_the_playlist_when_checked_then_the_durations_do_not_add_up(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(ladder, tmp_path / "hls")
    playlist = broken.parent / "360p" / "index.m3u8"
    lines = playlist.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("seg_"))
    playlist.write_text("\n".join(lines[: last - 1] + lines[last + 1 :]) + "\n")
    problems = ladder_check.ladder_problems(broken, source)
    assert any(
        p.startswith("360p/index.m3u8: its segments add up to 2.000 s but the source is 4.0") for p in problems
    ), problems


def test_given_an_iframe_range_past_the_end_of_its_segment_when_checked_then_it_fails(
    ladder: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(ladder, tmp_path / "hls")
    iframes = broken.parent / "240p" / "iframes.m3u8"
    segment = _segment(broken, "240p", 2)
    size = segment.stat().st_size
    found = re.search(rf"#EXT-X-BYTERANGE:(\d+)@(\d+)\n{segment.name}", iframes.read_text())
    assert found is not None
    offset = int(found.group(2))
    _edit(iframes, found.group(0), f"#EXT-X-BYTERANGE:{size}@{offset}\n{segment.name}")
    problems = ladder_check.ladder_problems(broken, source)
    assert problems[0] == f"240p/iframes.m3u8: byte range {size}@{offset} lies outside {segment.name}", problems
    assert [p.split(":", 1)[0] for p in problems] == ["240p/iframes.m3u8"] * 2  # and its BANDWIDTH now lies


def test_given_an_audio_rendition_group_when_checked_then_bandwidth_counts_the_audio(
    grouped: Path, source: Path, tmp_path: Path
) -> None:
    assert ladder_check.ladder_problems(grouped, source) == []
    lying = audio_group_ladder(source, tmp_path / "lying", bandwidth_counts_audio=False)
    [problem] = ladder_check.ladder_problems(lying, source)
    assert problem.startswith("360p/index.m3u8: BANDWIDTH=") and "with its audio group" in problem


def test_given_a_broken_audio_rendition_when_checked_then_the_audio_rendition_is_named(
    grouped: Path, source: Path, tmp_path: Path
) -> None:
    broken = copy_ladder(grouped, tmp_path / "hls")
    segment = broken.parent / "audio" / "en" / "seg_00001.ts"
    make_truncated(segment, segment, keep=0.4)
    _edit(broken, ',mp4a.40.2",AUDIO', '",AUDIO')  # and the variant forgets the group's codec
    problems = ladder_check.ladder_problems(broken, source)
    assert any(
        p.startswith("audio rendition audio/en/index.m3u8 (aud/English): segment seg_00001.ts") for p in problems
    )
    assert any(p.startswith("360p/index.m3u8: its audio is mp4a.40.2, not in CODECS=") for p in problems)


def test_given_a_ladder_broken_after_encoding_when_the_job_runs_then_failed_and_nothing_published(
    settings: Any, db: Any, submit: Any, job_row: Any, outputs: Any, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = video.process_video

    def encode_then_truncate(*args: Any, **kwargs: Any) -> list[LocalOutput]:
        produced = real(*args, **kwargs)
        segment = next(o.path for o in produced if o.key == "hls/240p/seg_00002.ts")
        make_truncated(segment, segment, keep=0.3)
        return produced

    monkeypatch.setattr(video, "process_video", encode_then_truncate)
    job_id = submit(source, "VIDEO", [{"op": "transcode", "renditions": [360, 240], "segment_seconds": 2}])
    assert run_job(job_id, settings, db) == JobStatus.FAILED
    row = job_row(job_id)
    assert row["error_code"] == "PROCESSING_FAILED"
    assert "240p/index.m3u8" in row["error_message"] and "seg_00002.ts" in row["error_message"]
    assert outputs(job_id) == []
    listing = client("s3", settings).list_objects_v2(Bucket=settings.output_bucket, Prefix=f"output/{row['user_id']}/")
    assert listing.get("KeyCount", 0) == 0


def test_given_a_sound_ladder_job_when_run_then_iframe_playlists_are_published_beside_the_variants(
    settings: Any, db: Any, submit: Any, job_row: Any, source: Path
) -> None:
    job_id = submit(source, "VIDEO", [{"op": "transcode", "renditions": [360, 240], "segment_seconds": 2}])
    assert run_job(job_id, settings, db) == JobStatus.SUCCEEDED
    prefix = f"output/{job_row(job_id)['user_id']}/{job_id}/hls/"
    s3 = client("s3", settings)
    master = s3.get_object(Bucket=settings.output_bucket, Key=prefix + "master.m3u8")["Body"].read().decode()
    assert master.count("#EXT-X-I-FRAME-STREAM-INF:") == 2
    for rung in ("360p", "240p"):
        assert f'URI="{rung}/iframes.m3u8"' in master
        head = s3.head_object(Bucket=settings.output_bucket, Key=f"{prefix}{rung}/iframes.m3u8")
        assert head["ContentType"] == "application/vnd.apple.mpegurl" and head["CacheControl"] == "max-age=60"
