"""End to end: ``transcodex local up`` as a real process, driven over real HTTP.

One platform per module (PostgreSQL, moto, the Chalice app, the dispatcher and real workers
with real ffmpeg/libvips); the restart test starts its own so it can stop it and look for
leftovers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import psutil
import psycopg
import pytest
import requests

from runtime.local.client import ApiError, Client, Credentials, job_id_of
from runtime.local.launcher import local_pid
from runtime.local.processes import command_line
from tests.e2e.platform_proc import RunningPlatform, owned_processes, start_platform
from tests.media import ffprobe, make_image, make_multi_audio, make_video

API_MISSING = importlib.util.find_spec("runtime.api.app") is None
WORKER_MISSING = importlib.util.find_spec("runtime.worker.__main__") is None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("e2e"),
    pytest.mark.skipif(API_MISSING, reason="runtime/api/app.py (the Chalice app) is not in the tree yet"),
    pytest.mark.skipif(WORKER_MISSING, reason="runtime/worker/__main__.py is not in the tree yet"),
]

IMAGE_OPS = {"ROTATE": "180", "WATERMARK": "e2e", "FORCE-RESIZE": "100x400"}
LADDER_OPS = [{"op": "transcode", "renditions": ["360p", "240p"], "segment_seconds": 2}, {"op": "poster"}]


@pytest.fixture(scope="module")
def media(workdir: Path) -> dict[str, Path]:
    folder = workdir / "media"
    return {
        "image": make_image(folder / "photo.jpg", 640, 480),
        "clip": make_video(folder / "clip.mp4", seconds=2, width=640, height=360),
        "long": make_video(folder / "long.mp4", seconds=60, width=640, height=360),
    }


@pytest.fixture(scope="module")
def platform(workdir: Path) -> Any:
    running = start_platform(workdir / "platform")
    try:
        yield running
    finally:
        sessions, ports = _sessions(running), list(running.state["ports"].values())
        running.stop()
        assert owned_processes(running.data_dir, sessions, ports) == []


def new_user(api_url: str) -> Client:
    client = Client(api_url, timeout=60)
    name = f"e2e{uuid.uuid4().hex[:10]}"
    email, password = f"{name}@example.com", uuid.uuid4().hex
    client.signup("E2E User", name, email, password)
    client.login(email, password)
    return client


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> Client:
    return new_user(platform.api_url)


def run_to_end(client: Client, path: Path, operations: Any, out: Path) -> tuple[dict[str, Any], list[Path]]:
    job = client.submit_file(path, operations)
    final = client.wait(job_id_of(job), timeout_s=180, interval_s=0.2)
    assert final["status"] == "SUCCEEDED", final
    return final, client.download(job_id_of(job), out)


def test_given_platform_up_when_image_job_runs_then_outputs_download_with_the_seed_operations_applied(
    client: Client, media: dict[str, Path], tmp_path: Path
) -> None:
    import pyvips

    final, files = run_to_end(client, media["image"], IMAGE_OPS, tmp_path)

    assert final["progress"] == 100
    images = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    assert len(images) == 1, files
    image = pyvips.Image.new_from_file(str(images[0]))
    assert (image.width, image.height) == (100, 400)


def test_given_platform_up_when_video_ladder_runs_then_hls_plays_from_disk_and_through_the_api_url(
    client: Client, media: dict[str, Path], tmp_path: Path
) -> None:
    final, files = run_to_end(client, media["clip"], LADDER_OPS, tmp_path)

    master = next(p for p in files if p.name.endswith(".m3u8") and "#EXT-X-STREAM-INF" in p.read_text())
    probe = ffprobe(master)
    heights = {s["height"] for s in probe["streams"] if s["codec_type"] == "video"}
    assert heights == {360, 240}
    assert any(p.suffix == ".jpg" for p in files), "the poster is missing"

    playback = client.download_info(job_id_of(final))["playback_url"]
    http = requests.Session()
    master_text = http.get(playback, timeout=30).text
    assert master_text.startswith("#EXTM3U")
    variant = urljoin(playback, next(line for line in master_text.splitlines() if line and not line.startswith("#")))
    media_text = http.get(variant, timeout=30).text
    segment = urljoin(variant, next(line for line in media_text.splitlines() if line and not line.startswith("#")))
    response = http.get(segment, timeout=30, headers={"Origin": "http://player.example"})
    assert response.status_code == 200 and len(response.content) > 1000
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", "http://player.example")  # browser players


PLAYER_PAGE = """<!doctype html><html><body><video id="v" muted playsinline></video>
<script src="hls.min.js"></script><script>
const v = document.getElementById("v");
window.result = {levels: [], errors: [], t: 0};
const hls = new Hls();
hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => { window.result.levels = d.levels.map(l => l.height); v.play(); });
hls.on(Hls.Events.ERROR, (_, d) => window.result.errors.push({details: d.details, fatal: d.fatal}));
hls.loadSource(PLAYBACK_URL); hls.attachMedia(v);
setInterval(() => Object.assign(window.result, {t: v.currentTime, w: v.videoWidth, h: v.videoHeight}), 100);
</script></body></html>"""
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
BROWSER_MISSING = shutil.which("chromium") is None or not (NODE_MODULES / "playwright-core").is_dir()


def play_in_browser(page: str, site: Path, seconds: int = 40) -> Any:
    """Serve ``page`` with hls.js from its own origin (not the API's) and run it in headless
    Chromium until it sets ``window.result.t >= 1.5`` (or ``done``, when the page has that
    field); the finished node process."""
    import functools
    import http.server
    import subprocess

    site.mkdir()
    shutil.copy(NODE_MODULES / "hls.js" / "dist" / "hls.min.js", site / "hls.min.js")
    (site / "index.html").write_text(page)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return subprocess.run(
            [
                "node",
                str(Path(__file__).with_name("browser_play.js")),
                f"http://127.0.0.1:{server.server_address[1]}/index.html",
                str(seconds),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 80,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(BROWSER_MISSING, reason="needs Debian's chromium and `npm ci` (make setup installs both)")
def test_given_a_finished_ladder_when_a_browser_player_loads_the_playback_url_then_it_plays(
    client: Client, media: dict[str, Path], tmp_path: Path
) -> None:
    """The promise of DESIGN.md: HLS plays in a standard player through the URLs the API hands
    out. hls.js in headless Chromium, the page served from another origin than the API."""
    final, _ = run_to_end(client, media["clip"], LADDER_OPS, tmp_path / "out")
    playback = client.download_info(job_id_of(final))["playback_url"]
    run = play_in_browser(PLAYER_PAGE.replace("PLAYBACK_URL", json.dumps(playback)), tmp_path / "site")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert sorted(result["levels"]) == [240, 360], result
    assert not [e for e in result["errors"] if e["fatal"]], result
    assert result["t"] >= 1.5, result  # the clip is 2 s: it actually played
    assert result["h"] in (240, 360), result


TRICK_PLAY_PAGE = """<!doctype html><html><body>
<video id="v" muted playsinline></video><video id="trick" muted playsinline></video>
<script src="hls.min.js"></script><script>
const v = document.getElementById("v"), trick = document.getElementById("trick");
window.result = {levels: [], iframes: [], errors: [], trickErrors: [], shown: [], t: 0};
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => window.result.errors.push({details: d.details, fatal: d.fatal}));
hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
  window.result.levels = d.levels.map(l => l.height);
  window.result.iframes = hls.iframeVariants.map(l => l.height);
  v.play();
  setTimeout(scrub, 0);  // hls.js's I-frame controller reads the manifest after these listeners
});
function scrub() {
  const player = hls.createIFramePlayer();
  if (!player) return;
  player.on(Hls.Events.ERROR, (_, e) => window.result.trickErrors.push({details: e.details, fatal: e.fatal}));
  player.on(Hls.Events.FRAG_BUFFERED, (_, e) => window.result.shown.push(e.frag.start));
  player.on(Hls.Events.MEDIA_ATTACHED, () => {
    player.loadMediaAt(0.5);
    setTimeout(() => player.loadMediaAt(2.5), 1500);
  });
  player.attachMedia(trick);
}
hls.loadSource(PLAYBACK_URL); hls.attachMedia(v);
// t is reported once the I-frame player has shown both scrub positions (browser_play.js waits on it).
setInterval(() => Object.assign(window.result, {
  t: window.result.shown.length >= 2 ? v.currentTime : 0,
  trickSize: [trick.videoWidth, trick.videoHeight], trickTime: trick.currentTime}), 100);
</script></body></html>"""


@pytest.mark.skipif(BROWSER_MISSING, reason="needs Debian's chromium and `npm ci` (make setup installs both)")
@pytest.mark.parametrize("segment_type", ["ts", "fmp4"])
def test_given_a_finished_ladder_when_hls_js_scrubs_with_its_iframe_playlists_then_it_shows_keyframes(
    client: Client, tmp_path: Path, segment_type: str
) -> None:
    """Trick play through the API's URLs: hls.js lists the I-frame variants of the master, and
    its I-frame player (createIFramePlayer) fetches byte ranges of the presigned segments and
    renders a keyframe at each of two scrub positions, while the main player plays."""
    clip = make_video(tmp_path / "clip.mp4", seconds=4, width=640, height=360)
    ops = [{"op": "transcode", "renditions": ["360p", "240p"], "segment_seconds": 2, "segment_type": segment_type}]
    final, _ = run_to_end(client, clip, ops, tmp_path / "out")
    playback = client.download_info(job_id_of(final))["playback_url"]
    run = play_in_browser(TRICK_PLAY_PAGE.replace("PLAYBACK_URL", json.dumps(playback)), tmp_path / "site")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert sorted(result["iframes"]) == [240, 360], result
    assert not [e for e in result["errors"] + result["trickErrors"] if e["fatal"]], result
    assert sorted(result["shown"])[:1] == [0] and max(result["shown"]) == pytest.approx(2.0, abs=0.1), result
    assert result["trickSize"][1] in (240, 360), result  # a picture was decoded, not just fetched
    assert result["t"] >= 1.5, result


#: Plays, and once playing switches to the audio track it did not start with; ``done`` when it
#: has played on for a second after the switch (or the clip ended).
SWITCHING_PAGE = """<!doctype html><html><body><video id="v" muted playsinline></video>
<script src="hls.min.js"></script><script>
const v = document.getElementById("v");
window.result = {tracks: [], start: null, switched: null, audioFrags: {}, errors: [], t: 0, done: false};
const r = window.result;
const hls = new Hls();
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_, d) => {
  r.tracks = d.audioTracks.map(a => ({name: a.name, lang: a.lang, default: a.default}));
});
hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, d) => {  // the first one is the player's own pick
  if (r.start === null) r.start = d.id; else if (d.id !== r.start) r.switched = {id: d.id, at: v.currentTime};
});
hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
  if (d.frag.type === "audio") r.audioFrags[d.frag.level] = (r.audioFrags[d.frag.level] || 0) + 1;
});
hls.on(Hls.Events.ERROR, (_, d) => r.errors.push({details: d.details, fatal: d.fatal}));
hls.loadSource(PLAYBACK_URL); hls.attachMedia(v);
setInterval(() => {
  r.t = v.currentTime;
  if (r.start !== null && r.switched === null && r.tracks.length > 1 && r.t > 0.3) hls.audioTrack = 1 - r.start;
  if (r.switched && (r.t >= r.switched.at + 1 || v.ended)) r.done = true;
}, 100);
</script></body></html>"""


@pytest.mark.skipif(BROWSER_MISSING, reason="needs Debian's chromium and `npm ci` (make setup installs both)")
def test_given_a_two_language_upload_when_played_in_a_browser_then_the_audio_track_switches(
    client: Client, tmp_path: Path
) -> None:
    """Issue 13: an MKV with two audio tracks used to fail; now each track is an audio
    rendition, served through playback, and hls.js lists both and switches between them."""
    source = make_multi_audio(tmp_path / "two_languages.mkv", seconds=6)
    final, _ = run_to_end(client, source, [{"op": "transcode", "segment_seconds": 2}], tmp_path / "out")
    playback = client.download_info(job_id_of(final))["playback_url"]
    run = play_in_browser(SWITCHING_PAGE.replace("PLAYBACK_URL", json.dumps(playback)), tmp_path / "site")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["done"], result
    assert not [e for e in result["errors"] if e["fatal"]], result
    assert [(t["lang"], t["name"], t["default"]) for t in result["tracks"]] == [
        ("en", "English", False),
        ("fr", "Commentaire", True),
    ], result
    assert result["start"] == 1 and result["switched"]["id"] == 0, result  # from the default to the other
    assert set(result["audioFrags"]) == {"0", "1"}, result  # both tracks' segments loaded and played


def test_given_one_idempotency_key_when_a_submission_is_sent_twice_at_once_then_one_job_exists(
    platform: RunningPlatform, media: dict[str, Path]
) -> None:
    owner = new_user(platform.api_url)
    upload = owner.create_upload(media["image"], "IMAGE", "image/jpeg")
    owner.put_file(upload, media["image"])
    key = str(uuid.uuid4())
    results: list[dict[str, Any]] = []

    def submit() -> None:
        same_user = Client(platform.api_url, owner.creds)
        results.append(same_user.process(upload["upload_id"], "IMAGE", [{"op": "rotate", "angle": 90}], key))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 2
    assert job_id_of(results[0]) == job_id_of(results[1])
    listed = owner.jobs()["items"]
    assert [job_id_of(j) for j in listed] == [job_id_of(results[0])]


def test_given_a_rejected_access_token_when_calling_then_the_client_refreshes_once_and_logout_revokes_it(
    platform: RunningPlatform,
) -> None:
    user = new_user(platform.api_url)
    saved: list[Credentials] = []
    stale = Credentials(access_token="not-a-token", refresh_token=user.creds.refresh_token)
    refreshing = Client(platform.api_url, stale, on_credentials=lambda c: saved.append(Credentials(**vars(c))))

    assert refreshing.jobs()["items"] == []
    fresh = saved[-1].access_token
    assert fresh not in (None, "not-a-token")
    assert saved[-1].refresh_token != user.creds.refresh_token  # rotated

    refreshing.logout()
    with pytest.raises(ApiError) as refused:
        Client(platform.api_url, Credentials(access_token=fresh)).jobs()
    assert refused.value.status == 401


def test_given_a_saved_api_key_when_the_cli_uploads_then_it_works_until_the_key_is_revoked(
    platform: RunningPlatform, media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from runtime.local.cli import main

    monkeypatch.setenv("TRANSCODEX_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("TRANSCODEX_API_URL", platform.api_url)
    name = f"key{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    email = f"{name}@example.com"
    assert main(["signup", "--name", "K", "--username", name, "--email", email, "--password", password]) == 0
    assert main(["apikey", "create", "--name", "ci", "--save"]) == 0
    capsys.readouterr()
    assert main(["--json", "apikey", "list"]) == 0
    key_id = json.loads(capsys.readouterr().out)[0]["id"]
    assert main(["logout"]) == 0  # from now on only the saved key authenticates

    assert main(["--no-progress", "upload", str(media["image"]), "--op", "thumbnail=32x32", "--wait"]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out

    assert main(["login", "--email", email, "--password", password]) == 0
    assert main(["apikey", "revoke", key_id]) == 0
    assert main(["logout"]) == 0
    capsys.readouterr()
    assert main(["jobs"]) == 1
    assert "INVALID_API_KEY" in capsys.readouterr().err


def test_given_a_file_over_the_multipart_threshold_when_uploaded_then_parts_complete_and_a_bad_file_fails_clearly(
    client: Client, workdir: Path
) -> None:
    big = workdir / "big.mp4"
    with big.open("wb") as out:
        out.truncate(101 * 1024 * 1024)  # zeros: not a video, which the worker must say

    job = client.submit_file(big, [{"op": "poster"}])
    final = client.wait(job_id_of(job), timeout_s=120, interval_s=0.2)

    assert final["status"] == "FAILED"
    assert final["error"]["code"] in ("INPUT_UNREADABLE", "UNSUPPORTED_FORMAT")


def _worker_pid(state: dict[str, Any], job_id: str) -> int | None:
    with psycopg.connect(state["database_url"]) as conn:
        row = conn.execute("SELECT task_arn FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return local_pid(row[0]) if row else None


def test_given_a_running_video_job_when_its_worker_is_killed_then_the_job_ends_failed_not_stuck(
    platform: RunningPlatform, client: Client, media: dict[str, Path]
) -> None:
    job_id = job_id_of(client.submit_file(media["long"], LADDER_OPS))
    deadline = time.monotonic() + 60
    while client.status(job_id)["status"] != "RUNNING":
        assert time.monotonic() < deadline, client.status(job_id)
        time.sleep(0.05)
    pid = _worker_pid(platform.state, job_id)
    assert pid is not None
    assert "runtime.local.pool_worker" in " ".join(command_line(pid) or [])  # the default: a warm worker

    os.killpg(pid, signal.SIGKILL)  # the whole worker (and its ffmpeg), as an OOM kill would
    final = client.wait(job_id, timeout_s=60, interval_s=0.2)

    assert final["status"] == "FAILED"
    assert final["error"]["code"] == "TASK_STOPPED"
    assert "signal 9" in final["error"]["message"]


def test_given_an_unknown_job_when_the_cli_asks_for_it_then_the_api_error_prints_without_a_traceback(
    platform: RunningPlatform, media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from runtime.local.cli import main

    config = tmp_path / "config.json"
    monkeypatch.setenv("TRANSCODEX_CONFIG", str(config))
    monkeypatch.setenv("TRANSCODEX_API_URL", platform.api_url)
    name = f"cli{uuid.uuid4().hex[:8]}"
    signup = ["signup", "--name", "Cli", "--username", name, "--email", f"{name}@example.com"]
    assert main([*signup, "--password", f"pw-{name}"]) == 0
    assert config.stat().st_mode & 0o777 == 0o600

    code = main(
        [
            "--no-progress",
            "upload",
            str(media["image"]),
            "--op",
            "resize=64x64",
            "--op",
            "convert-format=png",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    assert [p.suffix for p in (tmp_path / "out").rglob("*") if p.is_file()] == [".png"]

    capsys.readouterr()
    assert main(["status", str(uuid.uuid4())]) == 1
    err = capsys.readouterr().err
    assert "JOB_NOT_FOUND" in err and "Traceback" not in err
    unknown = requests.get(f"{platform.api_url}/no/such/route", timeout=10)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "NOT_FOUND")


def _sessions(running: RunningPlatform) -> set[int]:
    """Session ids of everything the platform started: itself, its children, every worker."""
    state = running.state
    with psycopg.connect(state["database_url"]) as conn:
        arns = [r[0] for r in conn.execute("SELECT task_arn FROM jobs WHERE task_arn LIKE 'local:%'").fetchall()]
    pool = [  # warm workers, idle ones included: their command line names the platform's log
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "runtime.local.pool_worker" in " ".join(p.info["cmdline"] or [])
        and str(running.data_dir) in " ".join(p.info["cmdline"] or [])
    ]
    return {
        running.process.pid,
        *(child["pid"] for child in state["children"].values()),
        *(pid for a in arns if (pid := local_pid(a)) is not None),
        *pool,
    }


def test_given_a_finished_job_when_the_platform_restarts_then_state_survives_and_nothing_is_left_running(
    workdir: Path, tmp_path: Path, media: dict[str, Path]
) -> None:
    data_dir = workdir / "restart"
    first = start_platform(data_dir)
    try:
        user = new_user(first.api_url)
        final, files = run_to_end(user, media["image"], IMAGE_OPS, tmp_path / "before")
        sessions = _sessions(first)
        ports = list(first.state["ports"].values())
    finally:
        assert first.stop() == 0
    assert owned_processes(data_dir, sessions, ports) == []

    second = start_platform(data_dir)
    try:
        again = Client(second.api_url, user.creds)  # the same tokens: the JWT secret was kept
        assert again.status(job_id_of(final))["status"] == "SUCCEEDED"
        after = again.download(job_id_of(final), tmp_path / "after")
        assert [p.read_bytes() for p in after] == [p.read_bytes() for p in files]
        sessions |= _sessions(second)
        ports += list(second.state["ports"].values())
    finally:
        assert second.stop() == 0
    assert owned_processes(data_dir, sessions, ports) == []


def _kill_everything(running: RunningPlatform) -> set[int]:
    """SIGKILL the supervisor and every process group it started (children, workers, PostgreSQL)."""
    sessions = _sessions(running)
    pidfile = running.data_dir / "postgres" / "pgdata" / "postmaster.pid"
    sessions.add(int(pidfile.read_text().split()[0]))
    for sid in sessions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(sid, signal.SIGKILL)
    running.process.wait(30)
    # A killed process with many threads (a warm pool worker) takes a moment to be torn down;
    # let it, so the caller's check finds survivors rather than processes still dying.
    deadline = time.monotonic() + 10
    while owned_processes(running.data_dir, sessions, []) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sessions


def test_given_a_finished_and_a_running_job_when_everything_is_killed_then_outputs_survive_and_nothing_is_stuck(
    workdir: Path, tmp_path: Path, media: dict[str, Path]
) -> None:
    data_dir = workdir / "durability"
    first = start_platform(data_dir)
    try:
        user = new_user(first.api_url)
        done, files = run_to_end(user, media["clip"], LADDER_OPS, tmp_path / "before")
        running_id = job_id_of(user.submit_file(media["long"], LADDER_OPS))
        deadline = time.monotonic() + 60
        while user.status(running_id)["status"] != "RUNNING":
            assert time.monotonic() < deadline, user.status(running_id)
            time.sleep(0.05)
        ports = list(first.state["ports"].values())
    finally:
        sessions = _kill_everything(first)  # no shutdown path runs: SIGKILL, as a crash would
    assert owned_processes(data_dir, sessions, ports) == []

    second = start_platform(data_dir)
    try:
        again = Client(second.api_url, user.creds)
        assert again.status(job_id_of(done))["status"] == "SUCCEEDED"
        after = again.download(job_id_of(done), tmp_path / "after")
        interrupted = again.wait(running_id, timeout_s=240, interval_s=0.5)
        # a status carries no outputs; a job that finished after all lists them for download
        outputs = again.download_info(running_id)["outputs"] if interrupted["status"] == "SUCCEEDED" else []
        sessions |= _sessions(second)
        ports += list(second.state["ports"].values())
    finally:
        assert second.stop() == 0
    before_bytes = {str(p.relative_to(tmp_path / "before")): p.read_bytes() for p in files}
    after_bytes = {str(p.relative_to(tmp_path / "after")): p.read_bytes() for p in after}
    assert len(before_bytes) > 3 and after_bytes == before_bytes
    assert interrupted["status"] in ("SUCCEEDED", "FAILED"), interrupted
    if interrupted["status"] == "FAILED":
        assert interrupted["error"]["code"], interrupted
    else:
        assert outputs, interrupted
    assert owned_processes(data_dir, sessions, ports) == []
