"""Calls a webhook through httpx with the worker's logging configuration, in a
process of its own, so that tests/test_logging.py reads exactly what reaches
stderr and no test's logging setup leaks into another's.

    python -m tests.helpers.logging_probe json|console --token VALUE [--loud-httpx]

The webhook, on loopback, fails: the probe logs the failure with its traceback
(httpx puts the URL in the error), then the TEAM_HOOK_URL variable's value.
"""

from __future__ import annotations

import argparse
import logging
import os
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

import httpx
import structlog

from pipeline.logging import configure_logging
from pipeline.local.webhook_sink import LoopbackServer

log = structlog.get_logger("tests.helpers.logging_probe")


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(HTTPStatus.INTERNAL_SERVER_ERROR)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def call_webhook(token: str) -> None:
    with LoopbackServer(_Failing) as server:
        response = httpx.post(f"{server.url}/hooks/team?token={token}", json={})
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError:
        log.exception("webhook failed")
    log.info("webhook configured", url=os.environ.get("TEAM_HOOK_URL"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("renderer", choices=["json", "console"])
    parser.add_argument("--token", required=True)
    parser.add_argument("--loud-httpx", action="store_true", help="log httpx's requests, as an operator might")
    arguments = parser.parse_args()
    configure_logging(json=arguments.renderer == "json")
    if arguments.loud_httpx:
        logging.getLogger("httpx").setLevel(logging.DEBUG)
    call_webhook(arguments.token)


if __name__ == "__main__":
    main()
