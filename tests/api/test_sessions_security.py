"""Sessions and logins under attack (issue 14): refresh races, parallel password guessing,
lock-out by strangers, sign-up probing, login timing, tokens outliving what minted them, and
cross-site requests riding the cookie. Each test replays the attack against the real app
(PostgreSQL; over real HTTP where requests must run in parallel or come from other addresses)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

import argon2
import jwt
import psycopg
import pytest
from argon2 import PasswordHasher

from runtime.api.app import api
from runtime.api.chalicelib import accounts, tokens
from runtime.api.chalicelib import deps as api_deps
from runtime.api.chalicelib.deps import Deps
from tests.api.conftest import SAME_ORIGIN, Caller, post_json, sign_up, upload_file
from tests.api.test_playback import _finished_hls_job, _ladder_files, _path

pytestmark = pytest.mark.integration

OWNER_ADDRESS = "127.0.0.1"  # where the fixtures signed up and logged in from
STRANGER_ADDRESS = "127.0.0.66"
EVIL = {"Origin": "https://evil.example"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def code(self) -> str | None:
        return (self.body or {}).get("error", {}).get("code") if isinstance(self.body, dict) else None


def _connect(base: str, source: str) -> http.client.HTTPConnection:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60, source_address=(source, 0))
    conn.connect()
    return conn


def _send(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    source: str = OWNER_ADDRESS,
    conn: http.client.HTTPConnection | None = None,
) -> Answer:
    """One HTTP request to the served app from the loopback address ``source``."""
    conn = conn or _connect(base, source)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None
        )
    finally:
        conn.close()


def _parallel(count: int, base: str, source: str, call: Any) -> list[Answer]:
    """``count`` calls ``call(conn)``, each on a connection opened beforehand, released together."""
    gate = threading.Barrier(count)

    def run(_: int) -> Answer:
        conn = _connect(base, source)
        gate.wait()
        return call(conn)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _cookie_value(set_cookie: str) -> dict[str, str]:
    return dict(json.loads(unquote(set_cookie.split(";", 1)[0].split("=", 1)[1])))


def _cookie(access: str, refresh: str) -> dict[str, str]:
    return {"Cookie": "authorization=" + json.dumps({"AccessToken": access, "RefreshToken": refresh})}


def _expired_access(caller: Caller, deps: Deps) -> str:
    claims = {"sub": caller.user["id"], "sid": caller.tokens["session_id"]}
    return tokens._encode(claims, deps.jwt_secret, tokens.ACCESS_AUDIENCE, -10)


@pytest.fixture()
def installed(deps: Deps) -> Iterator[Any]:
    """Install a variant of the test's Deps for the duration of a test."""

    def install(**changes: Any) -> Deps:
        variant = dataclasses.replace(deps, **changes)
        api_deps.install(variant)
        return variant

    yield install
    api_deps.install(deps)


# --- 1. refresh races ---------------------------------------------------------------------------


def test_given_an_expired_access_cookie_when_two_requests_race_then_both_succeed_and_the_session_lives(
    alice: Caller, deps: Deps, api_server: str
) -> None:
    cookie = _cookie(_expired_access(alice, deps), alice.tokens["refresh_token"])

    answers = _parallel(
        2, api_server, OWNER_ADDRESS, lambda conn: _send(api_server, "GET", "/sessions", headers=cookie, conn=conn)
    )

    assert [a.status for a in answers] == [200, 200], [a.body for a in answers]
    renewed = [_cookie_value(a.headers["set-cookie"]) for a in answers]
    # Both answers carry the same, current refresh token: whichever cookie the browser keeps works.
    assert renewed[0]["RefreshToken"] == renewed[1]["RefreshToken"] != alice.tokens["refresh_token"]
    for value in renewed:
        assert (
            _send(api_server, "GET", "/sessions", headers=_cookie(value["AccessToken"], value["RefreshToken"])).status
            == 200
        )
    later = post_json(alice.http, "/sessions/refresh", {"refresh_token": renewed[0]["RefreshToken"]})
    assert later.status_code == 200, later.body


def test_given_a_rotated_refresh_token_when_replayed_then_only_the_last_one_within_grace_is_honoured(
    alice: Caller, database_url: str
) -> None:
    first = alice.tokens["refresh_token"]
    second = post_json(alice.http, "/sessions/refresh", {"refresh_token": first}).json_body["refresh_token"]
    third = post_json(alice.http, "/sessions/refresh", {"refresh_token": second}).json_body["refresh_token"]

    # The token rotated away last, within the grace window: answered with the current pair.
    again = post_json(alice.http, "/sessions/refresh", {"refresh_token": second})
    assert again.status_code == 200 and again.json_body["refresh_token"] == third
    # Two rotations back is no race but a replay: the session is revoked.
    replay = post_json(alice.http, "/sessions/refresh", {"refresh_token": first})
    assert replay.status_code == 401 and replay.json_body["error"]["code"] == "REFRESH_TOKEN_REUSED"
    assert post_json(alice.http, "/sessions/refresh", {"refresh_token": third}).status_code == 401


def test_given_the_grace_window_set_to_zero_when_the_previous_token_is_replayed_then_it_is_reuse(
    alice: Caller, deps: Deps, installed: Any
) -> None:
    installed(settings=dataclasses.replace(deps.settings, refresh_grace_seconds=0))
    first = alice.tokens["refresh_token"]
    assert post_json(alice.http, "/sessions/refresh", {"refresh_token": first}).status_code == 200

    replay = post_json(alice.http, "/sessions/refresh", {"refresh_token": first})

    assert replay.status_code == 401 and replay.json_body["error"]["code"] == "REFRESH_TOKEN_REUSED"


# --- 3. login throttle ----------------------------------------------------------------------------


def _login(base: str, caller: Caller, password: str, source: str, conn: Any = None) -> Answer:
    return _send(base, "POST", "/sessions", {"email": caller.email, "password": password}, source=source, conn=conn)


def test_given_24_parallel_wrong_guesses_when_logging_in_then_those_beyond_the_limit_are_429(
    alice: Caller, api_server: str
) -> None:
    answers = _parallel(
        24, api_server, STRANGER_ADDRESS, lambda conn: _login(api_server, alice, "guess-guess", STRANGER_ADDRESS, conn)
    )

    statuses = [a.status for a in answers]
    assert set(statuses) == {401, 429}, statuses
    assert statuses.count(401) <= accounts.FREE_FAILURES_PER_EMAIL
    assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status == 429)
    # The stranger's guesses do not lock the owner out of the address she logs in from...
    assert _login(api_server, alice, alice.password, OWNER_ADDRESS).status == 201
    # ...while from an address the account never used, the right password waits like any guess.
    elsewhere = _login(api_server, alice, alice.password, "127.0.0.77")
    assert elsewhere.status == 429 and elsewhere.code == "LOGIN_DELAYED"


def test_given_a_stranger_guessing_slowly_when_each_wait_is_kept_then_the_delay_grows_until_a_hard_stop(
    alice: Caller, api_server: str, database_url: str
) -> None:
    failures, waits = 0, []
    while True:
        answer = _login(api_server, alice, "guess-guess", STRANGER_ADDRESS)
        if answer.status == 401:
            failures += 1
            continue
        assert answer.status == 429, answer.body
        if answer.code == "TOO_MANY_ATTEMPTS":
            break
        assert answer.code == "LOGIN_DELAYED"
        waits.append(int(answer.headers["retry-after"]))
        with psycopg.connect(database_url, autocommit=True) as conn:  # the stranger waits as told
            conn.execute("UPDATE login_failures SET created_at = created_at - make_interval(secs => %s)", (waits[-1],))

    assert failures == accounts.MAX_FAILURES_PER_EMAIL_IP
    assert len(waits) >= 2 and waits == sorted(waits) and waits[0] < waits[-1]
    assert _login(api_server, alice, alice.password, OWNER_ADDRESS).status == 201


def test_given_many_sign_ups_from_one_address_when_over_the_limit_then_429_there_and_201_elsewhere(
    deps: Deps, api_server: str
) -> None:
    def signup(n: int, source: str) -> Answer:
        body = {
            "name": "n",
            "username": f"farm_{source[-2:]}_{n:03}",
            "email": f"f{n}@{source}.example",
            "password": "secret1",
        }
        return _send(api_server, "POST", "/users", body, source=source)

    statuses = [signup(n, "127.0.0.88").status for n in range(accounts.MAX_SIGNUPS_PER_IP)]
    assert statuses == [201] * accounts.MAX_SIGNUPS_PER_IP
    refused = signup(999, "127.0.0.88")
    assert refused.status == 429 and refused.code == "TOO_MANY_SIGNUPS" and int(refused.headers["retry-after"]) > 0
    assert signup(998, "127.0.0.89").status == 201


def test_given_an_email_that_has_an_account_when_signing_up_then_the_answer_is_that_of_a_new_email(
    alice: Caller, database_url: str
) -> None:
    taken = post_json(
        alice.http,
        "/users",
        {"name": "x", "username": "probe_one", "email": alice.email.upper(), "password": "secret1"},
    )
    fresh = post_json(
        alice.http,
        "/users",
        {"name": "x", "username": "probe_two", "email": "new-person@example.com", "password": "secret1"},
    )

    assert taken.status_code == fresh.status_code == 201
    assert set(taken.json_body) == set(fresh.json_body)
    assert taken.json_body["id"] != alice.user["id"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id FROM users WHERE lower(email) = lower(%s)", (alice.email,)).fetchall()
    assert [str(r[0]) for r in rows] == [alice.user["id"]]  # nothing stored, the owner untouched
    assert post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password}).status_code == 201


# --- 8. equal login work --------------------------------------------------------------------------


class RecordingHasher(PasswordHasher):
    """Records the argon2 parameters of every hash verified."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified: list[argon2.Parameters] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(argon2.extract_parameters(hash if isinstance(hash, str) else hash.decode()))
        return super().verify(hash, password)


def test_given_known_unknown_and_old_parameter_accounts_when_logging_in_then_each_verifies_at_current_cost(
    client: Any, deps: Deps, installed: Any, database_url: str
) -> None:
    hasher = RecordingHasher(time_cost=2, memory_cost=2048, parallelism=1)
    installed(hasher=hasher)
    current = argon2.extract_parameters(hasher.hash("x"))
    current_user, old_user = sign_up(client, "cur"), sign_up(client, "old")
    old_hash = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1).hash(old_user.password)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (old_hash, old_user.user["id"]))
    cases = {
        "unknown email": ("nobody-here@example.com", "wrong-password"),
        "known, wrong password": (current_user.email, "wrong-password"),
        "old parameters, wrong password": (old_user.email, "wrong-password"),
    }
    for case, (email, password) in cases.items():
        hasher.verified.clear()

        answer = post_json(client, "/sessions", {"email": email, "password": password})

        assert answer.status_code == 401, case
        assert current in hasher.verified, f"{case}: verified only at {hasher.verified}"
    # The right password on the old hash rehashes it at the current parameters.
    assert post_json(client, "/sessions", {"email": old_user.email, "password": old_user.password}).status_code == 201
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE id = %s", (old_user.user["id"],)).fetchone()[0]
    assert argon2.extract_parameters(stored) == current


# --- 6. tokens bound to what minted them -----------------------------------------------------------


def _playback(caller: Caller, job_id: str, credential: dict[str, str]) -> str:
    download = caller.http.get(f"/media/download/{job_id}", headers=credential)
    assert download.status_code == 200, download.body
    return str(download.json_body["playback_url"])


def test_given_playback_tokens_when_their_key_is_revoked_or_session_logged_out_then_they_stop_working(
    alice: Caller, deps: Deps, settings: Any, db: Any
) -> None:
    job_id = _finished_hls_job(alice, settings, db, _ladder_files())
    by_key = _playback(alice, job_id, alice.key)
    by_session = _playback(alice, job_id, alice.bearer)
    token = parse_qs(urlparse(by_key).query)["token"][0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == deps.settings.playback_token_ttl_seconds < 4 * 3600
    assert alice.http.get(_path(by_key)).status_code == 200
    assert alice.http.get(_path(by_session)).status_code == 200

    assert alice.http.delete("/apikeys", headers={**alice.bearer, **alice.key}).status_code == 200
    revoked = alice.http.get(_path(by_key))
    assert revoked.status_code == 401 and revoked.json_body["error"]["code"] == "PLAYBACK_TOKEN_REVOKED"
    assert alice.http.get(_path(by_session)).status_code == 200

    assert alice.http.delete("/sessions", headers=alice.bearer).status_code == 200
    logged_out = alice.http.get(_path(by_session))
    assert logged_out.status_code == 401 and logged_out.json_body["error"]["code"] == "PLAYBACK_TOKEN_REVOKED"


def test_given_a_session_whose_login_is_old_when_creating_an_api_key_then_403_until_a_fresh_login(
    alice: Caller, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:  # a stolen token of a day-old session
        conn.execute(
            "UPDATE sessions SET created_at = now() - interval '1 day' WHERE user_id = %s", (alice.user["id"],)
        )

    refused = alice.http.post("/apikeys", headers=alice.bearer)

    assert refused.status_code == 403 and refused.json_body["error"]["code"] == "REAUTH_REQUIRED"
    again = post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password}).json_body
    fresh = alice.http.post("/apikeys", headers={"Authorization": f"Bearer {again['access_token']}"})
    assert fresh.status_code == 200 and fresh.json_body["key"].startswith("tcx_")


def test_given_logout_everywhere_with_revoke_api_keys_when_done_then_the_keys_die_too(client: Any) -> None:
    keeps, loses = sign_up(client, "keeps"), sign_up(client, "loses")

    kept = client.delete("/sessions/all", headers=keeps.bearer)
    lost = client.delete("/sessions/all?revoke_api_keys=true", headers=loses.bearer)

    assert kept.status_code == lost.status_code == 200
    assert (kept.json_body["revoked_api_keys"], lost.json_body["revoked_api_keys"]) == (0, 1)
    assert client.get("/media/jobs", headers=keeps.key).status_code == 200
    gone = client.get("/media/jobs", headers=loses.key)
    assert gone.status_code == 401 and gone.json_body["error"]["code"] == "INVALID_API_KEY"
    [param] = api.openapi()["paths"]["/sessions/all"]["delete"]["parameters"]
    assert param["name"] == "revoke_api_keys" and param["in"] == "query" and param["schema"]["type"] == "boolean"


# --- 7. cross-site requests ------------------------------------------------------------------------


def _queued_job(caller: Caller) -> str:
    upload = upload_file(caller, b"\xff\xd8\xff\xe0 not really a jpeg")
    created = caller.call(
        "POST",
        "/media/process",
        {"job_type": "IMAGE", "upload_id": upload["upload_id"], "operations": {"ROTATE": "90"}},
    )
    assert created.status_code == 201, created.body
    return str(created.json_body["job_id"])


def test_given_a_cross_site_form_post_with_the_cookie_when_cancelling_or_aborting_then_403_and_nothing_changes(
    alice: Caller, database_url: str
) -> None:
    job_id = _queued_job(alice)
    upload_id = upload_file(alice, b"\xff\xd8\xff\xe0 another")["upload_id"]
    cookie = _cookie(alice.tokens["access_token"], alice.tokens["refresh_token"])

    for path in (f"/media/jobs/{job_id}/cancel", f"/media/upload/{upload_id}/abort"):
        forged = alice.http.post(path, headers={**cookie, **FORM, **EVIL}, body="confirm=1")
        assert forged.status_code == 403 and forged.json_body["error"]["code"] == "CSRF_ORIGIN_REFUSED", path
        by_referer = alice.http.post(
            path, headers={**cookie, **FORM, "Referer": "https://evil.example/page"}, body="confirm=1"
        )
        assert by_referer.status_code == 403, path
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()[0] == "QUEUED"
        assert conn.execute("SELECT status FROM uploads WHERE id = %s", (upload_id,)).fetchone()[0] == "PENDING"
    # The API's own pages may; bearer and API-key clients are not asked for an origin at all.
    same_site = alice.http.post(f"/media/jobs/{job_id}/cancel", headers={**cookie, **FORM, **SAME_ORIGIN})
    assert same_site.status_code == 200 and same_site.json_body["status"] == "CANCELLED"
    by_bearer = alice.http.post(f"/media/upload/{upload_id}/abort", headers={**alice.bearer, **EVIL})
    assert by_bearer.status_code == 200


def test_given_allowed_origins_configured_when_a_cookie_request_comes_from_one_then_it_passes(
    alice: Caller, deps: Deps, installed: Any
) -> None:
    installed(settings=dataclasses.replace(deps.settings, allowed_origins=("https://app.example",)))
    cookie = _cookie(alice.tokens["access_token"], alice.tokens["refresh_token"])

    allowed = alice.http.post("/apikeys", headers={**cookie, "Origin": "https://app.example"})
    refused = alice.http.post("/apikeys", headers={**cookie, **EVIL})
    hidden = alice.http.post("/apikeys", headers={**cookie, "Origin": "null"})

    assert allowed.status_code == 200
    assert refused.status_code == hidden.status_code == 403
    assert "https://app.example" in refused.json_body["error"]["details"]["allowed_origins"]


def test_given_an_expired_cookie_on_a_cross_site_post_when_refused_then_the_refresh_token_is_not_rotated(
    alice: Caller, deps: Deps, database_url: str
) -> None:
    cookie = _cookie(_expired_access(alice, deps), alice.tokens["refresh_token"])

    refused = alice.http.post("/apikeys", headers={**cookie, **EVIL})
    refresh = alice.http.post("/sessions/refresh", headers={**cookie, **EVIL})

    assert refused.status_code == refresh.status_code == 403
    with psycopg.connect(database_url) as conn:
        assert (
            conn.execute(
                "SELECT refresh_counter FROM sessions WHERE id = %s", (alice.tokens["session_id"],)
            ).fetchone()[0]
            == 0
        )
