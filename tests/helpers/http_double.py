"""A real HTTP server on loopback standing in for the platform around the pipeline:
its live-activity endpoint (GET /activity, counts the test sets) and webhook
receivers (POST /hooks/<name>, recorded with their headers; a test can make one
slow or failing). It runs in a thread so it answers while the test awaits."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from pipeline.local.webhook_sink import LoopbackServer


@dataclass
class Delivery:
    hook: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class PlatformDouble:
    activity: dict[str, int] = field(default_factory=lambda: {"active_uploads": 0, "processing_jobs": 0, "client_sessions": 0})
    hook_delay_seconds: dict[str, float] = field(default_factory=dict)
    hook_status: dict[str, int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    activity_reads: int = 0

    def __post_init__(self) -> None:
        self._server = LoopbackServer(_handler_for(self))

    @property
    def url(self) -> str:
        return self._server.url

    def hook_url(self, name: str) -> str:
        return f"{self.url}/hooks/{name}"

    def received(self, hook: str) -> list[dict[str, Any]]:
        return [delivery.body for delivery in self.deliveries if delivery.hook == hook]

    def __enter__(self) -> PlatformDouble:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


def _handler_for(double: PlatformDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/activity":
                return self._answer(HTTPStatus.NOT_FOUND, {})
            double.activity_reads += 1
            self._answer(HTTPStatus.OK, double.activity)

        def do_POST(self) -> None:
            hook = self.path.removeprefix("/hooks/")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            time.sleep(double.hook_delay_seconds.get(hook, 0))
            status = double.hook_status.get(hook, HTTPStatus.OK)
            if status == HTTPStatus.OK:
                double.deliveries.append(Delivery(hook, dict(self.headers.items()), body))
            self._answer(status, {})

        def _answer(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a slow-webhook test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
