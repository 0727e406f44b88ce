"""The route registry refuses declarations it could not enforce, and every kind of domain error
has exactly one HTTP status. No request is made: a declaration is checked when it is made."""

from __future__ import annotations

from typing import Any

import pytest
from chalice import Chalice, Response

from runtime.api.chalicelib import domain
from runtime.api.chalicelib.errors import STATUS, domain_response, status_of
from runtime.api.chalicelib.requests import QueryParam
from runtime.api.chalicelib.routing import Api


def _api() -> Api:
    def no_deps() -> Any:
        raise AssertionError("nothing is called")

    return Api(Chalice(app_name="t"), no_deps)


def _route(api: Api, path: str = "/things/{thing_id}", auth: str = "media", **kwargs: Any) -> Any:
    return api.route(path, "GET", summary="s", tag="t", auth=auth, responses={200: ("ok", None)}, **kwargs)


def test_given_every_kind_of_domain_error_when_mapped_then_each_has_one_status_and_a_bare_one_has_none() -> None:
    kinds = [k for k in vars(domain).values() if isinstance(k, type) and issubclass(k, domain.DomainError)]
    concrete = [k for k in kinds if k is not domain.DomainError]

    assert set(concrete) == set(STATUS)
    assert {status_of(kind("CODE", "m")) for kind in concrete} == set(STATUS.values())
    assert len(set(STATUS.values())) == len(STATUS)
    with pytest.raises(TypeError):
        status_of(domain.DomainError("CODE", "m"))


def test_given_a_domain_error_when_answered_then_it_is_the_error_envelope_with_its_code_and_details() -> None:
    response = domain_response(domain.Conflict("JOB_FINISHED", "already done", {"status": "FAILED"}))

    assert response.status_code == 409
    assert response.body == '{"error":{"code":"JOB_FINISHED","message":"already done","details":{"status":"FAILED"}}}'


def test_given_a_protected_route_when_its_view_takes_no_principal_then_registration_fails() -> None:
    api = _api()

    def forgetful(thing_id: str) -> Response:
        raise AssertionError

    with pytest.raises(TypeError, match="principal"):
        _route(api)(forgetful)
    assert api.docs == [] and api.app.routes == {}


def test_given_a_view_naming_what_its_route_does_not_provide_then_registration_fails() -> None:
    api = _api()

    def greedy(principal: Any, thing_id: str, body: Any) -> Response:
        raise AssertionError

    def ignores_its_path(principal: Any) -> Response:
        raise AssertionError

    with pytest.raises(TypeError, match="body"):
        _route(api)(greedy)
    with pytest.raises(TypeError, match="thing_id"):
        _route(api)(ignores_its_path)


def test_given_a_public_route_when_its_view_asks_for_a_principal_then_registration_fails() -> None:
    def wants(principal: Any) -> Response:
        raise AssertionError

    with pytest.raises(TypeError, match="principal"):
        _route(_api(), "/open", auth="none")(wants)


def test_given_declared_parameters_when_registering_then_the_view_may_take_them_by_their_argument_names() -> None:
    api = _api()

    def view(principal: Any, thing_id: str, page_size: int | None) -> Response:
        raise AssertionError

    _route(api, params=(QueryParam("page-size", {"type": "integer"}),))(view)

    assert [d.path for d in api.docs] == ["/things/{thing_id}"]
    [operation] = api.openapi()["paths"]["/things/{thing_id}"].values()
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("thing_id", "path"), ("page-size", "query")]
    assert operation["security"] == [{"apiKeyAuth": []}, {"bearerAuth": []}, {"cookieAuth": []}]


def test_given_an_unknown_scheme_or_a_playback_route_without_a_job_when_declared_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="auth='sometimes'"):
        _route(_api(), auth="sometimes")
    with pytest.raises(ValueError, match="job_id"):
        _route(_api(), auth="playback")
