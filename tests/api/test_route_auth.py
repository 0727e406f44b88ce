"""Every route enforces the auth it declares. The routes come from the route table itself
(``api.docs``), so a route is covered the moment it is declared, and each is called through the
real app: without credentials, with forged credentials of each kind it accepts, with valid
credentials of each kind it refuses (and token kinds standing in for one another), and with a
valid credential of each kind it accepts, which must get past authentication."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from runtime.api.app import api, app
from runtime.api.chalicelib import tokens
from runtime.api.chalicelib.auth import SCHEMES, Credential
from runtime.api.chalicelib.routing import RouteDoc
from tests.api.conftest import SAME_ORIGIN, Caller, sign_up

PROTECTED = [doc for doc in api.docs if not doc.scheme.public]


def _id(doc: RouteDoc) -> str:
    return f"{doc.method} {doc.path}"


def _path(doc: RouteDoc, job_id: str) -> str:
    """The route's path with every parameter filled: ids as UUIDs (the job id given), the rest ``0``."""
    path = doc.path
    for name in doc.path_params:
        value = job_id if name == "job_id" else str(uuid.uuid4()) if name.endswith("_id") else "0"
        path = path.replace(f"{{{name}}}", value)
    return path


def _call(client: Any, doc: RouteDoc, job_id: str, credential: dict[str, Any] | None = None) -> Any:
    credential = credential or {}
    query = f"?token={credential['token']}" if "token" in credential else ""
    headers = {"Content-Type": "application/json", **credential.get("headers", {})}
    return getattr(client, doc.method.lower())(_path(doc, job_id) + query, headers=headers)


def _code(response: Any) -> str:
    body = response.json_body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


def _valid(caller: Caller, deps: Any, job_id: str) -> dict[Credential, dict[str, Any]]:
    """A valid credential of every kind, all of ``caller``'s (the playback token admits ``job_id``)."""
    cookie = json.dumps({"AccessToken": caller.tokens["access_token"], "RefreshToken": caller.tokens["refresh_token"]})
    return {
        Credential.BEARER: {"headers": caller.bearer},
        # A browser on the API's own pages: the Origin that cookie requests changing state need.
        Credential.COOKIE: {"headers": {"Cookie": f"authorization={cookie}", **SAME_ORIGIN}},
        Credential.API_KEY: {"headers": caller.key},
        Credential.PLAYBACK_TOKEN: {
            "token": tokens.playback_token(
                caller.user["id"], job_id, deps.jwt_secret, session_id=caller.tokens["session_id"]
            )
        },
    }


#: A forged credential of every kind and the code it must get.
FORGED: dict[Credential, tuple[dict[str, Any], str]] = {
    Credential.BEARER: ({"headers": {"Authorization": "Bearer a.b.c"}}, "INVALID_TOKEN"),
    Credential.COOKIE: (
        {"headers": {"Cookie": 'authorization={"AccessToken": "a.b.c"}', **SAME_ORIGIN}},
        "INVALID_TOKEN",
    ),
    Credential.API_KEY: ({"headers": {"x-api-key": "tcx_" + "f" * 43}}, "INVALID_API_KEY"),
    Credential.PLAYBACK_TOKEN: ({"token": "a.b.c"}, "INVALID_TOKEN"),
}


#: The routes anyone may call. Pinned on purpose: making a route public is a decision to review.
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/users/health"),
    ("GET", "/sessions/health"),
    ("GET", "/apikeys/health"),
    ("GET", "/openapi.json"),
    ("POST", "/users"),
    ("POST", "/sessions"),
    ("POST", "/sessions/refresh"),
}


def test_given_the_route_table_when_compared_with_chalices_then_every_route_is_declared_once() -> None:
    declared = [(doc.path, doc.method) for doc in api.docs]

    assert sorted(declared) == sorted((path, method) for path, methods in app.routes.items() for method in methods)
    assert len(set(declared)) == len(declared)


def test_given_the_declarations_when_read_then_public_routes_and_schemes_are_the_pinned_ones() -> None:
    b, c, k, p = Credential.BEARER, Credential.COOKIE, Credential.API_KEY, Credential.PLAYBACK_TOKEN

    assert {(doc.method, doc.path) for doc in api.docs if doc.scheme.public} == PUBLIC
    assert {name: scheme.accepts for name, scheme in SCHEMES.items()} == {
        "none": (),
        "session": (b, c),
        "media": (k, b, c),
        "playback": (p, k, b, c),
    }


@pytest.mark.parametrize("doc", PROTECTED, ids=_id)
def test_given_a_protected_route_when_called_without_credentials_then_401_unauthenticated(
    client: Any, doc: RouteDoc
) -> None:
    response = _call(client, doc, str(uuid.uuid4()))

    assert response.status_code == 401 and _code(response) == "UNAUTHENTICATED"


@pytest.mark.parametrize("doc", PROTECTED, ids=_id)
def test_given_a_protected_route_when_called_with_a_forged_credential_of_an_accepted_kind_then_401(
    client: Any, doc: RouteDoc
) -> None:
    for credential in doc.scheme.accepts:
        forged, code = FORGED[credential]

        response = _call(client, doc, str(uuid.uuid4()), forged)

        assert (response.status_code, _code(response)) == (401, code), credential


@pytest.mark.parametrize("doc", PROTECTED, ids=_id)
def test_given_a_protected_route_when_called_with_a_valid_credential_of_a_refused_kind_then_401(
    client: Any, deps: Any, doc: RouteDoc
) -> None:
    caller = sign_up(client, "kinds")
    job_id = str(uuid.uuid4())
    valid = _valid(caller, deps, job_id)
    refused = [c for c in Credential if c not in doc.scheme.accepts]
    for credential in refused:
        response = _call(client, doc, job_id, valid[credential])

        assert (response.status_code, _code(response)) == (401, "UNAUTHENTICATED"), credential
    # Signed tokens of one kind never stand in for another.
    confused: list[dict[str, Any]] = []
    if Credential.BEARER in doc.scheme.accepts:
        confused += [
            {"headers": {"Authorization": f"Bearer {caller.tokens['refresh_token']}"}},
            {"headers": {"Authorization": f"Bearer {valid[Credential.PLAYBACK_TOKEN]['token']}"}},
        ]
    if Credential.PLAYBACK_TOKEN in doc.scheme.accepts:
        confused.append({"token": caller.tokens["access_token"]})
    for credential_ in confused:
        response = _call(client, doc, job_id, credential_)

        assert (response.status_code, _code(response)) == (401, "INVALID_TOKEN"), credential_
    assert refused or confused  # every protected route refuses something


@pytest.mark.parametrize("doc", PROTECTED, ids=_id)
def test_given_a_protected_route_when_called_with_a_valid_credential_of_each_accepted_kind_then_it_passes(
    client: Any, deps: Any, doc: RouteDoc
) -> None:
    for credential in doc.scheme.accepts:
        caller = sign_up(client, "passes")  # a fresh user each time: some routes log out or delete
        job_id = str(uuid.uuid4())

        response = _call(client, doc, job_id, _valid(caller, deps, job_id)[credential])

        assert response.status_code != 401, (credential, response.json_body)
