"""The playlist rewriting rules on their own: which URIs are followed, rewritten or left alone."""

from __future__ import annotations

import pytest

from runtime.api.chalicelib import playback
from runtime.api.chalicelib.errors import ApiError
from runtime.shared import hls

MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/en/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"
360p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p/iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1
https://cdn.example.com/elsewhere.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"
360p/index.m3u8
"""


def test_given_a_master_with_audio_and_iframe_playlists_when_indexed_then_each_relative_uri_once_in_order() -> None:
    assert playback._master_uris(MASTER) == ["audio/en/index.m3u8", "360p/index.m3u8", "360p/iframes.m3u8"]


def test_given_a_master_when_rewritten_then_relative_uris_point_to_routes_and_absolute_ones_stay() -> None:
    index = {uri: n for n, uri in enumerate(playback._master_uris(MASTER))}
    out = playback._rewritten(MASTER, lambda uri: f"/v/{index[uri]}")
    assert 'URI="/v/0"' in out and 'URI="/v/2"' in out
    assert out.count("\n/v/1\n") == 2
    assert "https://cdn.example.com/elsewhere.m3u8" in out
    assert out.splitlines()[0] == "#EXTM3U"


def test_given_relative_paths_when_resolved_then_only_keys_inside_the_job_folder_are_returned() -> None:
    prefix = "output/u/j/"
    assert (
        playback._resolve(prefix, "output/u/j/hls/master.m3u8", "720p/index.m3u8") == "output/u/j/hls/720p/index.m3u8"
    )
    assert playback._resolve(prefix, "output/u/j/hls/720p/index.m3u8", "../shared/init.mp4") == (
        "output/u/j/hls/shared/init.mp4"
    )
    assert playback._resolve(prefix, "output/u/j/hls/master.m3u8", "../../k/hls/index.m3u8") is None
    assert playback._resolve(prefix, "output/u/j/hls/master.m3u8", "../../j2/x.ts") is None
    assert not hls.is_relative("/abs/path.ts") and not hls.is_relative("data:abc")


def test_given_a_stored_object_that_is_not_a_playlist_when_indexed_then_bad_gateway() -> None:
    with pytest.raises(ApiError) as err:
        playback._master_uris("<html>not a playlist</html>")
    assert (err.value.status, err.value.code) == (502, "INVALID_PLAYLIST")
