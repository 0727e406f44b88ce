"""Video processing on real ffmpeg: ladder planning, HLS structure, MP4, poster, supervision."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest

from runtime.shared.contract import Poster, Transcode, TranscodeResolution
from runtime.shared.settings import Limits
from runtime.shared.status import ErrorCode
from runtime.worker import hls
from runtime.worker.errors import Cancelled, JobFailure
from runtime.worker.ffmpeg_run import parse_progress_line, run_ffmpeg
from runtime.worker.video import (
    check_limits,
    make_poster,
    plan_ladder,
    plan_single,
    probe,
    transcode_hls,
    transcode_mp4,
)
from tests.media import ffprobe, make_truncated

LADDER = (1080, 720, 480, 360)


# --- planning (pure) --------------------------------------------------------------------------


def test_given_1080p_source_when_planned_then_four_even_rungs_with_decreasing_caps() -> None:
    rungs = plan_ladder(1920, 1080, LADDER)
    assert [(r.width, r.height) for r in rungs] == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in rungs)
    caps = [r.maxrate_kbps for r in rungs]
    assert caps == sorted(caps, reverse=True) and 4000 <= caps[0] <= 6000


def test_given_480p_source_when_planned_then_no_rung_above_480() -> None:
    assert [r.name for r in plan_ladder(854, 480, LADDER)] == ["480p", "360p"]


def test_given_portrait_source_when_planned_then_rungs_stay_portrait() -> None:
    rungs = plan_ladder(1080, 1920, LADDER)
    assert [(r.width, r.height) for r in rungs][:2] == [(1080, 1920), (720, 1280)]


def test_given_source_smaller_than_every_rung_when_planned_then_one_rung_at_source_size() -> None:
    rungs = plan_ladder(320, 180, LADDER)
    assert [(r.name, r.width, r.height) for r in rungs] == [("180p", 320, 180)]


def test_given_odd_aspect_source_when_planned_then_dimensions_rounded_to_even() -> None:
    rungs = plan_ladder(1000, 750, (720, 360))
    assert [(r.width, r.height) for r in rungs] == [(960, 720), (480, 360)]


def test_given_progress_lines_when_parsed_then_seconds_of_output() -> None:
    assert parse_progress_line("out_time_us=1500000\n") == 1.5
    assert parse_progress_line("out_time_ms=2000000") == 2.0
    assert parse_progress_line("out_time_us=N/A") is None
    assert parse_progress_line("progress=continue") is None


def test_given_master_with_absolute_uri_when_validated_then_rejected() -> None:
    text = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=2x2,CODECS="avc1.64001f"\nhttps://x/a.m3u8\n'
    with pytest.raises(ValueError, match="relative"):
        hls.validate_master(text)


def test_given_profiles_when_codec_strings_built_then_rfc6381() -> None:
    assert hls.avc1_codec("High", 40) == "avc1.640028"
    assert hls.avc1_codec("Constrained Baseline", 30) == "avc1.42e01e"


# --- probe and limits ---------------------------------------------------------------------------


def test_given_portrait_phone_clip_when_probed_then_display_size_is_portrait(clip_portrait: Path) -> None:
    info = probe(clip_portrait)
    assert (info.width, info.height) == (640, 360)
    assert info.display_size == (360, 640)


def test_given_video_over_duration_limit_when_checked_then_limit_exceeded(clip: Path) -> None:
    with pytest.raises(JobFailure) as err:
        check_limits(probe(clip), Limits(max_video_duration_seconds=1))
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED and "limit is 1 s" in err.value.message


def test_given_video_over_pixel_limit_when_checked_then_limit_exceeded(clip: Path) -> None:
    with pytest.raises(JobFailure) as err:
        check_limits(probe(clip), Limits(max_video_pixels=320 * 100))
    assert err.value.code == ErrorCode.LIMIT_EXCEEDED


def test_given_still_image_when_probed_as_video_then_unsupported_format(photo: Path) -> None:
    with pytest.raises(JobFailure) as err:
        probe(photo)
    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT and "IMAGE job" in err.value.message


def test_given_text_file_when_probed_then_input_unreadable(tmp_path: Path) -> None:
    fake = tmp_path / "movie.mp4"
    fake.write_text("not a video\n" * 50)
    with pytest.raises(JobFailure) as err:
        probe(fake)
    assert err.value.code == ErrorCode.INPUT_UNREADABLE


# --- HLS ----------------------------------------------------------------------------------------


def _variant_streams(path: Path) -> dict[str, dict]:
    data = ffprobe(path)
    return {s["codec_type"]: s for s in data["streams"]}


def test_given_480p_clip_when_transcoded_then_only_rungs_at_or_below_480_with_valid_playlists(
    clip_480: Path, tmp_path: Path
) -> None:
    outputs = transcode_hls(clip_480, tmp_path, probe(clip_480), Transcode(segment_seconds=2))
    master_text = (tmp_path / "hls" / "master.m3u8").read_text()
    variants = hls.validate_master(master_text)
    assert [v["URI"] for v in variants] == ["480p/index.m3u8", "360p/index.m3u8"]
    assert [v["RESOLUTION"] for v in variants] == ["854x480", "640x360"]
    assert all(v["CODECS"].startswith("avc1.64") and v["CODECS"].endswith(",mp4a.40.2") for v in variants)
    for v in variants:
        playlist = hls.parse_media_playlist((tmp_path / "hls" / v["URI"]).read_text())
        assert playlist.ended and playlist.segments[0].uri == "seg_00001.ts"
        assert all(s.duration <= playlist.target_duration + 0.01 for s in playlist.segments)
        assert abs(sum(s.duration for s in playlist.segments) - 2.0) < 0.2
        peak, _ = hls.measure(tmp_path / "hls" / v["URI"])
        assert int(v["BANDWIDTH"]) == peak
    streams = _variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    roles = sorted(o.role for o in outputs if o.role)
    assert roles == ["hls-master", "hls-rendition", "hls-rendition"]
    assert {o.mime for o in outputs if o.role is None} == {"video/mp2t"}
    assert subprocess.run(["ffprobe", "-v", "error", str(tmp_path / "hls" / "master.m3u8")]).returncode == 0


def test_given_two_rungs_when_transcoded_then_bandwidth_differs_per_rung(clip_480: Path, tmp_path: Path) -> None:
    transcode_hls(clip_480, tmp_path, probe(clip_480), Transcode(renditions=(480, 360), segment_seconds=2))
    variants = hls.validate_master((tmp_path / "hls" / "master.m3u8").read_text())
    assert int(variants[0]["BANDWIDTH"]) > int(variants[1]["BANDWIDTH"]) > 96_000


def test_given_clip_without_audio_when_transcoded_then_video_only_codecs(clip_silent: Path, tmp_path: Path) -> None:
    transcode_hls(clip_silent, tmp_path, probe(clip_silent), Transcode(renditions=(360,)))
    variants = hls.validate_master((tmp_path / "hls" / "master.m3u8").read_text())
    assert "mp4a" not in variants[0]["CODECS"]
    assert set(_variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")) == {"video"}


def test_given_portrait_clip_when_transcoded_then_renditions_are_portrait(clip_portrait: Path, tmp_path: Path) -> None:
    transcode_hls(clip_portrait, tmp_path, probe(clip_portrait), Transcode())
    variants = hls.validate_master((tmp_path / "hls" / "master.m3u8").read_text())
    assert [v["RESOLUTION"] for v in variants] == ["360x640"]
    video = _variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")["video"]
    assert (video["width"], video["height"]) == (360, 640)


def test_given_fmp4_segments_when_transcoded_then_init_and_m4s(clip: Path, tmp_path: Path) -> None:
    outputs = transcode_hls(clip, tmp_path, probe(clip), Transcode(segment_type="fmp4"))
    playlist = hls.parse_media_playlist((tmp_path / "hls" / "180p" / "index.m3u8").read_text())
    assert playlist.map_uri == "init.mp4"
    assert all(s.uri.endswith(".m4s") for s in playlist.segments)
    assert "#EXT-X-VERSION:7" in (tmp_path / "hls" / "master.m3u8").read_text()
    keys = {o.key: o.mime for o in outputs}
    assert keys["hls/180p/init.mp4"] == "video/mp4" and keys["hls/180p/seg_00001.m4s"] == "video/iso.segment"


# --- MP4 and poster -----------------------------------------------------------------------------


def test_given_transcode_resolution_when_run_then_faststart_h264_aac_mp4(clip_480: Path, tmp_path: Path) -> None:
    [out] = transcode_mp4(clip_480, tmp_path, probe(clip_480), TranscodeResolution(height=360))
    assert out.key == "video_360p.mp4" and (out.width, out.height) == (640, 360)
    streams = _variant_streams(out.path)
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    head = out.path.read_bytes()[:200_000]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")  # +faststart: index before data


def test_given_resolution_above_source_when_planned_then_not_upscaled(clip: Path) -> None:
    assert plan_single(probe(clip), TranscodeResolution(height=720)) == (320, 180)


def test_given_poster_time_past_the_end_when_extracted_then_clamped_to_a_real_frame(clip: Path, tmp_path: Path) -> None:
    [out] = make_poster(clip, tmp_path, probe(clip), Poster(at_seconds=999, width=160))
    assert out.role == "poster" and out.path.read_bytes()[:2] == b"\xff\xd8"
    assert (out.width, out.height) == (160, 90)


def test_given_truncated_mp4_when_transcoded_then_input_unreadable(clip: Path, tmp_path: Path) -> None:
    cut = make_truncated(clip, tmp_path / "cut.mp4", 0.3)
    with pytest.raises(JobFailure) as err:
        transcode_hls(cut, tmp_path, probe(cut), Transcode())
    assert err.value.code == ErrorCode.INPUT_UNREADABLE


# --- supervision ----------------------------------------------------------------------------------


def endless(marker: str) -> list[str]:
    """An ffmpeg that never ends on its own; ``marker`` makes its command line findable."""
    return [
        "ffmpeg",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25",
        "-metadata",
        f"comment={marker}",
        "-f",
        "null",
        "-",
    ]


def _running(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line carries ``marker``."""
    return [
        proc.info["pid"]
        for proc in psutil.process_iter(["pid", "status", "cmdline"])
        if marker in " ".join(proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE
    ]


def test_given_endless_ffmpeg_when_deadline_passes_then_killed_and_timeout(tmp_path: Path) -> None:
    marker = f"transcodex-test-{uuid.uuid4().hex}"
    with pytest.raises(JobFailure) as err:
        run_ffmpeg([*endless(marker), "-progress", "pipe:1"], tmp_path / "err.log", deadline=time.monotonic() + 1.0)
    assert err.value.code == ErrorCode.TIMEOUT
    assert _running(marker) == []


def test_given_progress_hook_cancelling_when_running_then_ffmpeg_terminated(tmp_path: Path) -> None:
    seen: list[float] = []

    def hook(seconds: float) -> None:
        seen.append(seconds)
        if seconds > 0.2:
            raise Cancelled("job is CANCELLED")

    with pytest.raises(Cancelled):
        run_ffmpeg([*endless("cancel"), "-progress", "pipe:1"], tmp_path / "err.log", on_progress=hook)
    assert seen and seen[-1] > 0.2


def test_given_1080p_clip_when_transcoded_then_master_with_four_renditions_that_ffprobe_reads(
    media: Path, tmp_path: Path
) -> None:
    from tests.media import make_video

    source = make_video(media / "clip1080.mp4", 2, 1920, 1080)
    transcode_hls(source, tmp_path, probe(source), Transcode(segment_seconds=2))
    master = tmp_path / "hls" / "master.m3u8"
    variants = hls.validate_master(master.read_text())
    assert [v["RESOLUTION"] for v in variants] == ["1920x1080", "1280x720", "854x480", "640x360"]
    bandwidths = [int(v["BANDWIDTH"]) for v in variants]
    assert bandwidths == sorted(bandwidths, reverse=True) and len(set(bandwidths)) == 4
    probed = ffprobe(master)
    sizes = {(s["width"], s["height"]) for s in probed["streams"] if s["codec_type"] == "video"}
    assert sizes == {(1920, 1080), (1280, 720), (854, 480), (640, 360)}
    assert float(probed["format"]["duration"]) == pytest.approx(2.0, abs=0.2)


def test_given_this_container_when_cpus_counted_then_bounded_by_the_machine_and_passed_to_ffmpeg(
    clip: Path, tmp_path: Path
) -> None:
    import os

    from runtime.worker.video import available_cpus, ladder_command

    cpus = available_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)
    args = ladder_command(clip, tmp_path, probe(clip), plan_ladder(320, 180, LADDER), Transcode())
    assert args[args.index("-threads") + 1] == str(cpus)
    assert args[args.index("-filter_complex_threads") + 1] == str(cpus)
