"""A webhook receiver for trying notifications locally: it accepts the pipeline's
JSON notifications on loopback and hands each to a callback (the demo prints them).
Not for production: it has no authentication."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """An HTTP server on a free loopback port, served from a thread while the `with`
    block runs, so it answers while the caller's event loop awaits."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class WebhookSink(LoopbackServer):
    def __init__(self, on_notification: Callable[[dict[str, Any]], None]):
        super().__init__(_handler(on_notification))


def _handler(on_notification: Callable[[dict[str, Any]], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except ValueError:
                self.send_response(HTTPStatus.BAD_REQUEST)
            else:
                on_notification(body)
                self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
