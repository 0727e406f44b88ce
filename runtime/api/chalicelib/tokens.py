"""Signed tokens: the access JWT, the rotating refresh token, the per-job playback token, and
API keys.

All JWTs are HS256 only (``alg: none`` and every other algorithm are refused) and carry an
audience, so one kind can never stand in for another. Access and refresh tokens name a
``sessions`` row that is checked on every use. API keys and refresh tokens are high-entropy,
so they are stored as SHA-256 digests (argon2 per request would be pointless and slow).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "transcodex"
ACCESS_AUDIENCE = "transcodex:access"
REFRESH_AUDIENCE = "transcodex:refresh"
PLAYBACK_AUDIENCE = "transcodex:playback"
API_KEY_PREFIX = "tcx_"
#: Default lifetime of a playback token (``TRANSCODEX_PLAYBACK_TOKEN_TTL_SECONDS``): as long as
#: the presigned segment URLs of one playlist load; a longer viewing reloads with a new token.
PLAYBACK_TTL_SECONDS = 3600


class TokenError(Exception):
    """The token is unusable; ``expired`` tells a stale token from a forged one."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _encode(claims: dict[str, Any], secret: str, audience: str, ttl: int) -> str:
    now = int(time.time())
    body = {**claims, "iss": ISSUER, "aud": audience, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def _decode(token: str, secret: str, audience: str, required: list[str]) -> dict[str, Any]:
    if not token or len(token) > 4096:
        raise TokenError("missing or oversized token")
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", *required]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired", expired=True) from None
    except jwt.PyJWTError as err:
        raise TokenError(f"the token is invalid: {err}") from None


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str


def access_token(user_id: str, session_id: str, secret: str, ttl: int) -> str:
    # uid/sid are the seed's claim names; sub is the standard one.
    return _encode({"sub": user_id, "uid": user_id, "sid": session_id}, secret, ACCESS_AUDIENCE, ttl)


def read_access_token(token: str, secret: str) -> AccessClaims:
    claims = _decode(token, secret, ACCESS_AUDIENCE, ["sub", "sid"])
    try:
        return AccessClaims(str(uuid.UUID(str(claims["sub"]))), str(uuid.UUID(str(claims["sid"]))))
    except ValueError:
        raise TokenError("the token's subject is malformed") from None


@dataclass(frozen=True)
class RefreshClaims:
    user_id: str
    session_id: str
    counter: int


def refresh_token(user_id: str, session_id: str, counter: int, secret: str, issued_at: int, expires_at: int) -> str:
    """A signed refresh token: ``ctr`` is the session's rotation counter when it was issued, so
    presenting a genuine but already rotated token is recognisable as reuse (theft).

    Deterministic: the same (user, session, counter, issue time, expiry) always give the same
    token, so the session's current token can be handed out again (the refresh grace window)
    without being stored; only its digest is."""
    jti = hmac.new(secret.encode(), f"refresh:{session_id}:{counter}:{issued_at}".encode(), "sha256").hexdigest()[:32]
    body = {
        "sub": user_id,
        "sid": session_id,
        "ctr": counter,
        "iss": ISSUER,
        "aud": REFRESH_AUDIENCE,
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti,
    }
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def read_refresh_token(token: str, secret: str) -> RefreshClaims:
    claims = _decode(token, secret, REFRESH_AUDIENCE, ["sub", "sid", "ctr"])
    try:
        counter = claims["ctr"]
        if isinstance(counter, bool) or not isinstance(counter, int):
            raise ValueError
        return RefreshClaims(str(uuid.UUID(str(claims["sub"]))), str(uuid.UUID(str(claims["sid"]))), counter)
    except ValueError:
        raise TokenError("the refresh token's claims are malformed") from None


@dataclass(frozen=True)
class PlaybackClaims:
    user_id: str
    job_id: str
    #: What minted the token: exactly one of a session and an API key; it dies with it.
    session_id: str | None
    api_key_id: str | None


def playback_token(
    user_id: str,
    job_id: str,
    secret: str,
    ttl: int = PLAYBACK_TTL_SECONDS,
    *,
    session_id: str | None = None,
    api_key_id: str | None = None,
) -> str:
    """A query-string token for one job's HLS playlists (players cannot send headers), bound to
    the session or API key that asked for it, so logging out or revoking the key ends it too."""
    if (session_id is None) == (api_key_id is None):
        raise ValueError("a playback token is bound to exactly one of a session and an API key")
    binding = {"sid": session_id} if session_id is not None else {"kid": api_key_id}
    return _encode({"sub": user_id, "job": job_id, **binding}, secret, PLAYBACK_AUDIENCE, ttl)


def read_playback_token(token: str, secret: str) -> PlaybackClaims:
    claims = _decode(token, secret, PLAYBACK_AUDIENCE, ["sub", "job"])
    session_id, api_key_id = claims.get("sid"), claims.get("kid")
    if (session_id is None) == (api_key_id is None):
        raise TokenError("the playback token is bound to no session or API key")
    try:
        return PlaybackClaims(
            str(uuid.UUID(str(claims["sub"]))),
            str(claims["job"]),
            str(uuid.UUID(str(session_id))) if session_id is not None else None,
            str(uuid.UUID(str(api_key_id))) if api_key_id is not None else None,
        )
    except ValueError:
        raise TokenError("the playback token's claims are malformed") from None


def new_api_key() -> tuple[str, str, str]:
    """(key shown once, display prefix, stored digest)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + 6], sha256(key)
