"""Users, sessions and API keys: the rows behind every credential.

An access JWT names a session row that :func:`session_principal` checks on every use, and an
API key's digest is looked up on every use by :func:`api_key_principal`, so revocation is
immediate. Which credential a request carries, and which a route accepts, is ``auth.py``'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from runtime.api.chalicelib import tokens
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import Conflict, NotFound, Throttled, Unauthenticated
from runtime.shared.repo import deletions as deletions_repo

log = logging.getLogger(__name__)

COOKIE_NAME = "authorization"
#: A user may hold this many active API keys (named, revocable one by one).
MAX_ACTIVE_API_KEYS = 20

USER_COLUMNS = "id, name, username, email, created_at, updated_at"
SESSION_COLUMNS = "id, user_id, user_agent, client_ip, created_at, last_used_at, expires_at, revoked_at, revoked_reason"
KEY_COLUMNS = "id, user_id, name, prefix, created_at, last_used_at, expires_at, revoked_at"


@dataclass(frozen=True)
class Principal:
    """The caller: a user, through a session, an API key or a playback token."""

    user_id: str
    session_id: str | None = None
    api_key_id: str | None = None
    #: A Set-Cookie value when an expired cookie access token was refreshed on the way in.
    set_cookie: str | None = None
    #: The playback token the request carried (it admits one job, named in the route's path).
    playback_token: str | None = None


# --- users ---------------------------------------------------------------------------------


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    # ``password`` is kept as a field (the seed's clients check it is present) but never
    # carries the hash.
    return {**{k: row[k] for k in ("id", "name", "username", "email", "created_at", "updated_at")}, "password": None}


def create_user(deps: Deps, name: str, username: str, email: str, password: str) -> dict[str, Any]:
    password_hash = deps.hasher.hash(password)
    try:
        with deps.db.connection() as conn:
            row = conn.execute(
                f"""INSERT INTO users (name, username, email, password_hash) VALUES (%s, %s, %s, %s)
                    RETURNING {USER_COLUMNS}""",
                (name.strip(), username.strip(), email.strip(), password_hash),
            ).fetchone()
    except psycopg.errors.UniqueViolation as err:
        constraint = err.diag.constraint_name or ""
        if "username" in constraint:
            taken = Conflict("USERNAME_TAKEN", "a user with this username already exists", {"field": "username"})
        else:
            taken = Conflict("EMAIL_TAKEN", "a user with this email already exists", {"field": "email"})
        raise taken from None
    assert row is not None
    return public_user(row)


def delete_user(deps: Deps, user_id: str) -> bool:
    """Delete the user and queue the deletion of their media, in one transaction: the rows
    (sessions, API keys, uploads, jobs) go at once by cascade, so every credential stops working
    with this commit; the objects in both buckets are deleted by the sweeper, retried until done
    (runtime.shared.repo.deletions)."""
    with deps.db.connection() as conn, conn.transaction():
        deleted = conn.execute("DELETE FROM users WHERE id = %s RETURNING id", (user_id,)).fetchone() is not None
        if deleted:
            deletions_repo.request(conn, user_id)
    return deleted


_DUMMY_HASHES: dict[int, str] = {}


def _verify(deps: Deps, stored: str | None, password: str) -> bool:
    """Constant-ish time: an unknown email still costs one argon2 verification."""
    if stored is None:
        key = id(deps.hasher)
        if key not in _DUMMY_HASHES:
            _DUMMY_HASHES[key] = deps.hasher.hash(uuid.uuid4().hex)
        stored = _DUMMY_HASHES[key]
        with contextlib.suppress(VerificationError, InvalidHashError):
            deps.hasher.verify(stored, password)
        return False
    try:
        return deps.hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    session_id: str
    user_id: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": self.session_id,
            "user_id": self.user_id,
        }

    def cookie(self, max_age: int) -> str:
        """The seed's cookie: URL-escaped JSON of both tokens; HttpOnly, Secure, SameSite."""
        value = quote(json.dumps({"AccessToken": self.access_token, "RefreshToken": self.refresh_token}), safe="")
        return f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def clear_cookie() -> str:
    return (
        f"{COOKIE_NAME}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Strict"
    )


def _issue(deps: Deps, user_id: str, session_id: str, counter: int) -> tuple[str, str]:
    s = deps.settings
    access = tokens.access_token(user_id, session_id, deps.jwt_secret, s.access_token_ttl_seconds)
    refresh = tokens.refresh_token(user_id, session_id, counter, deps.jwt_secret, s.refresh_token_ttl_seconds)
    return access, refresh


#: Failed logins tolerated in LOGIN_WINDOW per account (as typed) and per client address.
MAX_FAILURES_PER_EMAIL = 10
MAX_FAILURES_PER_IP = 50
LOGIN_WINDOW_SECONDS = 15 * 60


def _throttle(conn: Any, email: str, ip: str | None) -> None:
    """429 before any password check once an account or address has failed too often lately."""
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM login_failures
                   WHERE email = %(email)s AND created_at > now() - make_interval(secs => %(window)s)) AS by_email,
                  (SELECT count(*) FROM login_failures
                   WHERE client_ip = %(ip)s AND created_at > now() - make_interval(secs => %(window)s)) AS by_ip""",
        {"email": email, "ip": ip, "window": LOGIN_WINDOW_SECONDS},
    ).fetchone()
    if counts["by_email"] >= MAX_FAILURES_PER_EMAIL or counts["by_ip"] >= MAX_FAILURES_PER_IP:
        raise Throttled(
            "TOO_MANY_ATTEMPTS",
            f"too many failed logins; try again in {LOGIN_WINDOW_SECONDS // 60} minutes",
            {"retry_after_seconds": LOGIN_WINDOW_SECONDS},
        )


def login(deps: Deps, email: str, password: str, agent: str | None, ip: str | None) -> Tokens:
    typed = email.strip().lower()
    with deps.db.connection() as conn:
        _throttle(conn, typed, ip)
        row = conn.execute("SELECT id, password_hash FROM users WHERE lower(email) = %s", (typed,)).fetchone()
    if not _verify(deps, row["password_hash"] if row else None, password) or row is None:
        with deps.db.connection() as conn:
            conn.execute("INSERT INTO login_failures (email, client_ip) VALUES (%s, %s)", (typed, ip))
            if secrets.randbelow(100) == 0:
                conn.execute("DELETE FROM login_failures WHERE created_at < now() - interval '1 day'")
        raise Unauthenticated("INVALID_CREDENTIALS", "the email or password is wrong")
    with deps.db.connection() as conn:
        conn.execute("DELETE FROM login_failures WHERE email = %s", (typed,))
    if deps.hasher.check_needs_rehash(row["password_hash"]):
        with deps.db.connection() as conn:
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (deps.hasher.hash(password), row["id"]))
    user_id = str(row["id"])
    session_id = str(uuid.uuid4())
    access, refresh = _issue(deps, user_id, session_id, 0)
    expires = datetime.now(UTC) + timedelta(seconds=deps.settings.refresh_token_ttl_seconds)
    with deps.db.connection() as conn:
        conn.execute(
            """INSERT INTO sessions (id, user_id, refresh_token_hash, user_agent, client_ip, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (session_id, user_id, tokens.sha256(refresh), agent, ip, expires),
        )
    return Tokens(access, refresh, session_id, user_id, deps.settings.access_token_ttl_seconds)


def refresh(deps: Deps, refresh_token: str) -> Tokens:
    """Rotate: the presented token must be the session's current one. A genuine older token
    means it was stolen or replayed, so the whole session is revoked."""
    try:
        claims = tokens.read_refresh_token(refresh_token, deps.jwt_secret)
    except tokens.TokenError as err:
        raise Unauthenticated("INVALID_REFRESH_TOKEN", str(err)) from None
    new_counter = claims.counter + 1
    access, new_refresh = _issue(deps, claims.user_id, claims.session_id, new_counter)
    with deps.db.connection() as conn:
        rotated = conn.execute(
            """UPDATE sessions SET refresh_token_hash = %s, refresh_counter = %s, last_used_at = now()
               WHERE id = %s AND user_id = %s AND refresh_token_hash = %s AND refresh_counter = %s
                 AND revoked_at IS NULL AND expires_at > now()
               RETURNING id""",
            (
                tokens.sha256(new_refresh),
                new_counter,
                claims.session_id,
                claims.user_id,
                tokens.sha256(refresh_token),
                claims.counter,
            ),
        ).fetchone()
        if rotated is None:
            reused = conn.execute(
                """UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh-token-reuse'
                   WHERE id = %s AND user_id = %s AND revoked_at IS NULL AND refresh_counter > %s RETURNING id""",
                (claims.session_id, claims.user_id, claims.counter),
            ).fetchone()
            if reused is not None:
                log.warning("refresh token reuse; session revoked", extra={"session_id": claims.session_id})
                raise Unauthenticated(
                    "REFRESH_TOKEN_REUSED", "this refresh token was already used; the session has been revoked"
                )
            raise Unauthenticated("SESSION_REVOKED", "the session has ended; log in again")
    return Tokens(access, new_refresh, claims.session_id, claims.user_id, deps.settings.access_token_ttl_seconds)


def public_session(row: dict[str, Any], current: str | None = None) -> dict[str, Any]:
    valid = row["revoked_at"] is None and row["expires_at"] > datetime.now(UTC)
    return {
        "id": row["id"],
        "valid": valid,
        "user_agent": row["user_agent"],
        "ip": row["client_ip"],
        "user_id": row["user_id"],
        "created_at": row["created_at"],
        "updated_at": row["last_used_at"],
        "expires_at": row["expires_at"],
        "current": current is not None and str(row["id"]) == current,
    }


def get_session(deps: Deps, principal: Principal) -> dict[str, Any]:
    with deps.db.connection() as conn:
        row = conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = %s AND user_id = %s",
            (principal.session_id, principal.user_id),
        ).fetchone()
    if row is None:
        raise NotFound("NOT_FOUND", "session not found")
    return public_session(row, principal.session_id)


def list_sessions(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    with deps.db.connection() as conn:
        rows = conn.execute(
            f"""SELECT {SESSION_COLUMNS} FROM sessions
                WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now()
                ORDER BY created_at DESC LIMIT 200""",
            (principal.user_id,),
        ).fetchall()
    return [public_session(r, principal.session_id) for r in rows]


def revoke_session(deps: Deps, principal: Principal) -> None:
    with deps.db.connection() as conn:
        conn.execute(
            """UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'
               WHERE id = %s AND user_id = %s AND revoked_at IS NULL""",
            (principal.session_id, principal.user_id),
        )


def revoke_all_sessions(deps: Deps, principal: Principal) -> int:
    with deps.db.connection() as conn:
        return len(
            conn.execute(
                """UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout-everywhere'
                   WHERE user_id = %s AND revoked_at IS NULL RETURNING id""",
                (principal.user_id,),
            ).fetchall()
        )


# --- API keys --------------------------------------------------------------------------------


def public_key(row: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    body = {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "enabled": row["revoked_at"] is None,
        "user_id": row["user_id"],
        "created_at": row["created_at"],
        "updated_at": row["revoked_at"] or row["created_at"],
        "last_used_at": row["last_used_at"],
        "expires_at": row["expires_at"],
    }
    if key is not None:
        body["key"] = key
    return body


def create_api_key(deps: Deps, user_id: str, name: str, expires_in_days: int | None) -> dict[str, Any]:
    key, prefix, digest = tokens.new_api_key()
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with deps.db.connection() as conn, conn.transaction():
        # Serialise key creation per user so the cap cannot be raced past.
        conn.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))
        active = conn.execute(
            "SELECT count(*) AS n FROM api_keys WHERE user_id = %s AND revoked_at IS NULL", (user_id,)
        ).fetchone()
        if active and active["n"] >= MAX_ACTIVE_API_KEYS:
            raise Conflict(
                "TOO_MANY_API_KEYS", f"a user may hold at most {MAX_ACTIVE_API_KEYS} active API keys; revoke one"
            )
        row = conn.execute(
            f"""INSERT INTO api_keys (user_id, name, prefix, key_hash, expires_at) VALUES (%s, %s, %s, %s, %s)
                RETURNING {KEY_COLUMNS}""",
            (user_id, name, prefix, digest, expires),
        ).fetchone()
    assert row is not None
    return public_key(row, key)


def list_api_keys(deps: Deps, user_id: str) -> list[dict[str, Any]]:
    with deps.db.connection() as conn:
        rows = conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = %s AND revoked_at IS NULL ORDER BY created_at DESC",
            (user_id,),
        ).fetchall()
    return [public_key(r) for r in rows]


def revoke_api_key(deps: Deps, user_id: str, *, key_id: str | None = None, key: str | None = None) -> dict[str, Any]:
    with deps.db.connection() as conn:
        if key_id is not None:
            where, param = "id = %s", key_id
        else:
            where, param = "key_hash = %s", tokens.sha256(key or "")
        row = conn.execute(
            f"""UPDATE api_keys SET revoked_at = now() WHERE {where} AND user_id = %s AND revoked_at IS NULL
                RETURNING {KEY_COLUMNS}""",
            (param, user_id),
        ).fetchone()
    if row is None:
        raise NotFound("API_KEY_NOT_FOUND", "no active API key of yours matches")
    return public_key(row)


# --- credentials -----------------------------------------------------------------------------


def session_principal(deps: Deps, token: str) -> Principal:
    """The principal of an access token whose session is live; :class:`tokens.TokenError` for a
    forged or expired token (the caller may refresh an expired one), 401 for an ended session."""
    claims = tokens.read_access_token(token, deps.jwt_secret)
    with deps.db.connection() as conn:
        live = conn.execute(
            """SELECT 1 FROM sessions WHERE id = %s AND user_id = %s AND revoked_at IS NULL AND expires_at > now()""",
            (claims.session_id, claims.user_id),
        ).fetchone()
    if live is None:
        raise Unauthenticated("SESSION_REVOKED", "the session has ended; log in again")
    return Principal(user_id=claims.user_id, session_id=claims.session_id)


def api_key_principal(deps: Deps, key: str) -> Principal:
    if not key.startswith(tokens.API_KEY_PREFIX) or len(key) > 200:
        raise Unauthenticated("INVALID_API_KEY", "the API key is not valid")
    with deps.db.connection() as conn:
        row = conn.execute(
            """SELECT id, user_id, last_used_at < now() - interval '1 minute' OR last_used_at IS NULL AS stale
               FROM api_keys
               WHERE key_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())""",
            (tokens.sha256(key),),
        ).fetchone()
        if row is not None and row["stale"]:
            # At most one write a minute per key: busy keys do not serialise on the row lock.
            conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = %s", (row["id"],))
    if row is None:
        raise Unauthenticated("INVALID_API_KEY", "the API key is not valid, revoked or expired")
    return Principal(user_id=str(row["user_id"]), api_key_id=str(row["id"]))
