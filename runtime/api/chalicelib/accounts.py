"""Users, sessions and API keys: the rows behind every credential.

An access JWT names a session row that :func:`session_principal` checks on every use, and an
API key's digest is looked up on every use by :func:`api_key_principal`, so revocation is
immediate. Which credential a request carries, and which a route accepts, is ``auth.py``'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from runtime.api.chalicelib import tokens
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import Conflict, Forbidden, NotFound, Throttled, Unauthenticated
from runtime.shared.db import Connection
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
    #: The kind of credential that proved it: ``bearer``, ``cookie``, ``api_key`` or ``playback``
    #: (cookie requests are the ones a cross-site page can make the browser send).
    via: str = ""


# --- users ---------------------------------------------------------------------------------


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    # ``password`` is kept as a field (the seed's clients check it is present) but never
    # carries the hash.
    return {**{k: row[k] for k in ("id", "name", "username", "email", "created_at", "updated_at")}, "password": None}


#: Sign-ups accepted per client address in SIGNUP_WINDOW_SECONDS.
MAX_SIGNUPS_PER_IP = 20
SIGNUP_WINDOW_SECONDS = 3600
#: Advisory-lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
_LOCK_LOGIN_EMAIL, _LOCK_LOGIN_IP, _LOCK_SIGNUP_IP = 0x7C0A01, 0x7C0A02, 0x7C0A03


def _lock(conn: Connection, namespace: int, value: str) -> None:
    """Serialise, until the transaction ends, every request counting attempts for ``value``."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (namespace, value))


def _throttle_signup(deps: Deps, ip: str | None) -> None:
    """Count this sign-up against its address first (atomically), 429 over the limit."""
    address = ip or ""
    with deps.db.connection() as conn, conn.transaction():
        _lock(conn, _LOCK_SIGNUP_IP, address)
        row = conn.execute(
            """SELECT count(*) AS n, min(created_at) AS oldest FROM signup_attempts
               WHERE client_ip = %s AND created_at > now() - make_interval(secs => %s)""",
            (address, SIGNUP_WINDOW_SECONDS),
        ).fetchone()
        assert row is not None  # an aggregate always has a row
        if row["n"] >= MAX_SIGNUPS_PER_IP:
            raise Throttled(
                "TOO_MANY_SIGNUPS",
                f"at most {MAX_SIGNUPS_PER_IP} sign-ups an hour from one address; try again later",
                {"limit": MAX_SIGNUPS_PER_IP, "retry_after_seconds": _left(row["oldest"], SIGNUP_WINDOW_SECONDS)},
            )
        conn.execute("INSERT INTO signup_attempts (client_ip) VALUES (%s)", (address,))
        if secrets.randbelow(100) == 0:
            conn.execute("DELETE FROM signup_attempts WHERE created_at < now() - interval '1 day'")


def _left(oldest: datetime | None, window: int) -> int:
    """Seconds until the oldest counted attempt leaves the window."""
    if oldest is None:
        return 1
    return max(1, math.ceil(window - (datetime.now(UTC) - oldest).total_seconds()))


def create_user(
    deps: Deps, name: str, username: str, email: str, password: str, ip: str | None = None
) -> dict[str, Any]:
    """Sign up. An email that already has an account is answered exactly like a new one (201,
    the same fields, an id that names nothing) and nothing is stored, so sign-up does not tell
    who has an account; a taken username is 409 (the name is the caller's own choice)."""
    _throttle_signup(deps, ip)
    password_hash = deps.hasher.hash(password)
    try:
        with deps.db.connection() as conn:
            row = conn.execute(
                f"""INSERT INTO users (name, username, email, password_hash) VALUES (%s, %s, %s, %s)
                    RETURNING {USER_COLUMNS}""",
                (name.strip(), username.strip(), email.strip(), password_hash),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        with deps.db.connection() as conn:
            taken = conn.execute(
                "SELECT 1 FROM users WHERE lower(username) = lower(%s)", (username.strip(),)
            ).fetchone()
        if taken is not None:
            raise Conflict(
                "USERNAME_TAKEN", "a user with this username already exists", {"field": "username"}
            ) from None
        log.info("sign-up for an email that has an account; answered as if created")
        now = datetime.now(UTC)
        row = {
            "id": uuid.uuid4(),
            "name": name.strip(),
            "username": username.strip(),
            "email": email.strip(),
            "created_at": now,
            "updated_at": now,
        }
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


#: (time_cost, memory_cost, parallelism, hash_len, salt_len, type) -> a dummy hash at those parameters
_DUMMY_HASHES: dict[tuple[int, int, int, int, int, Type], str] = {}


def _dummy_hash(deps: Deps) -> str:
    """A hash of nothing at the hasher's current parameters (one per parameter set)."""
    h = deps.hasher
    key = (h.time_cost, h.memory_cost, h.parallelism, h.hash_len, h.salt_len, h.type)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = h.hash(uuid.uuid4().hex)
    return _DUMMY_HASHES[key]


def _needs_rehash(deps: Deps, stored: str) -> bool:
    try:
        return deps.hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify(deps: Deps, stored: str | None, password: str) -> bool:
    """Equal work for known and unknown emails: every login runs at least one argon2
    verification at the current parameters. An unknown email verifies a dummy hash; a stored
    hash of other (older, cheaper) parameters is verified and the dummy too, until the
    successful login that rehashes it."""
    if stored is None or _needs_rehash(deps, stored):
        with contextlib.suppress(VerificationError, InvalidHashError):
            deps.hasher.verify(_dummy_hash(deps), password)
    if stored is None:
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

    def body(self, *, with_refresh_token: bool = False) -> dict[str, Any]:
        """The JSON answer. The refresh token is in it only for clients that asked (they keep
        it themselves); a browser gets it in the HttpOnly cookie alone, out of scripts' reach."""
        body = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": self.session_id,
            "user_id": self.user_id,
        }
        if with_refresh_token:
            body["refresh_token"] = self.refresh_token
        return body

    def cookie(self, max_age: int) -> str:
        """The seed's cookie: URL-escaped JSON of both tokens; HttpOnly, Secure, SameSite."""
        value = quote(json.dumps({"AccessToken": self.access_token, "RefreshToken": self.refresh_token}), safe="")
        return f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def clear_cookie() -> str:
    return (
        f"{COOKIE_NAME}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Strict"
    )


def _access(deps: Deps, user_id: str, session_id: str) -> str:
    return tokens.access_token(user_id, session_id, deps.jwt_secret, deps.settings.access_token_ttl_seconds)


#: Failed logins tolerated per (email as typed, client address) in LOGIN_WINDOW: the hard limit.
MAX_FAILURES_PER_EMAIL_IP = 10
#: Failed logins tolerated per client address, whatever the emails.
MAX_FAILURES_PER_IP = 50
#: Failures on one email (from any address) before each further attempt must wait; the wait
#: doubles with every failure, from LOGIN_DELAY_BASE_SECONDS up to LOGIN_DELAY_MAX_SECONDS.
FREE_FAILURES_PER_EMAIL = 5
LOGIN_DELAY_BASE_SECONDS = 2
LOGIN_DELAY_MAX_SECONDS = 300
LOGIN_WINDOW_SECONDS = 15 * 60
#: An address the account logged in from within this many days skips the per-email delay (not
#: the hard limit): a stranger guessing from elsewhere cannot lock the owner out.
KNOWN_ADDRESS_DAYS = 30


def login_delay(failures: int) -> int:
    """Seconds an attempt must wait after the last failure, given the email's recent failures."""
    if failures < FREE_FAILURES_PER_EMAIL:
        return 0
    doublings = min(failures - FREE_FAILURES_PER_EMAIL, 16)  # >= 0 here, so 2**doublings is an int
    return min(LOGIN_DELAY_BASE_SECONDS * (1 << doublings), LOGIN_DELAY_MAX_SECONDS)


def _claim_attempt(deps: Deps, email: str, ip: str | None) -> int:
    """Count this attempt before the password is checked: under locks on the email and the
    address, refuse it (429) over a limit, else record it as a failure (the id, deleted again
    if the password proves right). Parallel guesses therefore see each other."""
    address = ip or ""
    window = {"email": email, "ip": address, "window": LOGIN_WINDOW_SECONDS, "days": KNOWN_ADDRESS_DAYS}
    with deps.db.connection() as conn, conn.transaction():
        _lock(conn, _LOCK_LOGIN_EMAIL, email)  # always email, then address: no lock cycles
        _lock(conn, _LOCK_LOGIN_IP, address)
        counts = conn.execute(
            """SELECT count(*) AS by_email,
                      count(*) FILTER (WHERE client_ip = %(ip)s) AS by_pair,
                      min(created_at) FILTER (WHERE client_ip = %(ip)s) AS oldest_pair,
                      extract(epoch FROM now() - max(created_at)) AS since_last,
                      (SELECT count(*) FROM login_failures
                       WHERE client_ip = %(ip)s
                         AND created_at > now() - make_interval(secs => %(window)s)) AS by_ip,
                      (SELECT min(created_at) FROM login_failures
                       WHERE client_ip = %(ip)s
                         AND created_at > now() - make_interval(secs => %(window)s)) AS oldest_ip,
                      EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                              WHERE lower(u.email) = %(email)s AND %(ip)s <> '' AND s.client_ip = %(ip)s
                                AND s.created_at > now() - make_interval(days => %(days)s)) AS known
               FROM login_failures
               WHERE email = %(email)s AND created_at > now() - make_interval(secs => %(window)s)""",
            window,
        ).fetchone()
        assert counts is not None  # an aggregate always has a row
        if counts["by_pair"] >= MAX_FAILURES_PER_EMAIL_IP or counts["by_ip"] >= MAX_FAILURES_PER_IP:
            oldest = counts["oldest_pair"] if counts["by_pair"] >= MAX_FAILURES_PER_EMAIL_IP else counts["oldest_ip"]
            retry = _left(oldest, LOGIN_WINDOW_SECONDS)
            raise Throttled(
                "TOO_MANY_ATTEMPTS",
                f"too many failed logins from this address; try again in {retry} seconds",
                {"retry_after_seconds": retry},
            )
        delay = 0 if counts["known"] else login_delay(counts["by_email"])
        wait = delay - float(counts["since_last"] or 0)
        if wait > 0:
            retry = math.ceil(wait)
            raise Throttled(
                "LOGIN_DELAYED",
                f"this account has had failed logins lately; wait {retry} seconds before trying again",
                {"retry_after_seconds": retry},
            )
        attempt = conn.execute(
            "INSERT INTO login_failures (email, client_ip) VALUES (%s, %s) RETURNING id", (email, address)
        ).fetchone()
        assert attempt is not None
        if secrets.randbelow(100) == 0:
            conn.execute("DELETE FROM login_failures WHERE created_at < now() - interval '1 day'")
    return int(attempt["id"])


def login(deps: Deps, email: str, password: str, agent: str | None, ip: str | None) -> Tokens:
    typed = email.strip().lower()
    attempt = _claim_attempt(deps, typed, ip)
    with deps.db.connection() as conn:
        row = conn.execute("SELECT id, password_hash FROM users WHERE lower(email) = %s", (typed,)).fetchone()
    if not _verify(deps, row["password_hash"] if row else None, password) or row is None:
        raise Unauthenticated("INVALID_CREDENTIALS", "the email or password is wrong")
    with deps.db.connection() as conn:
        # This attempt and this address's earlier failures; a stranger's stay counted.
        conn.execute(
            "DELETE FROM login_failures WHERE id = %s OR (email = %s AND client_ip = %s)", (attempt, typed, ip or "")
        )
    if _needs_rehash(deps, row["password_hash"]):
        with deps.db.connection() as conn:
            conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (deps.hasher.hash(password), row["id"]))
    user_id = str(row["id"])
    session_id = str(uuid.uuid4())
    issued = int(time.time())
    expires = issued + deps.settings.refresh_token_ttl_seconds
    refresh_ = tokens.refresh_token(user_id, session_id, 0, deps.jwt_secret, issued, expires)
    with deps.db.connection() as conn:
        conn.execute(
            """INSERT INTO sessions (id, user_id, refresh_token_hash, refresh_issued_at, user_agent, client_ip,
                                     expires_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (session_id, user_id, tokens.sha256(refresh_), issued, agent, ip, datetime.fromtimestamp(expires, UTC)),
        )
    return Tokens(
        _access(deps, user_id, session_id), refresh_, session_id, user_id, deps.settings.access_token_ttl_seconds
    )


def refresh(deps: Deps, refresh_token: str) -> Tokens:
    """Rotate: the session's current refresh token gets a new pair. The token rotated away last
    is answered with the current pair while ``refresh_grace_seconds`` have not passed since
    (requests that raced one rotation: both end holding the same, current token). Any other
    genuine older token means it was stolen or replayed, so the whole session is revoked."""
    try:
        claims = tokens.read_refresh_token(refresh_token, deps.jwt_secret)
    except tokens.TokenError as err:
        raise Unauthenticated("INVALID_REFRESH_TOKEN", str(err)) from None
    presented = tokens.sha256(refresh_token)
    user_id, session_id = claims.user_id, claims.session_id
    refusal: Unauthenticated | None = None
    with deps.db.connection() as conn, conn.transaction():
        row = conn.execute(
            """SELECT refresh_token_hash, previous_refresh_hash, refresh_counter, refresh_issued_at,
                      coalesce(rotated_at > now() - make_interval(secs => %s), false) AS in_grace,
                      extract(epoch FROM expires_at)::bigint AS expires,
                      revoked_at IS NULL AND expires_at > now() AS live
               FROM sessions WHERE id = %s AND user_id = %s FOR UPDATE""",
            (deps.settings.refresh_grace_seconds, session_id, user_id),
        ).fetchone()
        current = row["refresh_counter"] if row else -1
        if row is None or not row["live"]:
            refusal = Unauthenticated("SESSION_REVOKED", "the session has ended; log in again")
        elif claims.counter == current and presented == row["refresh_token_hash"]:
            issued = int(time.time())
            new_refresh = tokens.refresh_token(
                user_id, session_id, current + 1, deps.jwt_secret, issued, row["expires"]
            )
            conn.execute(
                """UPDATE sessions SET previous_refresh_hash = refresh_token_hash, refresh_token_hash = %s,
                          refresh_counter = %s, refresh_issued_at = %s, rotated_at = now(), last_used_at = now()
                   WHERE id = %s""",
                (tokens.sha256(new_refresh), current + 1, issued, session_id),
            )
        elif claims.counter == current - 1 and presented == row["previous_refresh_hash"] and row["in_grace"]:
            new_refresh = tokens.refresh_token(
                user_id, session_id, current, deps.jwt_secret, row["refresh_issued_at"] or 0, row["expires"]
            )
            if tokens.sha256(new_refresh) != row["refresh_token_hash"]:  # e.g. the signing key changed
                refusal = Unauthenticated("INVALID_REFRESH_TOKEN", "this refresh token can no longer be renewed")
        elif claims.counter < current:
            conn.execute(
                "UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh-token-reuse' WHERE id = %s",
                (session_id,),
            )
            log.warning("refresh token reuse; session revoked", extra={"session_id": session_id})
            refusal = Unauthenticated(
                "REFRESH_TOKEN_REUSED", "this refresh token was already used; the session has been revoked"
            )
        else:
            refusal = Unauthenticated("INVALID_REFRESH_TOKEN", "this refresh token is not the session's")
    if refusal is not None:
        raise refusal
    return Tokens(
        _access(deps, user_id, session_id), new_refresh, session_id, user_id, deps.settings.access_token_ttl_seconds
    )


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


def revoke_all_sessions(deps: Deps, principal: Principal, *, api_keys: bool = False) -> tuple[int, int]:
    """Log out everywhere: every session ends, and with ``api_keys`` every API key too (and the
    playback tokens they minted). (sessions revoked, keys revoked)."""
    with deps.db.connection() as conn, conn.transaction():
        sessions = conn.execute(
            """UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout-everywhere'
               WHERE user_id = %s AND revoked_at IS NULL RETURNING id""",
            (principal.user_id,),
        ).fetchall()
        keys = (
            conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL RETURNING id",
                (principal.user_id,),
            ).fetchall()
            if api_keys
            else []
        )
    return len(sessions), len(keys)


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


#: Creating an API key needs a password login this recent: a stolen access token (15 minutes)
#: of an older session cannot turn itself into keys that never expire.
REAUTH_WINDOW_SECONDS = 15 * 60


def require_recent_login(deps: Deps, principal: Principal) -> None:
    """403 REAUTH_REQUIRED unless the caller's session began with a password login lately."""
    recent = None
    if principal.session_id is not None:
        with deps.db.connection() as conn:
            recent = conn.execute(
                """SELECT 1 FROM sessions WHERE id = %s AND user_id = %s
                   AND created_at > now() - make_interval(secs => %s)""",
                (principal.session_id, principal.user_id, REAUTH_WINDOW_SECONDS),
            ).fetchone()
    if recent is None:
        raise Forbidden(
            "REAUTH_REQUIRED",
            f"this needs a login in the last {REAUTH_WINDOW_SECONDS // 60} minutes: log in again (POST /sessions) "
            "and retry with the new session",
            {"max_login_age_seconds": REAUTH_WINDOW_SECONDS},
        )


def create_api_key(deps: Deps, user_id: str, name: str, expires_in_days: int | None) -> dict[str, Any]:
    """A new key for the user (the route checks :func:`require_recent_login` first)."""
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
    return Principal(user_id=claims.user_id, session_id=claims.session_id, via="bearer")


def minter_live(deps: Deps, user_id: str, session_id: str | None, api_key_id: str | None) -> bool:
    """Whether the session or API key that minted a playback token is still live."""
    if session_id is not None:
        query = """SELECT 1 FROM sessions WHERE id = %s AND user_id = %s
                   AND revoked_at IS NULL AND expires_at > now()"""
        param = session_id
    elif api_key_id is not None:
        query = """SELECT 1 FROM api_keys WHERE id = %s AND user_id = %s
                   AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"""
        param = api_key_id
    else:
        return False
    with deps.db.connection() as conn:
        return conn.execute(query, (param, user_id)).fetchone() is not None


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
    return Principal(user_id=str(row["user_id"]), api_key_id=str(row["id"]), via="api_key")
