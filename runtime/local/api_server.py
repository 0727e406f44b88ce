"""Serve the real Chalice app over HTTP on 127.0.0.1 (``python -m runtime.local.api_server``).

A subprocess of the local platform, so the app reads its settings from the environment at
import exactly as in Lambda, and a crash in a request handler never takes the supervisor
down. SIGTERM stops it cleanly.

Chalice's local server, except that an unknown path is answered like the rest of the API: 404
``{"error": {"code": "NOT_FOUND", ...}}`` instead of API Gateway's 403 "Missing Authentication
Token" (on AWS the same mapping is a gateway response, see
:data:`runtime.api.chalicelib.errors.GATEWAY_NOT_FOUND`). It leans on chalice.local's internals,
which is why it lives here and not in the API's Lambda bundle.
"""

from __future__ import annotations

import argparse
import functools
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGateway, create_local_server

from runtime.api.chalicelib.errors import BASE_HEADERS, dumps, error_body


class _Gateway(LocalGateway):
    def handle_request(self, method: str, path: str, headers: dict[str, Any], body: bytes | None) -> dict[str, Any]:
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
    #: TCP_NODELAY: chalice writes the headers and the body separately, and with Nagle's algorithm
    #: the body then waits for the client's delayed ACK, 40 ms on every response.
    disable_nagle_algorithm = True

    def __init__(
        self,
        request: socket.socket,
        client_address: tuple[str, int],
        server: HTTPServer,
        app_object: Chalice,
        config: Config,
    ) -> None:
        self.local_gateway = _Gateway(app_object, config)
        # The caller's real address as requestContext.identity.sourceIp (Chalice's local server
        # reports 127.0.0.1 for everyone), so per-address limits behave as behind API Gateway.
        self.local_gateway.event_converter.LOCAL_SOURCE_IP = client_address[0]
        # Not ChaliceRequestHandler.__init__: it would replace _Gateway with a plain LocalGateway.
        # (Chalice hints ``request`` as bytes; a TCP server hands a handler its socket.)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)


#: Connections the local server's socket queues before accepting them.
LISTEN_BACKLOG = 128


def create_server(app: Chalice, config: Config, host: str, port: int) -> LocalDevServer:
    """``chalice.local.create_local_server`` with unknown paths answered 404 in the API's shape."""
    server = create_local_server(app, config, host, port)
    # socketserver listens with a backlog of 5: a burst of parallel connections (a page's
    # requests, a test's) would overflow it and be reset. Listening again widens the queue.
    server.server.socket.listen(LISTEN_BACKLOG)
    server.server.RequestHandlerClass = functools.partial(_Handler, app_object=app, config=config)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local.api_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from runtime.api.app import app  # reads its settings at import: only once asked to serve

    config = Config.create(chalice_stage="local", app_name=app.app_name, lambda_timeout=900)
    server = create_server(app, config, args.host, args.port)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"api serving on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    server.server.serve_forever(poll_interval=0.2)
    server.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
