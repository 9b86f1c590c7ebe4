"""The bundled sample service: a tiny photo gallery, in memory or in PostgreSQL.

    python -m pipeline.gallery.app --port 9000 --version 1.2.0 --instance-id abc

Faults are injected through the environment so that a release can be made to fail:
GALLERY_ERROR_RATE (0..1 share of requests answered 500), GALLERY_LATENCY_MS (added
to each request), GALLERY_READY_DELAY_SECONDS (readiness fails until then) and
GALLERY_FAULTS_AFTER_SECONDS (errors and latency start that long after the process
does: a slow leak that passes the canary and that only a bake catches).
Health and platform endpoints are operational and never get injected faults.

Its photos are kept in memory, or in PostgreSQL when GALLERY_DATABASE_URL is set
(pipeline/gallery/store.py, with its own knobs GALLERY_WRITES_PRIORITY and
GALLERY_BROKEN_FILE_REFS); an upload's body is the photo's bytes.

Each request evaluates the gallery's feature flags per user through OpenFeature
(pipeline/gallery/flags.py): the new layout of the gallery page is one; the reply names
the variants in X-Flag-Variant, and /metrics exports requests and latency per variant.

It stops gracefully, for a hand-over without failed requests: GET /platform/inflight
tells how many requests (uploads among them) are being served and how long it has been
idle, so that whoever retires it can wait until the router's last request drained; on
SIGTERM it stops accepting connections, answers readiness 503, closes each connection
after its reply, finishes what is in flight (bounded) and exits 0.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from pipeline.gallery.dependency import Dependency, answered, dependency_from
from pipeline.gallery.flags import (
    LAYOUT_FLAG,
    SEGMENT_HEADER,
    USER_HEADER,
    VARIANT_HEADER,
    GalleryFlags,
    quiet_provider_logs,
    variant_header,
)
from pipeline.gallery.scrape import metrics_page, register_for_scraping
from pipeline.gallery.store import MemoryStore, PhotoStore, open_store

MAX_BODY_BYTES = 1_000_000
MAX_TITLE_LENGTH = 200
ACTIVITY_COUNTERS = ("active_uploads", "processing_jobs", "client_sessions")
METRICS_PATH = "/metrics"
OPERATIONAL_PREFIXES = ("/health/", "/platform/", METRICS_PATH)
INFLIGHT_PATH = "/platform/inflight"
UNCOUNTED_PREFIXES = ("/health/", INFLIGHT_PATH, METRICS_PATH)
"""Probes and scrapes: neither in flight nor activity, or a drain could never see the service idle."""
SHUTDOWN_QUIET_SECONDS = 0.2
SHUTDOWN_DRAIN_SECONDS = 5.0
"""After SIGTERM: how long without a request counts as drained, and how long to wait for it
(below the 8 s the local target grants before SIGKILL)."""

log = logging.getLogger("gallery")
T = TypeVar("T")


# --- pure helpers (exercised by the `unit` suite) ------------------------------------------


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    ready_delay_seconds: float = 0.0
    after_seconds: float = 0.0


def parse_faults(environ: dict[str, str]) -> Faults:
    """Read fault settings, clamping the error rate to 0..1 and the delays to >= 0."""
    error_rate = float(environ.get("GALLERY_ERROR_RATE", "0") or 0)
    return Faults(
        error_rate=min(max(error_rate, 0.0), 1.0),
        latency_ms=max(float(environ.get("GALLERY_LATENCY_MS", "0") or 0), 0.0),
        ready_delay_seconds=max(float(environ.get("GALLERY_READY_DELAY_SECONDS", "0") or 0), 0.0),
        after_seconds=max(float(environ.get("GALLERY_FAULTS_AFTER_SECONDS", "0") or 0), 0.0),
    )


def validate_photo(payload: object) -> str:
    """The title of an upload, or ValueError saying what is wrong with it."""
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("'title' must be a non-empty string")
    if len(title) > MAX_TITLE_LENGTH:
        raise ValueError(f"'title' must be at most {MAX_TITLE_LENGTH} characters")
    return title.strip()


def validate_activity(payload: object) -> dict[str, int]:
    """The platform activity counters given, or ValueError."""
    if not isinstance(payload, dict) or not set(payload) <= set(ACTIVITY_COUNTERS):
        raise ValueError(f"body must be a JSON object with keys among {', '.join(ACTIVITY_COUNTERS)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in payload.values()):
        raise ValueError("activity counters must be non-negative integers")
    return dict(payload)


def render_gallery(version: str, titles: list[str], grid: bool = False) -> str:
    """The gallery page: a list, or with the new layout (flag LAYOUT_FLAG) a grid of tiles."""
    tag, item = ("div class='grid'", "figure") if grid else ("ul", "li")
    items = "".join(f"<{item}>{html.escape(title)}</{item}>" for title in titles) or f"<{item}>No photos yet</{item}>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Gallery</title></head>"
        f"<body><h1>Photo gallery</h1><p>version {html.escape(version)}</p><{tag}>{items}</{tag.split()[0]}></body></html>"
    )


# --- state ---------------------------------------------------------------------------------


@dataclass
class Gallery:
    version: str
    instance_id: str
    faults: Faults
    started_at: float = field(default_factory=time.monotonic)
    store: PhotoStore = field(default_factory=MemoryStore)
    activity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIVITY_COUNTERS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)
    inflight: int = 0
    last_request_at: float = field(default_factory=time.monotonic)
    """When a counted request last started or finished."""
    draining: bool = False
    dependency: Dependency | None = None
    """Another service's API this version needs (pipeline/gallery/dependency.py)."""
    flags: GalleryFlags = field(default_factory=lambda: GalleryFlags(client=None))

    def is_ready(self) -> bool:
        return not self.draining and time.monotonic() - self.started_at >= self.faults.ready_delay_seconds

    def request_started(self) -> None:
        with self.lock:
            self.inflight += 1
            self.last_request_at = time.monotonic()

    def request_finished(self) -> None:
        with self.lock:
            self.inflight -= 1
            self.last_request_at = time.monotonic()

    def inflight_report(self) -> dict:
        with self.lock:
            idle = 0.0 if self.inflight else time.monotonic() - self.last_request_at
            return {"inflight": self.inflight, "idle_seconds": round(idle, 3), "draining": self.draining}

    def wait_drained(self, quiet_seconds: float, timeout_seconds: float) -> bool:
        """Wait until nothing is in flight and no request came for quiet_seconds;
        False when timeout_seconds passed first."""
        deadline = time.monotonic() + timeout_seconds
        while self.inflight_report()["idle_seconds"] < quiet_seconds:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def add_photo(self, title: str, content: bytes) -> dict:
        return self.store.add_photo(title, content)

    def photo_list(self) -> list[dict]:
        return self.store.photo_list()

    def update_activity(self, counters: dict[str, int]) -> dict[str, int]:
        with self.lock:
            self.activity.update(counters)
            return dict(self.activity)


# --- HTTP ----------------------------------------------------------------------------------


class GalleryHandler(BaseHTTPRequestHandler):
    server_version = "gallery"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive replies otherwise wait ~40 ms on delayed ACKs
    gallery: Gallery  # set by serve()
    variants: dict[str, str] = {}
    """The flag variants serving the current request (none for operational paths)."""
    started = 0.0

    def do_GET(self) -> None:
        self._dispatch({
            "/health/live": lambda: self._json(HTTPStatus.OK, {"status": "live"}),
            "/health/ready": self._ready,
            "/": self._gallery_page,
            "/api/photos": lambda: self._json(HTTPStatus.OK, self.gallery.photo_list()),
            "/version": lambda: self._json(HTTPStatus.OK, {"version": self.gallery.version}),
            "/platform/activity": lambda: self._json(HTTPStatus.OK, self.gallery.update_activity({})),
            INFLIGHT_PATH: lambda: self._json(HTTPStatus.OK, self.gallery.inflight_report()),
            METRICS_PATH: lambda: self._send(HTTPStatus.OK, *metrics_page(self.gallery.flags.metrics.registry)),
        })

    def do_POST(self) -> None:
        self._dispatch({"/api/photos": self._upload, "/platform/activity": self._set_activity})

    def _method_not_allowed(self) -> None:
        if self._read_body():
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _dispatch(self, routes: dict) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith(UNCOUNTED_PREFIXES):
            self._serve(path, routes)
            return
        self.gallery.request_started()
        try:
            self._serve(path, routes)
        finally:
            self.gallery.request_finished()

    def _serve(self, path: str, routes: dict) -> None:
        self.started, self.variants = time.monotonic(), {}
        if not self._read_body():
            return
        if not path.startswith(OPERATIONAL_PREFIXES):
            self.variants = self.gallery.flags.evaluate(self.headers.get(USER_HEADER), self.headers.get(SEGMENT_HEADER))
        if answered(self, path, self.gallery.version, self.gallery.dependency):
            return
        handler = routes.get(path)
        if handler is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        if not path.startswith(OPERATIONAL_PREFIXES) and (self._inject_faults() or self._flag_fails()):
            return
        try:
            handler()
        except Exception:
            log.exception("request failed: %s %s", self.command, path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _inject_faults(self) -> bool:
        """Apply latency; answer 500 and return True for the configured share of requests."""
        faults = self.gallery.faults
        if time.monotonic() - self.gallery.started_at < faults.after_seconds:
            return False
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if random.random() < faults.error_rate:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return True
        return False

    def _flag_fails(self) -> bool:
        """Answer 500 and return True for the share of requests that a faulty variant
        of a flag (pipeline/gallery/flags.py) fails."""
        if self.gallery.flags.fails(self.variants):
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return True
        return False

    def _gallery_page(self) -> None:
        titles = [photo["title"] for photo in self.gallery.photo_list()]
        self._html(render_gallery(self.gallery.version, titles, grid=self.variants.get(LAYOUT_FLAG) == "on"))

    def _ready(self) -> None:
        ready = self.gallery.is_ready()
        self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready})

    def _upload(self) -> None:
        title = self._valid_body(validate_photo)
        if title is not None:
            self._json(HTTPStatus.CREATED, self.gallery.add_photo(title, self.body))

    def _set_activity(self) -> None:
        counters = self._valid_body(validate_activity)
        if counters is not None:
            self._json(HTTPStatus.OK, self.gallery.update_activity(counters))

    def _valid_body(self, validate: Callable[[object], T]) -> T | None:
        """The validated JSON body, or None after answering 400 with what is wrong."""
        try:
            return validate(self._read_json())
        except ValueError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return None

    def _read_body(self) -> bool:
        """Read the request body, so that a keep-alive connection stays in step even
        when the reply ignores it. Answers 413 and returns False when it is too large."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
            return False
        self.body = self.rfile.read(length)
        return True

    def _read_json(self) -> object:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as error:
            raise ValueError("body is not valid JSON") from error

    def _json(self, status: HTTPStatus, body: object) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _html(self, page: str) -> None:
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-Version", self.gallery.version)
        if self.variants:
            self.send_header(VARIANT_HEADER, variant_header(self.variants))
        if self.gallery.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        if self.variants:
            self.gallery.flags.metrics.observe(self.variants, status, time.monotonic() - self.started)

    def version_string(self) -> str:
        """No Python or server version in the Server header."""
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def serve(port: int, gallery: Gallery) -> None:
    """Serve until SIGTERM, then drain: see the module docstring."""
    handler = type("BoundGalleryHandler", (GalleryHandler,), {"gallery": gallery})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda signum, frame: _start_draining(server, gallery))
    log.info("gallery %s (%s) listening on port %d", gallery.version, gallery.instance_id, port)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    drained = gallery.wait_drained(SHUTDOWN_QUIET_SECONDS, SHUTDOWN_DRAIN_SECONDS)
    log.info("gallery %s stopped; %s", gallery.version, "drained" if drained else gallery.inflight_report())


def _start_draining(server: ThreadingHTTPServer, gallery: Gallery) -> None:
    """The signal handler runs on the thread in serve_forever, which shutdown() waits
    for: it has to be asked from another thread."""
    gallery.draining = True
    threading.Thread(target=server.shutdown, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--instance-id", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    environ = dict(os.environ)
    quiet_provider_logs()
    gallery = Gallery(args.version, args.instance_id, parse_faults(environ), store=open_store(environ),
                      dependency=dependency_from(environ), flags=GalleryFlags.from_environ(environ, args.instance_id))
    unregister = register_for_scraping(environ, args.port, args.version, args.instance_id)
    try:
        serve(args.port, gallery)
    finally:
        unregister()


if __name__ == "__main__":
    main()
