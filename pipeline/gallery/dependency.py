"""The sample service's dependency on another service, so that releasing services in the
wrong order really fails (release trains, issue #12).

On the local target every service runs this same sample app under its own name; a
`shoot-service` is the sample app too. From version 2.0.0 on, the app serves the new
shoot API, GET /api/v2/shoots; before, that path is not found. A version released with
GALLERY_SHOOT_API=<service> in its env needs that API: it calls it on the named service
through the local router (Host `<service>.localhost`, the router's URL in
PIPELINE_ROUTER_URL, which the local target adds for such a version), and answers its own
non-operational requests 502 while the API is missing. So a gallery that needs the new
shoot API, deployed before shoot-service 2.0.0, fails its staging suites and its canary
analysis; deployed after, it serves as usual. The check's answer is kept for a second,
so steady load does not double the dependency's traffic.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol
from urllib.parse import urlsplit

NEW_API_PATH = "/api/v2/shoots"
NEW_API_SINCE = (2, 0, 0)
NEEDS_VARIABLE = "GALLERY_SHOOT_API"
"""The service whose new shoot API this version calls (unset: it needs none)."""
ROUTER_VARIABLE = "PIPELINE_ROUTER_URL"
CHECK_TTL_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 1.0
OPERATIONAL_PREFIXES = ("/health/", "/platform/", "/metrics")


def version_tuple(version: str) -> tuple[int, ...]:
    """The numeric release of a version (`2.0.0-rc1` -> (2, 0, 0)); () if it has none."""
    numbers = []
    for part in version.split("+", 1)[0].split("-", 1)[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def serves_new_api(version: str) -> bool:
    return version_tuple(version) >= NEW_API_SINCE


def new_api_body(version: str) -> dict:
    return {"api": "v2", "served_by": version, "shoots": []}


@dataclass
class Dependency:
    """The new shoot API of `service`, asked through the router at `router_url`."""

    service: str
    router_url: str
    ttl_seconds: float = CHECK_TTL_SECONDS
    _checked_at: float = float("-inf")
    _problem: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self) -> str | None:
        """Why the API cannot be used now, or None; asked at most once per ttl."""
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl_seconds:
                self._problem = self._ask()
                self._checked_at = time.monotonic()
            return self._problem

    def _ask(self) -> str | None:
        if not self.router_url:
            return f"no router to reach {self.service} through ({ROUTER_VARIABLE} is not set)"
        where = urlsplit(self.router_url)
        connection = http.client.HTTPConnection(where.hostname, where.port or 80, timeout=CHECK_TIMEOUT_SECONDS)
        try:
            connection.request("GET", NEW_API_PATH, headers={"Host": f"{self.service}.localhost"})
            status = connection.getresponse().status
        except OSError as error:
            return f"{self.service} unreachable through the router ({type(error).__name__})"
        finally:
            connection.close()
        if status == HTTPStatus.OK:
            return None
        return f"{self.service} does not serve {NEW_API_PATH} (answered {status}): it needs version 2.0.0 or later"


def dependency_from(environ: Mapping[str, str]) -> Dependency | None:
    """The dependency a process was started with, or None."""
    service = environ.get(NEEDS_VARIABLE, "").strip()
    if not service:
        return None
    return Dependency(service, environ.get(ROUTER_VARIABLE, ""))


def router_environment(env: Mapping[str, str], router_url: str) -> dict[str, str]:
    """What the local target adds to the environment of a version with a dependency."""
    return {ROUTER_VARIABLE: router_url} if env.get(NEEDS_VARIABLE, "").strip() else {}


class Handler(Protocol):
    def _json(self, status: HTTPStatus, body: object) -> None: ...


def answered(handler: Handler, path: str, version: str, dependency: Dependency | None) -> bool:
    """Serve the new API (from 2.0.0 on), or refuse a request while the dependency is
    missing (502); True when the request was answered here."""
    if path == NEW_API_PATH and serves_new_api(version):
        handler._json(HTTPStatus.OK, new_api_body(version))
        return True
    if dependency is None or path.startswith(OPERATIONAL_PREFIXES):
        return False
    problem = dependency.problem()
    if problem is None:
        return False
    handler._json(HTTPStatus.BAD_GATEWAY, {"error": f"the new shoot API is missing: {problem}"})
    return True

