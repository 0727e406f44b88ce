"""Users, sessions, tokens and API keys through the real app (PostgreSQL + Chalice test client)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import unquote

import jwt
import psycopg

from runtime.api.chalicelib import tokens
from tests.api.conftest import SAME_ORIGIN, Caller, post_json, sign_up


def _error(response: Any) -> dict[str, Any]:
    body = response.json_body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# --- users ---------------------------------------------------------------------------------


def test_given_the_seed_body_when_creating_a_user_then_201_with_the_seed_fields_and_no_hash(client: Any) -> None:
    response = post_json(
        client,
        "/users",
        {"name": "Lain Iwakura", "username": "lain_iwakura", "email": "lain@wired.example", "password": "present-day"},
    )
    assert response.status_code == 201
    body = response.json_body
    assert {"id", "name", "username", "email", "password", "created_at", "updated_at"} <= set(body)
    assert body["password"] is None and body["username"] == "lain_iwakura"


def test_given_a_taken_username_when_creating_then_409_naming_the_field(alice: Caller) -> None:
    same_name = post_json(
        alice.http,
        "/users",
        {"name": "x", "username": alice.user["username"].upper(), "email": "new@example.com", "password": "secret1"},
    )
    assert same_name.status_code == 409 and _error(same_name)["code"] == "USERNAME_TAKEN"


def test_given_bad_bodies_when_creating_a_user_then_400_listing_every_problem(client: Any) -> None:
    response = post_json(
        client, "/users", {"name": "n", "username": "short", "email": "not-an-email", "password": 123456, "admin": True}
    )
    error = _error(response)
    assert response.status_code == 400 and error["code"] == "INVALID_BODY"
    fields = {p["field"] for p in error["details"]["problems"]}
    assert {"username", "email", "password", "admin"} <= fields
    missing = post_json(client, "/users", {"name": "n"})
    assert {p["field"] for p in _error(missing)["details"]["problems"]} >= {"username", "email", "password"}


def test_given_malformed_json_or_a_non_object_when_posting_then_400_in_our_shape(client: Any) -> None:
    broken = client.post("/users", headers={"Content-Type": "application/json"}, body='{"name": ')
    assert broken.status_code == 400 and _error(broken)["code"] == "MALFORMED_JSON"
    listed = client.post("/users", headers={"Content-Type": "application/json"}, body="[1, 2]")
    assert listed.status_code == 400 and _error(listed)["code"] == "INVALID_BODY"
    empty = client.post("/users", headers={"Content-Type": "application/json"}, body="")
    assert empty.status_code == 400 and _error(empty)["code"] == "BODY_REQUIRED"
    huge = client.post("/users", headers={"Content-Type": "application/json"}, body='{"name": "' + "x" * 70000 + '"}')
    assert huge.status_code == 413 and _error(huge)["code"] == "PAYLOAD_TOO_LARGE"


def test_given_chalice_level_errors_when_requesting_then_405_and_415_use_our_shape(client: Any) -> None:
    wrong_method = client.put("/users", headers={"Content-Type": "application/json"}, body="{}")
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "METHOD_NOT_ALLOWED"
    assert set(_error(wrong_method)["details"]["allowed_methods"]) == {"POST", "DELETE"}
    wrong_type = client.post("/users", headers={"Content-Type": "text/plain"}, body="hello")
    assert wrong_type.status_code == 415 and _error(wrong_type)["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_given_a_user_when_deleting_it_then_its_tokens_and_keys_stop_working(alice: Caller) -> None:
    deleted = alice.http.delete("/users", headers=alice.bearer)
    assert deleted.status_code == 200
    assert alice.http.get("/sessions", headers=alice.bearer).status_code == 401
    assert alice.http.get("/media/jobs", headers=alice.key).status_code == 401


def test_given_argon2id_when_a_user_signs_up_then_only_the_hash_is_stored(alice: Caller, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE id = %s", (alice.user["id"],)).fetchone()[0]
    assert stored.startswith("$argon2id$") and alice.password not in stored


# --- sessions -------------------------------------------------------------------------------


def test_given_credentials_when_logging_in_then_tokens_and_the_seeds_cookie_are_set(alice: Caller) -> None:
    response = post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password})
    assert response.status_code == 201
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("authorization=")
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    value = json.loads(unquote(cookie.split(";", 1)[0].split("=", 1)[1]))
    assert value["AccessToken"] == response.json_body["access_token"]
    # A browser's refresh token lives in the HttpOnly cookie only, out of scripts' reach.
    assert value["RefreshToken"] and "refresh_token" not in response.json_body
    asked = post_json(
        alice.http, "/sessions", {"email": alice.email, "password": alice.password, "include_refresh_token": True}
    )
    assert asked.status_code == 201 and asked.json_body["refresh_token"]


def test_given_wrong_credentials_when_logging_in_then_401_without_saying_which(alice: Caller) -> None:
    wrong_password = post_json(alice.http, "/sessions", {"email": alice.email, "password": "not-it"})
    unknown_user = post_json(alice.http, "/sessions", {"email": "nobody@example.com", "password": "whatever"})
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert _error(wrong_password) == _error(unknown_user)


def test_given_a_session_when_reading_it_by_bearer_or_cookie_then_the_seed_fields_come_back(alice: Caller) -> None:
    by_bearer = alice.http.get("/sessions", headers=alice.bearer)
    assert by_bearer.status_code == 200
    assert {"id", "valid", "user_agent", "ip", "user_id", "created_at", "updated_at"} <= set(by_bearer.json_body)
    cookie = json.dumps({"AccessToken": alice.tokens["access_token"], "RefreshToken": alice.tokens["refresh_token"]})
    by_cookie = alice.http.get("/sessions", headers={"Cookie": f"authorization={cookie}"})
    assert by_cookie.status_code == 200 and by_cookie.json_body["id"] == alice.tokens["session_id"]
    every = alice.http.get("/sessions/all", headers=alice.bearer)
    assert every.status_code == 200 and [s["id"] for s in every.json_body] == [alice.tokens["session_id"]]


def test_given_logout_when_the_old_access_token_is_used_then_401_at_once(alice: Caller) -> None:
    assert alice.http.delete("/sessions", headers=alice.bearer).status_code == 200
    after = alice.http.get("/sessions", headers=alice.bearer)
    assert after.status_code == 401 and _error(after)["code"] == "SESSION_REVOKED"


def test_given_two_sessions_when_logging_out_everywhere_then_both_are_revoked(alice: Caller) -> None:
    second = post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password}).json_body
    other = {"Authorization": f"Bearer {second['access_token']}"}
    assert alice.http.get("/sessions/all", headers=other).status_code == 200
    response = alice.http.delete("/sessions/all", headers=other)
    assert response.status_code == 200 and response.json_body["revoked"] == 2
    assert alice.http.get("/sessions", headers=alice.bearer).status_code == 401
    assert alice.http.get("/sessions", headers=other).status_code == 401


def test_given_a_refresh_token_when_rotating_then_new_tokens_work_and_reuse_revokes_the_session(
    alice: Caller, database_url: str
) -> None:
    first = post_json(alice.http, "/sessions/refresh", {"refresh_token": alice.tokens["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json_body
    assert rotated["refresh_token"] != alice.tokens["refresh_token"]
    fresh = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert alice.http.get("/sessions", headers=fresh).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:  # the grace window passes
        conn.execute("UPDATE sessions SET rotated_at = now() - interval '1 hour'")
    # The old refresh token replayed (stolen): the whole session dies.
    replay = post_json(alice.http, "/sessions/refresh", {"refresh_token": alice.tokens["refresh_token"]})
    assert replay.status_code == 401 and _error(replay)["code"] == "REFRESH_TOKEN_REUSED"
    assert alice.http.get("/sessions", headers=fresh).status_code == 401
    newest = post_json(alice.http, "/sessions/refresh", {"refresh_token": rotated["refresh_token"]})
    assert newest.status_code == 401 and _error(newest)["code"] == "SESSION_REVOKED"


def test_given_an_access_token_when_used_as_a_refresh_token_then_401(alice: Caller) -> None:
    response = post_json(alice.http, "/sessions/refresh", {"refresh_token": alice.tokens["access_token"]})
    assert response.status_code == 401 and _error(response)["code"] == "INVALID_REFRESH_TOKEN"


def test_given_an_expired_access_token_when_used_then_401_token_expired(alice: Caller, deps: Any) -> None:
    expired = tokens._encode(
        {"sub": alice.user["id"], "sid": alice.tokens["session_id"]}, deps.jwt_secret, tokens.ACCESS_AUDIENCE, -10
    )
    response = alice.http.get("/sessions", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and _error(response)["code"] == "TOKEN_EXPIRED"


def test_given_an_expired_cookie_access_token_when_used_then_the_refresh_token_renews_the_cookie(
    alice: Caller, deps: Any
) -> None:
    expired = tokens._encode(
        {"sub": alice.user["id"], "sid": alice.tokens["session_id"]}, deps.jwt_secret, tokens.ACCESS_AUDIENCE, -10
    )
    cookie = json.dumps({"AccessToken": expired, "RefreshToken": alice.tokens["refresh_token"]})
    response = alice.http.get("/sessions", headers={"Cookie": f"authorization={cookie}"})
    assert response.status_code == 200
    assert response.headers["Set-Cookie"].startswith("authorization=")
    renewed = json.loads(unquote(response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]))
    assert renewed["RefreshToken"] != alice.tokens["refresh_token"]


def test_given_an_expired_cookie_access_token_when_the_body_is_refused_then_the_renewed_cookie_comes_back(
    alice: Caller, deps: Any
) -> None:
    """Authenticating rotated the refresh token; a body refused afterwards must not strand the client."""
    expired = tokens._encode(
        {"sub": alice.user["id"], "sid": alice.tokens["session_id"]}, deps.jwt_secret, tokens.ACCESS_AUDIENCE, -10
    )
    cookie = json.dumps({"AccessToken": expired, "RefreshToken": alice.tokens["refresh_token"]})

    refused = alice.http.post(
        "/apikeys",
        headers={"Cookie": f"authorization={cookie}", "Content-Type": "application/json", **SAME_ORIGIN},
        body=json.dumps({"colour": "red"}),
    )

    assert refused.status_code == 400 and _error(refused)["code"] == "INVALID_BODY"
    renewed = unquote(refused.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1])
    assert alice.http.get("/sessions", headers={"Cookie": f"authorization={renewed}"}).status_code == 200


def test_given_tampered_or_unsigned_tokens_when_used_then_401_invalid_token(alice: Caller) -> None:
    header_part, payload_part, signature = alice.tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload_part + "=" * (-len(payload_part) % 4)))
    forged_claims = _b64({**claims, "sub": "00000000-0000-0000-0000-000000000001"})
    tampered = f"{header_part}.{forged_claims}.{signature}"
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    other_key = jwt.encode(claims, "another-secret-that-is-long-enough-000000", algorithm="HS256")
    for token in (tampered, alg_none, other_key, "garbage", "a.b.c"):
        response = alice.http.get("/sessions", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert _error(response)["code"] == "INVALID_TOKEN", token


# --- API keys ---------------------------------------------------------------------------------


def test_given_a_new_api_key_when_created_then_shown_once_and_stored_only_as_a_digest(
    alice: Caller, database_url: str
) -> None:
    assert alice.api_key.startswith("tcx_")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT key_hash, prefix FROM api_keys WHERE user_id = %s", (alice.user["id"],)).fetchall()
    assert rows == [(tokens.sha256(alice.api_key), alice.api_key[:10])]
    listed = alice.http.get("/apikeys", headers=alice.bearer)
    assert listed.status_code == 200
    assert alice.api_key not in json.dumps(listed.json_body)
    assert [k["prefix"] for k in listed.json_body["keys"]] == [alice.api_key[:10]]


def test_given_several_named_keys_when_one_is_revoked_by_id_then_only_it_stops_working(alice: Caller) -> None:
    second = alice.http.post(
        "/apikeys", headers={**alice.bearer, "Content-Type": "application/json"}, body=json.dumps({"name": "ci"})
    ).json_body
    assert second["name"] == "ci"
    names = {k["name"] for k in alice.http.get("/apikeys", headers=alice.bearer).json_body["keys"]}
    assert names == {"default", "ci"}
    revoked = alice.http.delete(f"/apikeys/{second['id']}", headers=alice.bearer)
    assert revoked.status_code == 200 and revoked.json_body["key"]["enabled"] is False
    assert alice.http.get("/media/jobs", headers={"x-api-key": second["key"]}).status_code == 401
    assert alice.http.get("/media/jobs", headers=alice.key).status_code == 200


def test_given_the_seeds_revoke_call_when_the_key_is_in_x_api_key_then_it_is_revoked_immediately(
    alice: Caller,
) -> None:
    assert alice.http.get("/media/health", headers=alice.key).status_code == 200
    response = alice.http.delete("/apikeys", headers={**alice.bearer, **alice.key})
    assert response.status_code == 200
    after = alice.http.get("/media/health", headers=alice.key)
    assert after.status_code == 401 and _error(after)["code"] == "INVALID_API_KEY"
    missing = alice.http.delete("/apikeys", headers=alice.bearer)
    assert missing.status_code == 400 and _error(missing)["code"] == "API_KEY_HEADER_REQUIRED"


def test_given_another_users_key_when_revoking_it_then_404_and_it_keeps_working(alice: Caller, bob: Caller) -> None:
    bobs = bob.http.get("/apikeys", headers=bob.bearer).json_body["keys"][0]["id"]
    by_id = alice.http.delete(f"/apikeys/{bobs}", headers=alice.bearer)
    assert by_id.status_code == 404
    by_header = alice.http.delete("/apikeys", headers={**alice.bearer, **bob.key})
    assert by_header.status_code == 404
    assert bob.http.get("/media/health", headers=bob.key).status_code == 200


def test_given_an_expired_api_key_when_used_then_401(alice: Caller, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE user_id = %s", (alice.user["id"],)
        )
    response = alice.http.get("/media/jobs", headers=alice.key)
    assert response.status_code == 401 and _error(response)["code"] == "INVALID_API_KEY"


def test_given_health_routes_when_called_then_200(client: Any) -> None:
    for path in ("/health", "/users/health", "/sessions/health", "/apikeys/health"):
        response = client.get(path)
        assert response.status_code == 200 and response.json_body["status"] == "ok", path
        assert response.headers["X-Request-Id"]


def test_given_a_second_login_when_listing_sessions_then_each_is_marked_current_or_not(client: Any) -> None:
    caller = sign_up(client, "carol")
    time.sleep(0.01)
    second = post_json(client, "/sessions", {"email": caller.email, "password": caller.password}).json_body
    listed = client.get("/sessions/all", headers={"Authorization": f"Bearer {second['access_token']}"}).json_body
    assert {s["id"]: s["current"] for s in listed} == {second["session_id"]: True, caller.tokens["session_id"]: False}


def test_given_only_the_seeds_cookie_when_refreshing_then_tokens_rotate_and_the_cookie_is_replaced(
    alice: Caller,
) -> None:
    cookie = json.dumps({"AccessToken": alice.tokens["access_token"], "RefreshToken": alice.tokens["refresh_token"]})
    response = alice.http.post("/sessions/refresh", headers={"Cookie": f"authorization={cookie}", **SAME_ORIGIN})
    assert response.status_code == 200
    renewed = json.loads(unquote(response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]))
    assert renewed["RefreshToken"] != alice.tokens["refresh_token"]
    assert "refresh_token" not in response.json_body  # a cookie client gets it in the cookie only
    nothing = alice.http.post("/sessions/refresh")
    assert nothing.status_code == 401 and _error(nothing)["code"] == "UNAUTHENTICATED"


def test_given_repeated_wrong_passwords_from_one_address_when_logging_in_then_429_there_even_for_the_right_one(
    alice: Caller, database_url: str
) -> None:
    from runtime.api.chalicelib.accounts import MAX_FAILURES_PER_EMAIL_IP

    for _ in range(MAX_FAILURES_PER_EMAIL_IP):
        wrong = post_json(alice.http, "/sessions", {"email": alice.email.upper(), "password": "guess-guess"})
        assert wrong.status_code == 401
    blocked = post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password})
    assert blocked.status_code == 429 and _error(blocked)["code"] == "TOO_MANY_ATTEMPTS"
    with psycopg.connect(database_url, autocommit=True) as conn:  # the window passes
        conn.execute("UPDATE login_failures SET created_at = now() - interval '16 minutes'")
    assert post_json(alice.http, "/sessions", {"email": alice.email, "password": alice.password}).status_code == 201
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 0  # success clears them
