"""Serving the app over HTTP on one machine with Chalice's local server, but answering an
unknown path like the rest of the API: 404 ``{"error": {"code": "NOT_FOUND", ...}}`` instead
of API Gateway's 403 "Missing Authentication Token" (on AWS the same mapping is a gateway
response, see :data:`runtime.api.chalicelib.errors.GATEWAY_NOT_FOUND`)."""

from __future__ import annotations

import functools
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGateway, create_local_server

from runtime.api.chalicelib.errors import BASE_HEADERS, dumps, error_body


class _Gateway(LocalGateway):
    def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            self.event_converter._route_matcher.match_route(path)
        except ValueError:
            return {
                "statusCode": 404,
                "headers": dict(BASE_HEADERS),
                "multiValueHeaders": {},
                "body": dumps(error_body("NOT_FOUND", f"no route matches {path.split('?', 1)[0][:200]}")),
            }
        return super().handle_request(method, path, headers, body)


class _Handler(ChaliceRequestHandler):
    def __init__(
        self, request: bytes, client_address: tuple[str, int], server: HTTPServer, app_object: Chalice, config: Config
    ) -> None:
        self.local_gateway = _Gateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # type: ignore[arg-type]


def create_server(app: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    """``chalice.local.create_local_server`` with unknown paths answered 404 in the API's shape."""
    server = create_local_server(app, config, host, port)
    server.server.RequestHandlerClass = functools.partial(_Handler, app_object=app, config=config)  # type: ignore[assignment]
    return server
