"""Who a request is, from what its route declares it accepts.

A route declares one :class:`Scheme` (``auth="session"``, ``"media"``, ...): the kinds of
credential it accepts, in the order they are tried. :func:`authenticate` takes the first of
those kinds the request carries and verifies it. That credential's verdict is final (a bad API
key is not rescued by a good cookie), a credential of a kind the route does not accept is never
looked at, and a request carrying none of them is 401 UNAUTHENTICATED. The route wrapper
(routing.py) calls it before the view and hands the view the principal; the OpenAPI security
requirements are rendered from the same schemes, so the document says what is enforced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any
from urllib.parse import unquote, urlsplit

from chalice.app import Request

from runtime.api.chalicelib import accounts, tokens
from runtime.api.chalicelib.accounts import Principal
from runtime.api.chalicelib.deps import Deps
from runtime.api.chalicelib.domain import Forbidden, NotFound, Unauthenticated
from runtime.api.chalicelib.requests import base_url, header, parse_id


class Credential(Enum):
    """A kind of credential a request can carry; the value names its OpenAPI security scheme."""

    PLAYBACK_TOKEN = "playbackToken"
    API_KEY = "apiKeyAuth"
    BEARER = "bearerAuth"
    COOKIE = "cookieAuth"


#: ``components.securitySchemes`` of the OpenAPI document.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    Credential.BEARER.value: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    Credential.COOKIE.value: {"type": "apiKey", "in": "cookie", "name": accounts.COOKIE_NAME},
    Credential.API_KEY.value: {"type": "apiKey", "in": "header", "name": "x-api-key"},
    Credential.PLAYBACK_TOKEN.value: {"type": "apiKey", "in": "query", "name": "token"},
}

_WANTED = {
    Credential.BEARER: "an access token (Authorization: Bearer)",
    Credential.COOKIE: "the authorization cookie",
    Credential.API_KEY: "an API key (x-api-key)",
    Credential.PLAYBACK_TOKEN: "a playback token (?token= from GET /media/download)",
}


@dataclass(frozen=True)
class Scheme:
    """A route's auth declaration: the credentials it accepts, in the order they are tried."""

    name: str
    accepts: tuple[Credential, ...]

    @property
    def public(self) -> bool:
        return not self.accepts

    def security(self) -> list[dict[str, list[str]]]:
        """OpenAPI security requirements: any one of the accepted credentials."""
        return [{credential.value: []} for credential in self.accepts]

    def wanted(self) -> str:
        names = [_WANTED[c] for c in self.accepts]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


B, C, K, P = Credential.BEARER, Credential.COOKIE, Credential.API_KEY, Credential.PLAYBACK_TOKEN
#: Every scheme a route may declare, by name. The API key goes first where it is accepted (the
#: seed's clients send it beside a cookie); a playback token first on playback routes.
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("none", ()),
        Scheme("session", (B, C)),
        Scheme("media", (K, B, C)),
        Scheme("playback", (P, K, B, C)),
    )
}


# --- reading credentials ---------------------------------------------------------------------


def cookie_tokens(request: Request) -> tuple[str | None, str | None]:
    """(access, refresh) from the seed's ``authorization`` cookie (URL-escaped JSON) or a bare token."""
    raw = header(request, "cookie")
    if not raw:
        return None, None
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() != accounts.COOKIE_NAME or not value:
            continue
        value = unquote(value.strip().strip('"'))
        if value.startswith("{"):
            try:
                data = json.loads(value)
            except ValueError:
                return None, None
            if isinstance(data, dict):
                access, refresh_ = data.get("AccessToken"), data.get("RefreshToken")
                return (access if isinstance(access, str) else None, refresh_ if isinstance(refresh_, str) else None)
            return None, None
        return value, None
    return None, None


def bearer_token(request: Request) -> str | None:
    """``Authorization: Bearer <jwt>``, or a bare JWT in ``authorization`` (the seed's clients)."""
    value = header(request, "authorization")
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return value if value.count(".") == 2 and " " not in value else None


def _refused(err: tokens.TokenError) -> Unauthenticated:
    return Unauthenticated("TOKEN_EXPIRED" if err.expired else "INVALID_TOKEN", str(err))


# --- cross-site request forgery -----------------------------------------------------------------

#: Methods that change state: a cookie-authenticated one must come from an allowed origin.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(deps: Deps, request: Request) -> set[str]:
    """The API's own origin (as the caller reached it) and the configured ones."""
    own = _origin_of(base_url(request, deps.public_base_url))
    return {*deps.settings.allowed_origins, *([own] if own else [])}


def check_origin(deps: Deps, request: Request) -> None:
    """403 CSRF_ORIGIN_REFUSED unless the request's Origin (or, without one, its Referer) is
    allowed. SameSite alone is not relied on (older browsers, same-site sibling hosts).

    A request with neither header is let through: browsers send Origin on every request whose
    method is not GET or HEAD (the Fetch standard; ``null`` when they hide it, which is refused),
    so only non-browser clients omit both, and they cannot be made to act by a foreign page.
    That keeps the seed's cookie clients (Postman, curl) working."""
    origin = header(request, "origin")
    if origin is None:
        referer = header(request, "referer")
        if referer is None:
            return
        origin = _origin_of(referer) or "null"
    allowed = allowed_origins(deps, request)
    if origin.rstrip("/").lower() not in allowed:
        raise Forbidden(
            "CSRF_ORIGIN_REFUSED",
            "a cookie-authenticated request that changes state must come from an allowed origin "
            "(Origin or Referer); other clients send a bearer token or an API key",
            {"origin": origin[:200], "allowed_origins": sorted(allowed)},
        )


# --- one authenticator per kind: None when the request does not carry it, 401 when it is bad ----

Authenticator = Callable[[Deps, Request, Mapping[str, str]], Principal | None]


def _by_bearer(deps: Deps, request: Request, path: Mapping[str, str]) -> Principal | None:
    token = bearer_token(request)
    if token is None:
        return None
    try:
        return accounts.session_principal(deps, token)
    except tokens.TokenError as err:
        raise _refused(err) from None


def _by_cookie(deps: Deps, request: Request, path: Mapping[str, str]) -> Principal | None:
    access, refresh = cookie_tokens(request)
    if not access:
        return None
    cross_site_checked = request.method.upper() not in STATE_CHANGING
    try:
        principal = accounts.session_principal(deps, access)
    except tokens.TokenError as err:
        if err.expired and refresh:
            # The seed's behaviour: a cookie whose access token expired is refreshed in passing,
            # but never on a cross-site page's behalf.
            if not cross_site_checked:
                check_origin(deps, request)
            fresh = accounts.refresh(deps, refresh)
            return Principal(
                user_id=fresh.user_id,
                session_id=fresh.session_id,
                set_cookie=fresh.cookie(deps.settings.refresh_token_ttl_seconds),
                via="cookie",
            )
        raise _refused(err) from None
    if not cross_site_checked:
        check_origin(deps, request)
    return replace(principal, via="cookie")


def _by_api_key(deps: Deps, request: Request, path: Mapping[str, str]) -> Principal | None:
    key = header(request, "x-api-key")
    return accounts.api_key_principal(deps, key) if key else None


def _by_playback_token(deps: Deps, request: Request, path: Mapping[str, str]) -> Principal | None:
    """A token admitting one job of one user (players cannot send headers); the job is the path's."""
    token = dict(request.query_params or {}).get("token")
    if not token:
        return None
    job_id = parse_id(path["job_id"], "job_id")
    try:
        claims = tokens.read_playback_token(token, deps.jwt_secret)
    except tokens.TokenError as err:
        raise _refused(err) from None
    if claims.job_id != job_id:
        # A token for another job proves nothing about this one.
        raise NotFound("JOB_NOT_FOUND", "no playable job has this id", {"job_id": job_id})
    if not accounts.minter_live(deps, claims.user_id, claims.session_id, claims.api_key_id):
        raise Unauthenticated(
            "PLAYBACK_TOKEN_REVOKED", "the session or API key this playback token came from has ended"
        )
    return Principal(
        user_id=claims.user_id,
        session_id=claims.session_id,
        api_key_id=claims.api_key_id,
        playback_token=token,
        via="playback",
    )


AUTHENTICATORS: dict[Credential, Authenticator] = {
    Credential.BEARER: _by_bearer,
    Credential.COOKIE: _by_cookie,
    Credential.API_KEY: _by_api_key,
    Credential.PLAYBACK_TOKEN: _by_playback_token,
}


def authenticate(scheme: Scheme, deps: Deps, request: Request, path: Mapping[str, str]) -> Principal:
    """The caller, by the first accepted credential the request carries; 401 when it has none."""
    for credential in scheme.accepts:
        principal = AUTHENTICATORS[credential](deps, request, path)
        if principal is not None:
            return principal
    raise Unauthenticated("UNAUTHENTICATED", f"this route needs {scheme.wanted()}")
