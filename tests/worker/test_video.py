"""Video processing on real ffmpeg: ladder planning, HLS structure, MP4, poster, supervision."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest

from runtime.shared import hls as playlists
from runtime.shared.contract import DEFAULT_LADDER, Poster, Transcode, TranscodeResolution
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


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((3840, 2160), ["2160p", "1440p", "1080p", "720p", "480p", "360p"]),
        ((2560, 1440), ["1440p", "1080p", "720p", "480p", "360p"]),
        ((1920, 1080), ["1080p", "720p", "480p", "360p"]),
        ((2160, 3840), ["2160p", "1440p", "1080p", "720p", "480p", "360p"]),
    ],
)
def test_given_a_source_when_the_default_ladder_is_planned_then_it_reaches_the_source_and_no_further(
    size: tuple[int, int], expected: list[str]
) -> None:
    rungs = plan_ladder(*size, DEFAULT_LADDER)
    assert [r.name for r in rungs] == expected
    assert (rungs[0].width, rungs[0].height) == size  # the top rung IS the source, never above it
    caps = [r.maxrate_kbps for r in rungs]
    assert caps == sorted(caps, reverse=True) and len(set(caps)) == len(caps)


def test_given_a_4k_source_when_planned_then_per_rung_caps_are_the_documented_ones() -> None:
    caps = {r.name: r.maxrate_kbps for r in plan_ladder(3840, 2160, DEFAULT_LADDER)}
    assert caps == {"2160p": 14140, "1440p": 7700, "1080p": 5000, "720p": 2720, "480p": 1480, "360p": 960}
    assert plan_ladder(1920, 1080, (1080,), fps=50)[0].maxrate_kbps == 7500  # +50% above 30 fps


def test_given_a_wide_film_when_planned_then_the_1080p_rung_keeps_its_width() -> None:
    rungs = plan_ladder(1920, 800, (1080, 720, 360))
    sizes = [(r.name, r.width, r.height) for r in rungs]
    assert sizes == [("1080p", 1920, 800), ("720p", 1280, 534), ("360p", 638, 266)]


def test_given_non_square_pixels_when_sized_then_display_size_is_storage_width_times_sar() -> None:
    from fractions import Fraction

    from runtime.worker.video import VideoInfo

    dvd = VideoInfo(1.0, 720, 480, 0, 29.97, "mpeg2video", sar=Fraction(32, 27))
    hdv = VideoInfo(1.0, 1440, 1080, 0, 25.0, "h264", sar=Fraction(4, 3))
    rotated = VideoInfo(1.0, 720, 480, 90, 25.0, "h264", sar=Fraction(32, 27))
    assert dvd.display_size == (853, 480) and hdv.display_size == (1920, 1080) and rotated.display_size == (480, 853)
    assert [(r.width, r.height) for r in plan_ladder(*dvd.display_size, DEFAULT_LADDER)] == [(852, 480), (640, 360)]


@pytest.mark.parametrize(
    ("fps", "interlaced", "expected"),
    [
        (25.0, False, "25"),
        (25.0, True, "50"),  # deinterlaced to the field rate
        (30000 / 1001, True, "60000/1001"),
        (29.87, False, "30000/1001"),  # a VFR phone clip's average snaps to the standard rate
        (120.0, False, "60"),
        (240.0, False, "60"),
        (100.0, False, "50"),
        (12.3, False, "123/10"),
    ],
)
def test_given_a_source_rate_when_the_output_rate_is_chosen_then_constant_standard_and_capped(
    fps: float, interlaced: bool, expected: str
) -> None:
    from fractions import Fraction

    from runtime.worker.video import MAX_FPS, output_rate

    rate = output_rate(fps, interlaced)
    assert rate == Fraction(expected) and rate <= MAX_FPS


def test_given_ffprobe_audio_streams_when_tracks_are_chosen_then_languages_names_and_one_default() -> None:
    from runtime.worker.video import _audio_tracks

    streams = [
        {"channels": 2, "tags": {"language": "eng"}, "disposition": {"default": 0}},
        {"channels": 0, "tags": {"language": "deu"}},  # no channels: not audio we can play
        {"channels": 6, "tags": {"LANGUAGE": "fre", "title": "Commentaire"}, "disposition": {"default": 1}},
        {"channels": 1, "tags": {"language": "und"}},
        {"channels": 2, "tags": {"language": "eng"}},
    ]
    tracks = _audio_tracks(streams)
    assert [(t.index, t.language, t.name, t.default) for t in tracks] == [
        (0, "en", "English", False),
        (2, "fr", "Commentaire", True),
        (3, None, "Audio 3", False),
        (4, "en", "English (2)", False),  # NAME is unique within the group
    ]
    unflagged = _audio_tracks([{"channels": 2}, {"channels": 2, "tags": {"language": "jpn"}}])
    assert [t.default for t in unflagged] == [True, False] and unflagged[1].name == "Japanese"


def test_given_several_video_streams_when_the_main_one_is_chosen_then_never_a_cover_and_the_largest_or_default() -> (
    None
):
    from runtime.worker.video import main_video_stream

    cover = {"index": 0, "codec_type": "video", "width": 3000, "height": 3000, "disposition": {"attached_pic": 1}}
    still = {"index": 1, "codec_type": "video", "width": 300, "height": 300, "disposition": {"default": 0}}
    film = {"index": 2, "codec_type": "video", "width": 640, "height": 360, "disposition": {"default": 0}}
    audio = {"index": 3, "codec_type": "audio", "channels": 2}
    assert main_video_stream([cover, still, film, audio]) is film  # a cover is never the film, the larger wins
    flagged = {**still, "disposition": {"default": 1}}
    assert main_video_stream([flagged, film]) is flagged  # the file's own default outweighs a larger frame
    assert main_video_stream([film, {**film, "index": 4}]) is film  # the first of equals
    assert main_video_stream([cover, audio]) is None


def test_given_a_ladder_when_scaling_is_planned_then_each_rung_comes_from_an_exact_double_or_the_one_above() -> None:
    from runtime.worker.video import scale_parents

    sizes = [(r.width, r.height) for r in plan_ladder(3840, 2160, DEFAULT_LADDER)]
    # 2160 <- source, 1440 <- 2160, 1080 <- 2160 (2:1), 720 <- 1440 (2:1), 480 <- 720, 360 <- 720 (2:1)
    assert scale_parents(sizes) == [-1, 0, 0, 1, 3, 3]
    assert scale_parents([(1920, 800), (1280, 534), (638, 266)]) == [-1, 0, 1]


def test_given_a_1080p_ladder_when_built_then_rungs_use_swscale_from_source_area_for_halves_zscale_else(
    clip: Path,
) -> None:
    import re

    from runtime.worker.video import ladder_command, prepare

    info = probe(clip)
    sizes = [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    rungs = plan_ladder(1920, 1080, LADDER)
    assert [(r.width, r.height) for r in rungs] == sizes
    args = ladder_command(clip, Path("/out"), info, rungs, Transcode(), prepare(info))
    graph = args[args.index("-filter_complex") + 1]
    scalers = {f"{w}x{h}": name for name, w, h in re.findall(r"\](z?scale)=(\d+):(\d+)", graph)}
    assert scalers == {"1920x1080": "scale", "1280x720": "zscale", "854x480": "zscale", "640x360": "scale"}, graph
    assert "scale=640:360:flags=area" in graph  # 720p halved: a 2x2 box average


def test_given_progress_lines_when_parsed_then_seconds_of_output() -> None:
    assert parse_progress_line("out_time_us=1500000\n") == 1.5
    assert parse_progress_line("out_time_ms=2000000") == 2.0
    assert parse_progress_line("out_time_us=N/A") is None
    assert parse_progress_line("progress=continue") is None


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


def test_given_text_file_when_probed_then_unsupported_format_before_ffprobe(tmp_path: Path) -> None:
    fake = tmp_path / "movie.mp4"
    fake.write_text("not a video\n" * 50)
    with pytest.raises(JobFailure) as err:
        probe(fake)
    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT


# --- HLS ----------------------------------------------------------------------------------------


def _variant_streams(path: Path) -> dict[str, dict]:
    data = ffprobe(path)
    return {s["codec_type"]: s for s in data["streams"]}


def _master(work: Path) -> playlists.Master:
    master = playlists.parse_master((work / "hls" / "master.m3u8").read_text())
    master.validate()
    return master


def test_given_480p_clip_when_transcoded_then_only_rungs_at_or_below_480_with_valid_playlists(
    clip_480: Path, tmp_path: Path
) -> None:
    outputs = transcode_hls(clip_480, tmp_path, probe(clip_480), Transcode(segment_seconds=2))
    master = _master(tmp_path)
    assert [v.uri for v in master.variants] == ["480p/index.m3u8", "360p/index.m3u8"]
    assert [(v.width, v.height) for v in master.variants] == [(854, 480), (640, 360)]
    assert all(v.codecs.startswith("avc1.64") and v.codecs.endswith(",mp4a.40.2") for v in master.variants)
    [audio] = master.audio
    assert audio.uri == "audio_0/index.m3u8" and audio.default and audio.channels == 2
    for uri in [v.uri for v in master.variants] + [audio.uri]:
        playlist = playlists.parse_media((tmp_path / "hls" / uri).read_text())
        assert playlist.ended and playlist.segments[0].uri == "seg_00001.ts"
        assert all(s.duration <= playlist.target_duration + 0.05 for s in playlist.segments)
        assert abs(playlist.duration - 2.0) < 0.2
    audio_peak, _ = hls.measure(tmp_path / "hls" / audio.uri)
    for v in master.variants:
        peak, _ = hls.measure(tmp_path / "hls" / v.uri)
        assert v.bandwidth == peak + audio_peak  # the variant plays with its audio group
    video = _variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")
    assert set(video) == {"video"} and (video["video"]["width"], video["video"]["height"]) == (640, 360)
    sound = _variant_streams(tmp_path / "hls" / "audio_0" / "seg_00001.ts")
    assert set(sound) == {"audio"} and sound["audio"]["codec_name"] == "aac" and sound["audio"]["channels"] == 2
    roles = sorted(o.role for o in outputs if o.role)
    assert roles == ["hls-master", "hls-rendition", "hls-rendition", "hls-rendition"]
    assert {o.mime for o in outputs if o.role is None} == {"video/mp2t"}
    assert subprocess.run(["ffprobe", "-v", "error", str(tmp_path / "hls" / "master.m3u8")]).returncode == 0


def test_given_two_rungs_when_transcoded_then_bandwidth_differs_per_rung(clip_480: Path, tmp_path: Path) -> None:
    transcode_hls(clip_480, tmp_path, probe(clip_480), Transcode(renditions=(480, 360), segment_seconds=2))
    variants = _master(tmp_path).variants
    assert variants[0].bandwidth > variants[1].bandwidth > 96_000


def test_given_clip_without_audio_when_transcoded_then_video_only_codecs(clip_silent: Path, tmp_path: Path) -> None:
    transcode_hls(clip_silent, tmp_path, probe(clip_silent), Transcode(renditions=(360,)))
    master = _master(tmp_path)
    assert "mp4a" not in master.variants[0].codecs and master.variants[0].audio_group is None
    assert master.audio == () and "EXT-X-MEDIA" not in (tmp_path / "hls" / "master.m3u8").read_text()
    assert set(_variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")) == {"video"}


def test_given_portrait_clip_when_transcoded_then_renditions_are_portrait(clip_portrait: Path, tmp_path: Path) -> None:
    transcode_hls(clip_portrait, tmp_path, probe(clip_portrait), Transcode())
    assert [(v.width, v.height) for v in _master(tmp_path).variants] == [(360, 640)]
    video = _variant_streams(tmp_path / "hls" / "360p" / "seg_00001.ts")["video"]
    assert (video["width"], video["height"]) == (360, 640)


def test_given_fmp4_segments_when_transcoded_then_init_and_m4s(clip: Path, tmp_path: Path) -> None:
    outputs = transcode_hls(clip, tmp_path, probe(clip), Transcode(segment_type="fmp4"))
    for folder in ("180p", "audio_0"):
        playlist = playlists.parse_media((tmp_path / "hls" / folder / "index.m3u8").read_text())
        assert playlist.map_uri == f"init_{folder}.mp4"
        assert all(s.uri.endswith(".m4s") for s in playlist.segments)
    master = _master(tmp_path)
    assert master.version == 7 and master.variants[0].codecs.startswith("avc1.64")  # level read from init + segment
    keys = {o.key: o.mime for o in outputs}
    assert keys["hls/180p/init_180p.mp4"] == "video/mp4" and keys["hls/180p/seg_00001.m4s"] == "video/iso.segment"
    assert keys["hls/audio_0/init_audio_0.mp4"] == "video/mp4"


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
    variants = _master(tmp_path).variants
    assert [(v.width, v.height) for v in variants] == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    bandwidths = [v.bandwidth for v in variants]
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
