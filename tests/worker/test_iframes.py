"""I-frame playlists on real ladders (TS and fMP4): every byte range, extracted with the
initialisation a player would use, decodes to exactly one picture, a keyframe, the very one the
full rendition shows at that point; the entries add up to the rendition; the master lists one
I-frame stream per variant."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import m3u8
import pytest

from runtime.worker.iframes import add_iframe_playlists
from runtime.worker.outputs import LocalOutput
from tests.media import FFMPEG, FFPROBE, make_video
from tests.worker.ladders import hls_rendition, worker_ladder

HLS_MIME = "application/vnd.apple.mpegurl"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "clip.mp4", 5, 640, 360)


@pytest.fixture(scope="module", params=["ts", "fmp4"])
def ladder(request: pytest.FixtureRequest, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return worker_ladder(source, tmp_path_factory.mktemp(f"ladder-{request.param}"), request.param)


def _keyframe_md5s(playlist: Path) -> list[tuple[float, str]]:
    """(time, md5) of every keyframe picture of the rendition, decoded the ordinary way."""
    args = [FFMPEG, "-v", "error", "-skip_frame", "nokey", "-i", str(playlist), "-map", "0:v:0"]
    out = subprocess.run(
        [*args, "-fps_mode", "passthrough", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return [(float(r[2]), r[5].strip()) for r in rows]


def _decode_range(iframes: Path, entry: m3u8.Segment, init: str | None, work: Path) -> list[dict[str, str]]:
    """Decode what a player would for one entry: the init (fMP4: EXT-X-MAP; TS: the bytes of the
    segment before its first I-frame) followed by the byte range."""
    length, offset = (int(v) for v in str(entry.byterange).split("@"))
    data = (iframes.parent / str(entry.uri)).read_bytes()
    if init is not None:
        head = (iframes.parent / init).read_bytes()
    else:
        pattern = rf"#EXT-X-BYTERANGE:\d+@(\d+)\n{re.escape(str(entry.uri))}\n"
        head = data[: min(int(o) for o in re.findall(pattern, iframes.read_text()))]
    sample = work / ("frame.mp4" if init else "frame.ts")
    sample.write_bytes(head + data[offset : offset + length])
    fields = "frame=key_frame,pict_type,width,height"
    probe = subprocess.run(
        [
            FFPROBE,
            "-v",
            "quiet",
            "-select_streams",
            "v:0",
            "-show_frames",
            "-show_entries",
            fields,
            "-of",
            "compact",
            str(sample),
        ],
        capture_output=True,
        text=True,
    ).stdout
    frames = [
        dict(p.split("=", 1) for p in line.split("|") if "=" in p)
        for line in probe.splitlines()
        if line.startswith("frame|")
    ]
    md5 = subprocess.run(
        [FFMPEG, "-v", "quiet", "-i", str(sample), "-map", "0:v:0", "-frames:v", "1", "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
    ).stdout
    digests = [line.split(",")[5].strip() for line in md5.splitlines() if line and not line.startswith("#")]
    for frame in frames:
        frame["md5"] = digests[0] if digests else ""
    return frames


def _check_iframe_playlist(variant: Path, iframes: Path, work: Path, every_keyframe: bool) -> None:
    playlist = m3u8.load(str(iframes))
    media = m3u8.load(str(variant))
    assert playlist.is_i_frames_only and playlist.is_endlist and playlist.version >= 4
    init = playlist.segment_map[0].uri if playlist.segment_map else None
    assert init == (media.segment_map[0].uri if media.segment_map else None)
    keyframes = _keyframe_md5s(variant)
    pictures = [_decode_range(iframes, entry, init, work) for entry in playlist.segments]
    assert all(len(p) == 1 for p in pictures), pictures  # one picture per range, no more
    assert all(p[0]["key_frame"] == "1" and p[0]["pict_type"] == "I" for p in pictures)
    shown = [p[0]["md5"] for p in pictures]
    if every_keyframe:
        assert shown == [md5 for _, md5 in keyframes]
    else:  # fMP4: the keyframe starting each fragment (one per segment)
        assert len(shown) == len(media.segments) and set(shown) <= {md5 for _, md5 in keyframes}
        assert shown == sorted(shown, key=[md5 for _, md5 in keyframes].index)
    total = sum(s.duration for s in playlist.segments)
    assert total == pytest.approx(sum(s.duration for s in media.segments), abs=0.05)
    assert playlist.target_duration >= max(round(s.duration) for s in playlist.segments)


def test_given_the_workers_ladder_when_iframe_playlists_are_added_then_the_master_lists_one_per_variant(
    ladder: Path,
) -> None:
    added = add_iframe_playlists(LocalOutput(ladder, "hls/master.m3u8", None, HLS_MIME))
    assert [(o.key, o.role, o.mime) for o in added] == [
        ("hls/360p/iframes.m3u8", None, HLS_MIME),
        ("hls/240p/iframes.m3u8", None, HLS_MIME),
    ]
    master = m3u8.load(str(ladder))
    variants = {p.uri: p.stream_info for p in master.playlists}
    assert [p.uri for p in master.iframe_playlists] == ["360p/iframes.m3u8", "240p/iframes.m3u8"]
    for iframe in master.iframe_playlists:
        info = iframe.iframe_stream_info
        variant = variants[iframe.uri.replace("iframes", "index")]
        assert info.resolution == variant.resolution
        assert info.codecs == variant.codecs.split(",")[0]  # the video codec only
        assert 0 < info.bandwidth < variant.bandwidth


def test_given_the_workers_ladder_when_each_iframe_range_is_decoded_then_it_is_that_keyframe(
    ladder: Path, tmp_path: Path
) -> None:
    add_iframe_playlists(LocalOutput(ladder, "hls/master.m3u8", None, HLS_MIME))
    fragmented = "fmp4" in ladder.parent.parent.name
    for rung in ("360p", "240p"):
        folder = ladder.parent / rung
        _check_iframe_playlist(folder / "index.m3u8", folder / "iframes.m3u8", tmp_path, every_keyframe=True)
        assert (folder / "iframes.m3u8").read_text().count("#EXT-X-MAP:") == (1 if fragmented else 0)


@pytest.mark.parametrize("segment_type", ["ts", "fmp4"])
def test_given_several_keyframes_per_segment_when_listed_then_each_range_decodes_to_its_own_keyframe(
    source: Path, tmp_path: Path, segment_type: str
) -> None:
    """GOPs of 0.48 s in 2 s segments: TS lists every keyframe; fMP4 (one fragment per segment)
    only those that start a fragment, since a range from the moof would hold earlier frames."""
    variant = hls_rendition(
        source,
        tmp_path / "hls" / "v",
        ["0:v:0", "0:a:0"],
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "12",
            "-keyint_min",
            "12",
            "-sc_threshold",
            "0",
            "-c:a",
            "copy",
        ],
        segment_type,
    )
    master = tmp_path / "hls" / "master.m3u8"
    master.write_text('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1.42c01e,mp4a.40.2"\nv/index.m3u8\n')
    add_iframe_playlists(LocalOutput(master, "hls/master.m3u8", None, HLS_MIME))
    iframes = variant.with_name("iframes.m3u8")
    entries = m3u8.load(str(iframes)).segments
    assert len(entries) == (11 if segment_type == "ts" else len(m3u8.load(str(variant)).segments))
    _check_iframe_playlist(variant, iframes, tmp_path, every_keyframe=segment_type == "ts")
