"""Serve the real Chalice app over HTTP on 127.0.0.1 (``python -m runtime.local.api_server``).

A subprocess of the local platform, so the app reads its settings from the environment at
import exactly as in Lambda, and a crash in a request handler never takes the supervisor
down. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local.api_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from chalice.config import Config

    from runtime.api.app import app

    try:  # the API's own wrapper: unknown paths answer 404 in the API's error shape
        from runtime.api.chalicelib.local import create_server
    except ImportError:  # pragma: no cover - an API without it still serves through plain chalice.local
        from chalice.local import create_local_server as create_server

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
