"""HLS playback through the API: playlists rewritten, segments presigned, access scoped to one
job by a short-lived token. Playlists and segments are put into moto by the test itself; one
test plays a real ffmpeg-made fMP4 ladder through the HTTP-served app with ffmpeg as the player."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from runtime.api.chalicelib import playback, tokens
from runtime.shared.aws import client as aws_client
from runtime.shared.repo import jobs as jobs_repo
from runtime.shared.repo import outputs as outputs_repo
from runtime.shared.status import JobStatus
from tests.api.conftest import Caller, upload_file
from tests.media import make_video

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"
360p/index.m3u8
"""
VARIANT = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:6.0,
seg_000.m4s
#EXTINF:2.0,
seg_001.m4s
#EXT-X-ENDLIST
"""


def _finished_hls_job(caller: Caller, settings: Any, db: Any, files: dict[str, bytes]) -> str:
    """A SUCCEEDED video job whose ``hls/`` folder holds ``files`` (relative name -> bytes)."""
    upload = upload_file(caller, b"\x00\x00\x00\x18ftypmp42", "VIDEO", "video/mp4", "clip.mp4")
    created = caller.call(
        "POST",
        "/media/process",
        {"job_type": "VIDEO", "upload_id": upload["upload_id"], "operations": [{"op": "transcode"}]},
    )
    assert created.status_code == 201, created.body
    job_id = created.json_body["job_id"]
    prefix = f"output/{caller.user['id']}/{job_id}/hls/"
    s3 = aws_client("s3", settings)
    for name, data in files.items():
        s3.put_object(Bucket=settings.output_bucket, Key=prefix + name, Body=data)
    outputs = [
        outputs_repo.Output(
            prefix + "master.m3u8", "hls-master", len(files["master.m3u8"]), "application/vnd.apple.mpegurl"
        )
    ]
    outputs += [
        outputs_repo.Output(prefix + n, "hls-rendition", len(d), "application/vnd.apple.mpegurl")
        for n, d in files.items()
        if n.endswith("/index.m3u8")
    ]
    with db.connection() as conn:
        jobs_repo.transition(conn, job_id, JobStatus.RUNNING)
        outputs_repo.replace(conn, job_id, outputs)
        jobs_repo.transition(conn, job_id, JobStatus.SUCCEEDED)
    return job_id


def _ladder_files() -> dict[str, bytes]:
    files = {"master.m3u8": MASTER.encode()}
    for rung in ("720p", "360p"):
        files[f"{rung}/index.m3u8"] = VARIANT.encode()
        files[f"{rung}/init.mp4"] = f"init-{rung}".encode()
        files[f"{rung}/seg_000.m4s"] = f"seg0-{rung}".encode()
        files[f"{rung}/seg_001.m4s"] = f"seg1-{rung}".encode()
    return files


def _path(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


def test_given_a_finished_ladder_when_a_player_follows_the_playback_url_then_every_segment_loads(
    alice: Caller, settings: Any, db: Any
) -> None:
    files = _ladder_files()
    job_id = _finished_hls_job(alice, settings, db, files)
    download = alice.call("GET", f"/media/download/{job_id}").json_body
    playback_url = download["playback_url"]
    assert playback_url.startswith("http://") and f"/media/playback/{job_id}/master.m3u8?token=" in playback_url
    master_output = next(o for o in download["outputs"] if o["role"] == "hls-master")
    assert master_output["playback_url"] == playback_url and download["result_url"] == playback_url
    # The player sends no headers: the token in the URL is all it has.
    master = alice.http.get(_path(playback_url))
    assert master.status_code == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    variant_urls = [line for line in master.body.decode().splitlines() if line and not line.startswith("#")]
    assert [urlparse(u).path for u in variant_urls] == [
        f"/media/playback/{job_id}/0/index.m3u8",
        f"/media/playback/{job_id}/1/index.m3u8",
    ]
    assert all("token=" in u for u in variant_urls)
    for rung, url in zip(("720p", "360p"), variant_urls, strict=True):
        variant = alice.http.get(_path(url))
        assert variant.status_code == 200
        text = variant.body.decode()
        init_url = text.split('#EXT-X-MAP:URI="', 1)[1].split('"', 1)[0]
        segment_urls = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert "X-Amz-Signature" in init_url and len(segment_urls) == 2
        assert requests.get(init_url, timeout=30).content == files[f"{rung}/init.mp4"]
        for n, url_ in enumerate(segment_urls):
            assert "X-Amz-Signature" in url_
            assert requests.get(url_, timeout=30).content == files[f"{rung}/seg_00{n}.m4s"]


def test_given_playback_tokens_when_misused_then_other_jobs_are_404_and_bad_tokens_401(
    alice: Caller, bob: Caller, settings: Any, db: Any, deps: Any
) -> None:
    job_a = _finished_hls_job(alice, settings, db, _ladder_files())
    job_b = _finished_hls_job(bob, settings, db, _ladder_files())
    token_a = parse_qs(urlparse(alice.call("GET", f"/media/download/{job_a}").json_body["playback_url"]).query)[
        "token"
    ][0]
    # Alice's token for job A opens nothing of Bob's job B.
    cross = alice.http.get(f"/media/playback/{job_b}/master.m3u8?token={token_a}")
    assert cross.status_code == 404
    assert alice.http.get(f"/media/playback/{job_b}/0/index.m3u8?token={token_a}").status_code == 404
    # A token minted for job B but by Alice's identity (impossible via the API) still finds no job of hers.
    forged_scope = tokens.playback_token(
        alice.user["id"], job_b, deps.jwt_secret, session_id=alice.tokens["session_id"]
    )
    assert alice.http.get(f"/media/playback/{job_b}/master.m3u8?token={forged_scope}").status_code == 404
    expired = tokens.playback_token(alice.user["id"], job_a, deps.jwt_secret, -5, session_id=alice.tokens["session_id"])
    assert alice.http.get(f"/media/playback/{job_a}/master.m3u8?token={expired}").status_code == 401
    tampered = token_a[:-3] + ("AAA" if not token_a.endswith("AAA") else "BBB")
    assert alice.http.get(f"/media/playback/{job_a}/master.m3u8?token={tampered}").status_code == 401
    access = alice.tokens["access_token"]  # an access token is not a playback token
    assert alice.http.get(f"/media/playback/{job_a}/master.m3u8?token={access}").status_code == 401
    assert alice.http.get(f"/media/playback/{job_a}/master.m3u8").status_code == 401
    # With credentials instead of a token, the owner can still read it.
    with_credentials = alice.call("GET", f"/media/playback/{job_a}/master.m3u8")
    assert with_credentials.status_code == 200
    variant_url = next(line for line in with_credentials.body.decode().splitlines() if line.startswith("http"))
    assert alice.http.get(_path(variant_url)).status_code == 200  # the minted token carries the player on


def test_given_a_playlist_pointing_outside_the_job_when_served_then_it_is_not_followed(
    alice: Caller, settings: Any, db: Any
) -> None:
    files = _ladder_files()
    files["master.m3u8"] = (MASTER + "#EXT-X-STREAM-INF:BANDWIDTH=1\n../../../other-job/hls/index.m3u8\n").encode()
    outside = "seg_001.m4s\n#EXTINF:1.0,\n../../../../secret.bin"  # a segment outside the job's folder
    files["720p/index.m3u8"] = VARIANT.replace("seg_001.m4s", outside).encode()
    job_id = _finished_hls_job(alice, settings, db, files)
    assert alice.call("GET", f"/media/playback/{job_id}/2/index.m3u8").status_code == 404
    assert alice.call("GET", f"/media/playback/{job_id}/99/index.m3u8").status_code == 404
    assert alice.call("GET", f"/media/playback/{job_id}/x/index.m3u8").status_code == 404
    text = alice.call("GET", f"/media/playback/{job_id}/0/index.m3u8").body.decode()
    assert "../../../../secret.bin" in text and "secret.bin?" not in text  # left as is, never presigned


def test_given_an_unfinished_or_non_hls_job_when_playing_then_409_or_404(alice: Caller, jpeg_bytes: bytes) -> None:
    upload = upload_file(alice, jpeg_bytes)
    job_id = alice.call(
        "POST",
        "/media/process",
        {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": {"ROTATE": "90"}},
    ).json_body["job_id"]
    response = alice.call("GET", f"/media/playback/{job_id}/master.m3u8")
    assert response.status_code == 409 and response.json_body["error"]["code"] == "JOB_NOT_FINISHED"


@pytest.fixture(scope="module")
def jpeg_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.media import make_image

    return Path(make_image(tmp_path_factory.mktemp("pb") / "a.jpg", 32, 32)).read_bytes()


@pytest.fixture(scope="module")
def real_ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real fMP4 HLS rung made by ffmpeg from a 2 s 320x180 clip, under ``180p/``, plus a master."""
    root = tmp_path_factory.mktemp("ladder")
    clip = make_video(root / "clip.mp4", 2, 320, 180)
    rung = root / "180p"
    rung.mkdir()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(clip),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
            str(rung / "seg_%03d.m4s"),
            str(rung / "index.m3u8"),
        ],
        check=True,
    )
    files = {f"180p/{p.name}": p.read_bytes() for p in rung.iterdir()}
    files["master.m3u8"] = (
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\n180p/index.m3u8\n"
    )
    return files


def test_given_a_real_ladder_when_ffmpeg_plays_the_playback_url_over_http_then_it_decodes_the_whole_clip(
    alice: Caller, settings: Any, db: Any, api_server: str, real_ladder: dict[str, bytes]
) -> None:
    job_id = _finished_hls_job(alice, settings, db, real_ladder)
    download = requests.get(f"{api_server}/media/download/{job_id}", headers=alice.key, timeout=30).json()
    assert download["playback_url"].startswith(f"{api_server}/media/playback/{job_id}/master.m3u8?token=")
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type,width,height",
            "-of",
            "json",
            download["playback_url"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    import json

    info = json.loads(probe.stdout)
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.3
    assert {"width": 320, "height": 180} in [{k: s.get(k) for k in ("width", "height")} for s in info["streams"]]
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", download["playback_url"], "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decode.returncode == 0, decode.stderr


def test_given_a_ladder_with_two_audio_renditions_when_played_over_http_then_both_tracks_are_served(
    alice: Caller, settings: Any, db: Any, api_server: str, tmp_path: Path
) -> None:
    """Audio renditions (EXT-X-MEDIA) are playlists too: playback rewrites their URIs in the
    master and serves them with signed segment URLs, so a player reads every language."""
    from runtime.shared.contract import Transcode
    from runtime.worker.video import probe, transcode_hls
    from tests.media import make_multi_audio

    source = make_multi_audio(tmp_path / "film.mkv", seconds=2)
    transcode_hls(source, tmp_path, probe(source), Transcode(segment_seconds=2))
    hls_dir = tmp_path / "hls"
    files = {str(p.relative_to(hls_dir)): p.read_bytes() for p in hls_dir.rglob("*") if p.is_file()}
    job_id = _finished_hls_job(alice, settings, db, files)
    playback = requests.get(f"{api_server}/media/download/{job_id}", headers=alice.key, timeout=30).json()
    master = requests.get(playback["playback_url"], timeout=30).text
    assert master.count("#EXT-X-MEDIA:") == 2 and f"/media/playback/{job_id}/0/index.m3u8" in master
    entries = "stream=codec_type:stream_tags=language"
    probe_run = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", playback["playback_url"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe_run.returncode == 0, probe_run.stderr
    import json

    streams = json.loads(probe_run.stdout)["streams"]
    languages = sorted(s.get("tags", {}).get("language", "") for s in streams if s["codec_type"] == "audio")
    assert languages == ["en", "fr"] and any(s["codec_type"] == "video" for s in streams)
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", playback["playback_url"], "-map", "0:a", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr


@pytest.mark.parametrize("segment_type", ["ts", "fmp4"])
def test_given_a_ladder_with_iframe_playlists_when_played_then_they_are_served_with_byte_ranged_presigned_segments(
    alice: Caller, settings: Any, db: Any, tmp_path: Path, segment_type: str
) -> None:
    """Trick play through playback: the master's EXT-X-I-FRAME-STREAM-INF URIs go to the variant
    route, which keeps every EXT-X-BYTERANGE and presigns the segments (and EXT-X-MAP); a ranged
    GET on a presigned URL returns exactly the keyframe's bytes."""
    import m3u8

    from runtime.worker.iframes import add_iframe_playlists
    from runtime.worker.outputs import LocalOutput
    from tests.worker.ladders import worker_ladder

    clip = make_video(tmp_path / "clip.mp4", 4, 640, 360)
    master_path = worker_ladder(clip, tmp_path / "work", segment_type, renditions=(360,))
    add_iframe_playlists(LocalOutput(master_path, "hls/master.m3u8", None, "application/vnd.apple.mpegurl"))
    root = master_path.parent
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    job_id = _finished_hls_job(alice, settings, db, files)
    playback_url = alice.call("GET", f"/media/download/{job_id}").json_body["playback_url"]
    master = m3u8.loads(alice.http.get(_path(playback_url)).body.decode())
    [iframe] = master.iframe_playlists
    number = playback._master_uris(files["master.m3u8"].decode()).index("360p/iframes.m3u8")  # after audio, video
    assert urlparse(iframe.uri).path == f"/media/playback/{job_id}/{number}/index.m3u8" and "token=" in iframe.uri
    assert iframe.iframe_stream_info.resolution == (640, 360)
    served = alice.http.get(_path(iframe.uri))
    assert served.status_code == 200
    playlist = m3u8.loads(served.body.decode())
    stored = m3u8.loads(files["360p/iframes.m3u8"].decode())
    assert playlist.is_i_frames_only and len(playlist.segments) == len(stored.segments) == 2
    if segment_type == "fmp4":
        init_url = playlist.segment_map[0].uri
        assert "X-Amz-Signature" in init_url
        assert requests.get(init_url, timeout=30).content == files[f"360p/{stored.segment_map[0].uri}"]
    for entry, original in zip(playlist.segments, stored.segments, strict=True):
        assert entry.byterange == original.byterange and "X-Amz-Signature" in entry.uri
        length, offset = (int(v) for v in str(entry.byterange).split("@"))
        ranged = requests.get(entry.uri, headers={"Range": f"bytes={offset}-{offset + length - 1}"}, timeout=30)
        assert ranged.status_code == 206
        assert ranged.content == files[f"360p/{original.uri}"][offset : offset + length]
