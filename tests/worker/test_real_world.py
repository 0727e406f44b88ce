"""Files shaped like real uploads (issue 13), generated here with ffmpeg, through the real ladder,
checked with ffprobe: display aspect, progressive frames, BT.709 8-bit, audio renditions,
constant frame rate, 4K, extreme aspect ratios, and the formats that already worked."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from runtime.shared import hls as playlists
from runtime.shared.contract import Poster, Transcode, TranscodeResolution
from runtime.shared.status import ErrorCode
from runtime.worker import video
from runtime.worker.errors import JobFailure
from runtime.worker.video import make_poster, probe, transcode_hls, transcode_mp4
from tests.media import (
    FFMPEG,
    _run,
    ffprobe,
    field_detection,
    luma_stats,
    make_anamorphic,
    make_hdr,
    make_interlaced_mpeg2,
    make_multi_audio,
    make_unflagged_video,
    make_vfr,
    make_video,
    packet_times,
)


@pytest.fixture(autouse=True)
def _fast_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every property checked here holds at any x264 preset; ultrafast keeps the suite quick."""
    monkeypatch.setattr(video, "PRESET", "ultrafast")


def _ladder(source: Path, work: Path, **op: Any) -> tuple[playlists.Master, dict[str, dict[str, Any]]]:
    """Run the ladder; the validated master and, per rendition folder, ffprobe of its first segment."""
    transcode_hls(source, work, probe(source), Transcode(**op))
    master = playlists.parse_master((work / "hls" / "master.m3u8").read_text())
    master.validate()
    streams = {}
    for uri in [v.uri for v in master.variants] + [a.uri for a in master.audio]:
        folder = work / "hls" / uri.rsplit("/", 1)[0]
        playlist = playlists.parse_media((folder / "index.m3u8").read_text())
        first = folder / playlist.segments[0].uri
        target = f"concat:{folder / playlist.map_uri}|{first}" if playlist.map_uri else str(first)
        [stream] = ffprobe(target)["streams"]
        streams[folder.name] = stream
    return master, streams


def _dar(stream: dict[str, Any]) -> float:
    sar = Fraction(*(int(x) for x in str(stream.get("sample_aspect_ratio") or "1:1").replace("0:1", "1:1").split(":")))
    return float(stream["width"] * sar / stream["height"])


def _assert_sdr_709(stream: dict[str, Any]) -> None:
    assert stream["pix_fmt"] == "yuv420p", stream
    assert (stream.get("color_primaries"), stream.get("color_transfer"), stream.get("color_space")) == (
        "bt709",
        "bt709",
        "bt709",
    ), stream
    assert stream.get("field_order") in (None, "progressive"), stream


# --- 1. display geometry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "sar", "shown", "top"),
    [
        ((720, 480), "32/27", 16 / 9, (852, 480)),  # NTSC DVD widescreen
        ((720, 576), "16/15", 4 / 3, (640, 480)),  # PAL 4:3
        ((1440, 1080), "4/3", 16 / 9, (1920, 1080)),  # HDV
    ],
)
def test_given_non_square_pixels_when_transcoded_then_square_renditions_at_the_display_aspect(
    tmp_path: Path, size: tuple[int, int], sar: str, shown: float, top: tuple[int, int]
) -> None:
    source = make_anamorphic(tmp_path / "anamorphic.mp4", *size, sar=sar, seconds=1, fps=5)
    master, streams = _ladder(source, tmp_path, renditions=(1080, 480, 360))
    assert (master.variants[0].width, master.variants[0].height) == top  # RESOLUTION: what a viewer sees
    for variant in master.variants:
        stream = streams[variant.uri.split("/")[0]]
        assert (stream["width"], stream["height"]) == (variant.width, variant.height)
        assert stream["sample_aspect_ratio"] in ("1:1", None)
        assert _dar(stream) == pytest.approx(shown, rel=0.01)
        assert stream["width"] % 2 == 0 and stream["height"] % 2 == 0


def test_given_a_rotated_anamorphic_clip_when_transcoded_then_portrait_at_the_display_aspect(tmp_path: Path) -> None:
    flat = make_anamorphic(tmp_path / "flat.mp4", 720, 480, sar="32/27", seconds=1, fps=5)
    rotated = tmp_path / "rotated.mp4"
    _run([FFMPEG, "-y", "-v", "error", "-i", str(flat), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated)])
    master, streams = _ladder(rotated, tmp_path, renditions=(480, 360))
    assert [(v.width, v.height) for v in master.variants] == [(480, 852), (360, 640)]
    assert _dar(streams["480p"]) == pytest.approx(9 / 16, rel=0.01)


@pytest.mark.parametrize(("size", "shown"), [((1920, 200), 9.6), ((200, 1600), 0.125)])
def test_given_an_extreme_aspect_ratio_when_transcoded_then_every_rung_keeps_it(
    tmp_path: Path, size: tuple[int, int], shown: float
) -> None:
    source = make_video(tmp_path / "extreme.mp4", 1, *size, audio=False, fps=5)
    master, streams = _ladder(source, tmp_path)
    assert master.variants and all(v.width <= size[0] and v.height <= size[1] for v in master.variants)
    for stream in streams.values():
        assert _dar(stream) == pytest.approx(shown, rel=0.01) and stream["width"] % 2 == stream["height"] % 2 == 0


def test_given_a_poster_and_an_mp4_of_anamorphic_video_when_made_then_square_pixels_at_16_9(tmp_path: Path) -> None:
    source = make_anamorphic(tmp_path / "dvd.mp4", 720, 480, sar="32/27", seconds=1, fps=5)
    info = probe(source)
    [poster] = make_poster(source, tmp_path, info, Poster(at_seconds=0.2, width=320))
    assert (poster.width, poster.height) == (320, 180)
    [mp4] = transcode_mp4(source, tmp_path, info, TranscodeResolution(height=360))
    stream = next(s for s in ffprobe(mp4.path)["streams"] if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (640, 360) and _dar(stream) == pytest.approx(16 / 9, rel=0.01)
    _assert_sdr_709(stream)


# --- 2. interlace -----------------------------------------------------------------------------------


def test_given_interlaced_mpeg2_when_transcoded_then_progressive_at_the_field_rate(tmp_path: Path) -> None:
    source = make_interlaced_mpeg2(tmp_path / "broadcast.ts", seconds=1)
    assert field_detection(source)["TFF"] > 20  # the source really is combed
    master, streams = _ladder(source, tmp_path, renditions=(480,), segment_seconds=2)
    stream = streams["480p"]
    assert (stream["width"], stream["height"]) == (640, 480)
    assert Fraction(stream["avg_frame_rate"]) == 50 and master.variants[0].frame_rate == 50  # 25i -> 50p
    _assert_sdr_709(stream)
    detected = field_detection(tmp_path / "hls" / "480p" / "seg_00001.ts")
    assert detected["Progressive"] > 10 * (detected["TFF"] + detected["BFF"])


@pytest.mark.parametrize(("interlaced", "rate"), [(True, 50), (False, 25)])
def test_given_a_format_that_does_not_flag_interlace_when_transcoded_then_idet_decides(
    tmp_path: Path, interlaced: bool, rate: int
) -> None:
    source = make_unflagged_video(tmp_path / "camera.avi", interlaced=interlaced)
    assert ffprobe(source)["streams"][0].get("field_order", "unknown") == "unknown"
    info = probe(source)
    assert info.field_order == ("bb" if interlaced else "progressive")
    _, streams = _ladder(source, tmp_path, renditions=(240,))
    assert Fraction(streams["240p"]["avg_frame_rate"]) == rate
    _assert_sdr_709(streams["240p"])  # MJPEG is full-range BT.601: converted, tagged limited BT.709


# --- 3. HDR -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_given_hdr_hevc_when_transcoded_then_tone_mapped_sdr_bt709_8bit(tmp_path: Path, transfer: str) -> None:
    source = make_hdr(tmp_path / "hdr.mp4", transfer)
    assert probe(source).hdr == ("pq" if transfer == "smpte2084" else "hlg")
    sdr = make_video(tmp_path / "sdr.mp4", 1, 320, 180, audio=False)  # the picture the HDR clip was made from
    _, streams = _ladder(source, tmp_path, renditions=(240,))  # one rung, at the source's 320x180
    _assert_sdr_709(streams["180p"])
    # Tone mapped, not merely re-tagged: the HDR code values shown as SDR are washed out (their
    # contrast is about half the picture's); the tone-mapped rendition gets most of it back.
    reference, naive = luma_stats(sdr), luma_stats(source, "format=yuv420p,")
    out = luma_stats(tmp_path / "hls" / "180p" / "seg_00001.ts")
    spread = {name: s["YHIGH"] - s["YLOW"] for name, s in (("ref", reference), ("naive", naive), ("out", out))}
    assert spread["naive"] < 0.6 * spread["ref"] and spread["out"] > 0.75 * spread["ref"], spread


def test_given_sdr_sources_when_transcoded_then_they_keep_or_gain_bt709_tags(tmp_path: Path) -> None:
    tagged_601 = tmp_path / "sd601.mp4"
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=5", "-t", "1", "-c:v"]
    args += ["libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-colorspace", "smpte170m"]
    _run([*args, "-color_primaries", "smpte170m", "-color_trc", "smpte170m", str(tagged_601)])
    untagged = make_video(tmp_path / "untagged.mp4", 1, 640, 360, audio=False, fps=5)
    for source in (tagged_601, untagged):
        _, streams = _ladder(source, tmp_path / source.stem, renditions=(360,))
        _assert_sdr_709(streams["360p"])


# --- 4. audio tracks --------------------------------------------------------------------------------


def test_given_two_audio_tracks_when_transcoded_then_one_shared_group_with_languages_and_one_default(
    tmp_path: Path,
) -> None:
    source = make_multi_audio(tmp_path / "film.mkv", width=640, height=360)
    master, streams = _ladder(source, tmp_path, renditions=(360, 240), segment_seconds=2)
    assert [(a.uri, a.language, a.name, a.default, a.autoselect) for a in master.audio] == [
        ("audio_0/index.m3u8", "en", "English", False, True),
        ("audio_1/index.m3u8", "fr", "Commentaire", True, True),  # the track the file flags default
    ]
    assert {a.group_id for a in master.audio} == {"audio"}
    assert all(v.audio_group == "audio" and v.codecs.endswith(",mp4a.40.2") for v in master.variants)
    for folder in ("audio_0", "audio_1"):  # encoded once each, AAC stereo (the 5.1 track mixed down)
        stream = streams[folder]
        assert (stream["codec_type"], stream["codec_name"], stream["channels"]) == ("audio", "aac", 2)
    assert all(streams[v.uri.split("/")[0]]["codec_type"] == "video" for v in master.variants)  # no audio copies
    probed = ffprobe(tmp_path / "hls" / "master.m3u8")
    assert sum(s["codec_type"] == "audio" for s in probed["streams"]) == 2
    languages = {s.get("tags", {}).get("language") for s in probed["streams"] if s["codec_type"] == "audio"}
    assert languages == {"en", "fr"}


def test_given_an_audio_only_file_when_a_video_job_runs_then_a_clear_error(tmp_path: Path) -> None:
    song = tmp_path / "song.m4a"
    _run([FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(song)])
    with pytest.raises(JobFailure) as err:
        probe(song)
    assert err.value.code == ErrorCode.UNSUPPORTED_FORMAT and "no video stream" in err.value.message


# --- 5. frame rate and alignment -----------------------------------------------------------------------


def test_given_a_variable_frame_rate_clip_when_transcoded_then_constant_rate_and_aligned_segments(
    tmp_path: Path,
) -> None:
    source = make_vfr(tmp_path / "phone.mp4", seconds=4, width=640, height=360)
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(packet_times(source))}
    assert len(gaps) > 3  # the source's frame intervals vary
    master, _ = _ladder(source, tmp_path, renditions=(360, 240), segment_seconds=2)
    [rate] = {v.frame_rate for v in master.variants}
    assert rate in (30, 29.97)  # the average (about 30) snapped to a standard rate
    durations = []
    for variant in master.variants:
        folder = tmp_path / "hls" / variant.uri.split("/")[0]
        playlist = playlists.parse_media((folder / "index.m3u8").read_text())
        durations.append([round(s.duration, 3) for s in playlist.segments])
        times = [t for s in playlist.segments for t in packet_times(folder / s.uri)]
        steps = {round(b - a, 4) for a, b in itertools.pairwise(times)}
        assert steps == {round(1 / rate, 4)}  # constant frame rate, no frame dropped or doubled in between
        for segment in playlist.segments:  # every segment opens with a keyframe
            keys = ffprobe_keyframe_flags(folder / segment.uri)
            assert keys[0] is True
    assert durations[0] == durations[1]  # segment boundaries line up across variants


def ffprobe_keyframe_flags(path: Path) -> list[bool]:
    """Whether each video packet of ``path`` is a keyframe, in presentation order."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags", "-of", "csv=p=0"]
    out = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout.split()
    packets = sorted((int(line.split(",")[0]), "K" in line.split(",")[1]) for line in out if line.strip())
    return [key for _, key in packets]


def test_given_a_120_fps_clip_when_transcoded_then_capped_at_60(tmp_path: Path) -> None:
    source = make_video(tmp_path / "slowmo.mp4", 1, 160, 90, audio=False, fps=120)
    master, streams = _ladder(source, tmp_path)
    assert master.variants[0].frame_rate == 60 and Fraction(streams["90p"]["avg_frame_rate"]) == 60


# --- 6. 4K ------------------------------------------------------------------------------------------------


def test_given_a_4k_source_when_transcoded_with_defaults_then_2160p_to_360p(tmp_path: Path) -> None:
    source = make_video(tmp_path / "uhd.mp4", 1, 3840, 2160, audio=False, fps=4)
    master, streams = _ladder(source, tmp_path)
    assert [(v.width, v.height) for v in master.variants] == [
        (3840, 2160),
        (2560, 1440),
        (1920, 1080),
        (1280, 720),
        (854, 480),
        (640, 360),
    ]
    assert (streams["2160p"]["width"], streams["2160p"]["height"]) == (3840, 2160)
    bandwidths = [v.bandwidth for v in master.variants]
    assert bandwidths == sorted(bandwidths, reverse=True)


# --- what already worked keeps working ----------------------------------------------------------------------


def _encode(path: Path, video_args: list[str], audio_args: list[str], extra_inputs: list[str] | None = None) -> Path:
    args = [FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10"]
    args += ["-f", "lavfi", "-i", "sine=frequency=500:sample_rate=48000", *(extra_inputs or []), "-t", "1"]
    _run([*args, *video_args, *audio_args, str(path)])
    return path


FORMATS = {
    "prores_51.mov": (["-c:v", "prores_ks", "-profile:v", "1"], ["-c:a", "pcm_s16le", "-ac", "6"]),
    "vp9_opus.webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], ["-c:a", "libopus"]),
    "av1.mp4": (["-c:v", "libsvtav1", "-preset", "12"], ["-c:a", "aac"]),
    "hevc_10bit.mp4": (["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le"], ["-c:a", "aac"]),
    "mono.mp4": (["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac", "-ac", "1"]),
    "odd_444.mkv": (
        ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-s", "321x181"],
        ["-c:a", "aac"],
    ),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_given_a_format_that_worked_before_when_transcoded_then_it_still_does(tmp_path: Path, name: str) -> None:
    video_args, audio_args = FORMATS[name]
    if "x265" in video_args:
        video_args = [*video_args, "-x265-params", "log-level=error"]
    source = _encode(tmp_path / name, video_args, audio_args)
    master, streams = _ladder(source, tmp_path)
    [variant] = master.variants
    stream = streams[variant.uri.split("/")[0]]
    _assert_sdr_709(stream)
    assert _dar(stream) == pytest.approx(320 / 180 if "odd" not in name else 321 / 181, rel=0.01)
    assert streams["audio_0"]["channels"] == 2


def test_given_subtitles_in_the_file_when_transcoded_then_they_are_left_out(tmp_path: Path) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,900\nhello\n")
    source = _encode(
        tmp_path / "subbed.mkv",
        ["-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "libx264", "-preset", "ultrafast"],
        ["-c:a", "aac", "-c:s", "srt"],
        ["-i", str(srt)],
    )
    master, streams = _ladder(source, tmp_path)
    assert len(master.variants) == 1 and len(master.audio) == 1 and streams["audio_0"]["codec_type"] == "audio"


def test_given_a_still_picture_track_before_the_film_when_transcoded_then_the_film_is_what_plays(
    tmp_path: Path,
) -> None:
    """An MKV whose first video track is a one-frame 300x300 picture: the probe and every
    ffmpeg command take the same stream, the film (ffmpeg's own choice), never ``0:v:0``."""
    picture = tmp_path / "picture.png"
    _run([FFMPEG, "-y", "-v", "error", "-f", "lavfi", "-i", "color=red:size=300x300", "-frames:v", "1", str(picture)])
    film = _encode(tmp_path / "film.mp4", ["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"])
    source = tmp_path / "picture_first.mkv"
    remux = ["-map", "0", "-map", "1", "-c", "copy", str(source)]
    _run([FFMPEG, "-y", "-v", "error", "-i", str(picture), "-i", str(film), *remux])
    assert [s["codec_name"] for s in ffprobe(source)["streams"]] == ["png", "h264", "aac"]
    info = probe(source)
    assert (info.stream_index, info.display_size) == (1, (320, 180))
    master, streams = _ladder(source, tmp_path / "out")
    [variant] = master.variants
    assert (variant.width, variant.height) == (320, 180)
    stream = streams[variant.uri.split("/")[0]]
    assert (stream["width"], stream["height"]) == (320, 180)
    graph = " ".join(video.poster_command(source, tmp_path / "p.jpg", 0.5, None, info))
    assert "[0:1]" in graph and "0:v:0" not in graph
