"""The HLS playlist module (runtime/shared/hls.py): what it reads, writes, lists and rewrites."""

from __future__ import annotations

import pytest

from runtime.shared import hls

MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:6.000000,
seg_00001.m4s
#EXTINF:2.500000,
seg_00002.m4s
#EXT-X-ENDLIST
"""


def _master() -> hls.Master:
    return hls.Master(
        variants=(
            hls.Variant("360p/index.m3u8", 640, 360, "avc1.64001e,mp4a.40.2", 900_000, 800_000, 25.0, "audio"),
            hls.Variant("720p/index.m3u8", 1280, 720, "avc1.64001f,mp4a.40.2", 3_000_000, 2_500_000, 25.0, "audio"),
        ),
        audio=(
            hls.AudioRendition("audio_0/index.m3u8", "audio", "English", "en", default=True, channels=2),
            hls.AudioRendition("audio_1/index.m3u8", "audio", "Français", "fr", default=False, channels=2),
        ),
        iframes=(hls.IFrameStream("720p/iframes.m3u8", 1280, 720, "avc1.64001f", 300_000, 200_000),),
        version=7,
    )


def test_given_a_media_playlist_when_parsed_then_segments_init_section_and_end() -> None:
    playlist = hls.parse_media(MEDIA)
    assert [(s.uri, s.duration) for s in playlist.segments] == [("seg_00001.m4s", 6.0), ("seg_00002.m4s", 2.5)]
    assert (playlist.target_duration, playlist.map_uri, playlist.ended) == (6, "init.mp4", True)
    assert playlist.duration == pytest.approx(8.5)


def test_given_a_master_with_audio_and_iframes_when_written_and_parsed_then_nothing_is_lost() -> None:
    master = _master()
    text = hls.write_master(master)
    back = hls.parse_master(text)
    assert [v.uri for v in back.variants] == ["720p/index.m3u8", "360p/index.m3u8"]  # highest BANDWIDTH first
    assert set(back.variants) == set(master.variants)
    assert back.audio == master.audio and back.iframes == master.iframes and back.version == 7
    back.validate()


def test_given_a_written_master_when_read_as_text_then_rfc8216_tags_for_groups_and_iframes() -> None:
    lines = hls.write_master(_master()).splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert len(media) == 2 and all("TYPE=AUDIO" in m and 'GROUP-ID="audio"' in m for m in media)
    assert 'LANGUAGE="en"' in media[0] and 'NAME="English"' in media[0] and "DEFAULT=YES" in media[0]
    assert "DEFAULT=NO" in media[1] and "AUTOSELECT=YES" in media[1]
    streams = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert all('AUDIO="audio"' in s and "RESOLUTION=" in s for s in streams)
    assert [line for line in lines if line.startswith("#EXT-X-I-FRAME-STREAM-INF:")] == [
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=200000,RESOLUTION=1280x720,"
        'CODECS="avc1.64001f",URI="720p/iframes.m3u8"'
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variants": ()}, "no variants"),
        ({"audio": ()}, "no EXT-X-MEDIA defines"),
        (
            {"audio": (hls.AudioRendition("a/index.m3u8", "audio", "A"), hls.AudioRendition("b/i.m3u8", "audio", "B"))},
            "0 DEFAULT=YES",
        ),
        ({"iframes": (hls.IFrameStream("https://x/i.m3u8", 2, 2, "avc1.64001f", 1),)}, "must be relative"),
    ],
)
def test_given_a_broken_master_when_validated_then_the_reason_is_named(change: dict, message: str) -> None:
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(_master(), **change).validate()


def test_given_playlists_when_uris_listed_then_each_once_in_a_stable_order() -> None:
    master = hls.write_master(_master())
    assert hls.uris(master) == [
        "audio_0/index.m3u8",
        "audio_1/index.m3u8",
        "720p/index.m3u8",
        "360p/index.m3u8",
        "720p/iframes.m3u8",
    ]
    assert hls.uris(MEDIA) == ["init.mp4", "seg_00001.m4s", "seg_00002.m4s"]


def test_given_a_media_playlist_when_rewritten_then_relative_uris_change_once_each_and_absolute_stay() -> None:
    text = MEDIA.replace("seg_00002.m4s", "https://cdn.example.com/seg_00002.m4s")
    calls: list[str] = []

    def sign(uri: str) -> str:
        calls.append(uri)
        return f"https://s3.example.com/{uri}?sig=1"

    out = hls.rewrite(text, sign)
    assert calls == ["init.mp4", "seg_00001.m4s"]
    assert hls.uris(out) == [
        "https://s3.example.com/init.mp4?sig=1",
        "https://s3.example.com/seg_00001.m4s?sig=1",
        "https://cdn.example.com/seg_00002.m4s",
    ]
    assert [s.duration for s in hls.parse_media(out).segments] == [6.0, 2.5]


@pytest.mark.parametrize("text", ["", "<html></html>", "not a playlist\n#EXTM3U\n"])
def test_given_text_that_is_not_a_playlist_when_read_then_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="#EXTM3U"):
        hls.uris(text)


IFRAMES = """#EXTM3U
#EXT-X-VERSION:5
#EXT-X-TARGETDURATION:3
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-I-FRAMES-ONLY
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
#EXT-X-BYTERANGE:1200@0
seg_00001.m4s
#EXTINF:2.500000,
#EXT-X-BYTERANGE:900@4096
seg_00002.m4s
#EXT-X-ENDLIST
"""


def _iframes() -> hls.MediaPlaylist:
    return hls.MediaPlaylist(
        target_duration=3,
        segments=(
            hls.Segment("seg_00001.m4s", 2.0, hls.ByteRange(1200, 0)),
            hls.Segment("seg_00002.m4s", 2.5, hls.ByteRange(900, 4096)),
        ),
        map_uri="init.mp4",
        ended=True,
        version=5,
        i_frames_only=True,
        playlist_type="VOD",
    )


def test_given_an_iframe_playlist_when_written_then_rfc8216_text_with_one_map_and_byte_ranges() -> None:
    assert hls.write_media(_iframes()) == IFRAMES


def test_given_an_iframe_playlist_when_parsed_then_byte_ranges_flags_and_version() -> None:
    assert hls.parse_media(IFRAMES) == _iframes()
    assert hls.parse_media(MEDIA).segments[0].byterange is None and not hls.parse_media(MEDIA).i_frames_only


@pytest.mark.parametrize(("value", "expected"), [("1200@0", hls.ByteRange(1200, 0)), ("75", hls.ByteRange(75))])
def test_given_a_byterange_with_or_without_offset_when_parsed_then_both_kept(
    value: str, expected: hls.ByteRange
) -> None:
    text = IFRAMES.replace("1200@0", value)

    segment = hls.parse_media(text).segments[0]

    assert segment.byterange == expected and str(segment.byterange) == value


def test_given_a_variant_without_resolution_when_parsed_then_resolution_is_none() -> None:
    master = hls.parse_master('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1.42c01e"\nv/index.m3u8\n')

    assert master.variants[0].resolution is None and _master().variants[0].resolution == (640, 360)
